"""The body size limit middleware stops reading as soon as a body goes over the limit."""

from __future__ import annotations

import asyncio

import pytest

from backend.limits import BodySizeLimitMiddleware, BodyTooLarge

CHUNK = 1000


def run(middleware: BodySizeLimitMiddleware, headers: list[tuple[bytes, bytes]], chunks: int):
    """Drive the middleware with a body of `chunks` chunks; return (chunks read, messages sent)."""
    read = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal read
        read += 1
        return {"type": "http.request", "body": b"x" * CHUNK, "more_body": read < chunks}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    asyncio.run(middleware(scope, receive, send))
    return read, sent


async def read_all_then_ok(scope, receive, send) -> None:
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def test_body_under_the_limit_passes() -> None:
    read, sent = run(BodySizeLimitMiddleware(read_all_then_ok, 10 * CHUNK), [], chunks=10)
    assert read == 10
    assert sent[0]["status"] == 200


def test_streamed_body_stops_at_the_first_chunk_over_the_limit() -> None:
    middleware = BodySizeLimitMiddleware(read_all_then_ok, 5 * CHUNK)
    with pytest.raises(BodyTooLarge) as info:
        run(middleware, [], chunks=1000)
    assert info.value.status_code == 413
    assert str(5 * CHUNK) in info.value.detail


def test_declared_length_over_the_limit_is_refused_without_reading() -> None:
    middleware = BodySizeLimitMiddleware(read_all_then_ok, 5 * CHUNK)
    read, sent = run(middleware, [(b"content-length", str(10**9).encode())], chunks=1000)
    assert read == 0
    assert sent[0]["status"] == 413
    assert b"too large" in sent[1]["body"]


def test_bad_content_length_is_400() -> None:
    middleware = BodySizeLimitMiddleware(read_all_then_ok, 5 * CHUNK)
    read, sent = run(middleware, [(b"content-length", b"-5")], chunks=1)
    assert (read, sent[0]["status"]) == (0, 400)
