"""The app uvicorn runs: the target app, WSGI adapted, behind a request-body limit.

uvicorn imports `serving.app:create` (a factory, so that worker processes can rebuild it)
with the target in SERVING_APP and SERVING_INTERFACE. A WSGI app runs in uvicorn's thread
pool, which reads the whole body into memory first; so the body is read here, up to
MAX_BODY_BYTES (else MAX_CONTENT_LENGTH, else 16 MiB), and a longer one is answered 413
whether it declared its length or came chunked. Once its body is in, a request waits for one
of the pool's WSGI_THREADS threads at most QUEUE_TIMEOUT seconds (default 5), then gets 503
with Retry-After: the pool's own queue would hold it without end. The slot is given back when
the app's thread is done, not when a slow client has read the answer.
"""

from __future__ import annotations

import asyncio
import json
import os
from concurrent.futures import ThreadPoolExecutor

from uvicorn.importer import import_from_string
from uvicorn.middleware.wsgi import WSGIResponder

DEFAULT_MAX_BODY = 16 * 1024 * 1024
WSGI_THREADS = 8
DEFAULT_QUEUE_TIMEOUT = 5.0


class _Responder(WSGIResponder):
    """uvicorn's WSGI responder, telling `done` (on the event loop) when its thread ends."""

    def __init__(self, app, executor, scope, done) -> None:
        super().__init__(app, executor, scope)
        self.done = done

    def wsgi(self, environ, start_response) -> None:
        try:
            super().wsgi(environ, start_response)
        finally:
            self.loop.call_soon_threadsafe(self.done)


def body_limit() -> int:
    for name in ("MAX_BODY_BYTES", "MAX_CONTENT_LENGTH"):
        if os.environ.get(name):
            return int(os.environ[name])
    return DEFAULT_MAX_BODY


def queue_timeout() -> float:
    value = float(os.environ.get("QUEUE_TIMEOUT") or DEFAULT_QUEUE_TIMEOUT)
    if not value > 0:
        raise ValueError(f"QUEUE_TIMEOUT must be a number of seconds above 0, not {value}")
    return value


class BufferedBodyLimit:
    """A WSGI app served by uvicorn: read the request body (at most `limit` bytes) before the
    app runs; over it: 413. Then run the app in one of `threads` threads, waited for at most
    `wait` seconds; else 503."""

    def __init__(self, app, limit: int, threads: int = WSGI_THREADS,
                 wait: float = DEFAULT_QUEUE_TIMEOUT) -> None:  # fmt: skip
        self.app, self.limit, self.wait = app, limit, wait
        self.threads = threads
        self.executor = ThreadPoolExecutor(max_workers=threads)
        self.slots = asyncio.Semaphore(threads)  # bound to the server's loop at first use

    async def refuse(self, send, status: int, message: str, *extra: tuple[bytes, bytes]) -> None:
        body = json.dumps({"error": message}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close"), *extra]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":  # uvicorn's lifespan "auto": unsupported, as it logs
            raise RuntimeError(f"a WSGI app serves HTTP only, not {scope['type']}")
        too_large = f"request body too large: the limit is {self.limit} bytes"
        headers = dict(scope.get("headers", []))
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await self.refuse(send, 400, "invalid Content-Length header")
                return
            if int(declared) > self.limit:
                await self.refuse(send, 413, too_large)
                return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away mid-body: nothing to answer, nothing to run
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await self.refuse(send, 413, too_large)
                return
            if not message.get("more_body"):
                break
        # The WSGI adapter sets CONTENT_LENGTH from the headers only, and WSGI apps read no
        # more: a chunked body would reach them empty. The whole body is here, so say its size.
        headers = [(k, v) for k, v in scope.get("headers", [])
                   if k not in (b"content-length", b"transfer-encoding")]  # fmt: skip
        scope = dict(scope, headers=[*headers, (b"content-length", str(size).encode())])
        pending = iter([{"type": "http.request", "body": b"".join(chunks), "more_body": False}])

        async def replay():
            return next(pending, None) or await receive()

        try:
            await asyncio.wait_for(self.slots.acquire(), self.wait)
        except TimeoutError:
            busy = (
                f"busy: all {self.threads} threads stayed taken for {self.wait:g} s; retry shortly"
            )
            await self.refuse(send, 503, busy, (b"retry-after", b"1"))
            return
        released = False

        def release() -> None:  # once: when the app's thread ends, or the request does
            nonlocal released
            if not released:
                released = True
                self.slots.release()

        try:
            await _Responder(self.app, self.executor, scope, release)(replay, send)
        finally:
            release()


def create():
    """The ASGI app for SERVING_APP (MODULE:ATTR), as SERVING_INTERFACE says."""
    app = import_from_string(os.environ["SERVING_APP"])
    if os.environ.get("SERVING_INTERFACE", "asgi") == "wsgi":
        return BufferedBodyLimit(app, body_limit(), WSGI_THREADS, queue_timeout())
    return app
