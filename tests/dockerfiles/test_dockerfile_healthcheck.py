"""dockerfiles/runtime/healthcheck.py against a tiny HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from shared_support import free_port


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/garbled":
            self.wfile.write(b"this is not HTTP\r\n\r\n")
            return
        status = {"/health": 200, "/": 200, "/broken": 500, "/missing": 404}.get(self.path, 404)
        body = json.dumps({"path": self.path}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # keep the test output clean
        pass


@pytest.fixture(scope="module")
def server_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def probe(runtime_module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """probe(spec) -> healthcheck's exit status, with launch.json = spec."""
    module = runtime_module("healthcheck")
    monkeypatch.setattr(module, "SPEC", tmp_path / "launch.json")
    monkeypatch.delenv("PORT", raising=False)

    def run(spec: dict) -> int:
        (tmp_path / "launch.json").write_text(json.dumps(spec))
        return module.main()

    return run


def test_200_is_healthy(probe, server_port: int, capsys) -> None:
    assert probe({"port": server_port, "health": "/health"}) == 0
    assert "healthy" in capsys.readouterr().out


def test_500_is_unhealthy(probe, server_port: int, capsys) -> None:
    assert probe({"port": server_port, "health": "/broken"}) == 1
    assert "unhealthy" in capsys.readouterr().out


def test_404_is_unhealthy(probe, server_port: int) -> None:
    assert probe({"port": server_port, "health": "/missing"}) == 1


def test_closed_port_is_unhealthy(probe, capsys) -> None:
    assert probe({"port": free_port(), "health": "/health"}) == 1
    assert "unhealthy" in capsys.readouterr().out


def test_garbled_answer_is_unhealthy_not_a_traceback(probe, server_port: int) -> None:
    assert probe({"port": server_port, "health": "/garbled"}) == 1


def test_port_environment_variable_wins(probe, server_port: int, monkeypatch) -> None:
    monkeypatch.setenv("PORT", str(server_port))
    assert probe({"port": free_port(), "health": "/"}) == 0


def test_no_health_key_means_nothing_to_probe(probe, capsys) -> None:
    assert probe({"command": ["python", "-m", "trainer"]}) == 0
    assert "nothing to probe" in capsys.readouterr().out


def test_proxy_settings_are_ignored(probe, server_port: int, monkeypatch) -> None:
    """An HTTP_PROXY meant for the app's outbound calls must not swallow the probe."""
    for key in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(key, f"http://127.0.0.1:{free_port()}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setattr(urllib.request, "_opener", None)  # urlopen caches its proxy settings
    assert probe({"port": server_port, "health": "/health"}) == 0
