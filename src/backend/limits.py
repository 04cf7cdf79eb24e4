"""Request body size limit, as pure ASGI middleware (no body is read into memory unbounded).

A declared Content-Length over the limit is refused at once, before the app runs; a body
without one (chunked) is counted while it streams and refused as soon as it goes over.
Both answers are JSON 413s with a `detail` message.
"""

from __future__ import annotations

from fastapi import HTTPException, status
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a streamed body passes the limit (rendered as JSON 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"request body too large: the limit is {limit} bytes",
        )


class BodySizeLimitMiddleware:
    """Refuse HTTP request bodies larger than `max_body_size` bytes with 413."""

    def __init__(self, app: ASGIApp, max_body_size: int) -> None:
        self.app = app
        self.max_body_size = max_body_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_size
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            try:
                declared_size = int(declared)
            except ValueError:
                declared_size = -1
            if declared_size < 0:
                response = JSONResponse({"detail": "invalid Content-Length header"}, 400)
                await response(scope, receive, send)
                return
            if declared_size > limit:
                error = BodyTooLarge(limit)
                response = JSONResponse({"detail": error.detail}, error.status_code)
                await response(scope, receive, send)
                return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited_receive, send)
