"""Test helpers for the frontend: a stub backend on 127.0.0.1, canned answers."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from shared_support import png_bytes


def data_url(data: bytes, media_type: str = "image/png") -> str:
    """What dcc.Upload puts in `contents` for a file."""
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


@dataclass
class Reply:
    """A canned answer of the stub backend."""

    status: int = 200
    body: Any = None
    raw: bytes | None = None
    content_type: str = "application/json"
    delay: float = 0.0


@dataclass
class StubBackend:
    """A tiny HTTP server; set `routes[(method, path)]` to a Reply or a callable."""

    url: str
    routes: dict[tuple[str, str], Reply | Callable[[dict[str, Any]], Reply]] = field(
        default_factory=dict
    )
    requests: list[dict[str, Any]] = field(default_factory=list)


def _handler(stub: StubBackend) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = {
                "method": method,
                "path": self.path,
                "headers": dict(self.headers),
                "body": self.rfile.read(length) if length else b"",
            }
            stub.requests.append(request)
            route = stub.routes.get((method, self.path))
            reply = Reply(404, {"detail": "Not Found"}) if route is None else route
            if callable(reply):
                reply = reply(request)
            if reply.delay:
                time.sleep(reply.delay)
            payload = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                pass

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

    return Handler


CLASSES = ("apple", "banana", "carrot")


def prediction(label: str = "banana", confidence: float = 0.7) -> dict[str, Any]:
    """A well-formed /predict answer."""
    rest = (1.0 - confidence) / (len(CLASSES) - 1)
    probs = {c: (confidence if c == label else rest) for c in CLASSES}
    return {"label": label, "confidence": confidence, "probabilities": probs}


def sample(true_label: str = "apple") -> dict[str, Any]:
    """A well-formed /samples/random answer."""
    return {
        "name": f"{true_label}/{true_label}_0001.png",
        "true_label": true_label,
        "media_type": "image/png",
        "image_base64": base64.b64encode(png_bytes()).decode("ascii"),
    }


def start_stub() -> tuple[StubBackend, Callable[[], None]]:
    """Start a stub backend on a free loopback port; returns it and a stop function."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    stub = StubBackend(url=f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(stub)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stub, stop
