"""uvicorn, with bounded connection handling for every service.

- A connection must deliver a complete request (headers and body) within READ_TIMEOUT
  seconds of its first byte (or of being opened): a client that stalls half-way is closed,
  so half-open and slow-body connections cannot pile up. Idle keep-alive connections close
  after KEEPALIVE_TIMEOUT seconds (uvicorn's own timer).
- At most MAX_CONNECTIONS connections and requests per worker; beyond that uvicorn answers
  503 at once instead of queueing.
- WSGI apps (Flask, Dash) run in a pool of 8 threads; the request, body included, is read
  by the event loop first (at most MAX_BODY_BYTES, else 413: serving.app), so a slow client
  never holds a thread.
- The listening socket has TCP_NODELAY: with several workers uvicorn binds it itself and
  asyncio would not set it on accepted connections (Kludex/uvicorn#3149, uvicorn 0.54),
  making each keep-alive request wait ~40 ms for the client's delayed ACK.

Settings come from the environment (each has a flag too): WEB_CONCURRENCY (workers, 1),
READ_TIMEOUT (10 s), KEEPALIVE_TIMEOUT (5 s), MAX_CONNECTIONS (256).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import sys

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.supervisors import Multiprocess

STARTUP_FAILURE = 3


class BoundedReadH11(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request is not complete in time."""

    def __init__(self, config: uvicorn.Config, *args, **kwargs) -> None:
        super().__init__(config, *args, **kwargs)
        self.read_timeout = getattr(config, "read_timeout", 10.0)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._read_deadline: asyncio.TimerHandle | None = None
        self._arm_read_deadline()

    def _arm_read_deadline(self) -> None:
        if self._read_deadline is None:
            self._read_deadline = self.loop.call_later(self.read_timeout, self._read_timed_out)

    def _disarm_read_deadline(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:  # a new request starts
            self._arm_read_deadline()
        super().data_received(data)

    def handle_events(self) -> None:
        """After h11 has consumed what it can (new data, or a pipelined request parsed from
        its buffer when a response completes), a request still being read keeps a deadline:
        also one whose body the app answered without reading."""
        super().handle_events()
        state = self.conn.their_state
        if state is h11.SEND_BODY or (state is h11.IDLE and self.conn.trailing_data[0]):
            self._arm_read_deadline()
        elif state is not h11.IDLE:
            self._disarm_read_deadline()  # the whole request is in, or the connection ended

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE and not self.conn.trailing_data[0]:
            self._disarm_read_deadline()  # idle: uvicorn's keep-alive timer takes over

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_read_deadline()
        super().connection_lost(exc)

    def _read_timed_out(self) -> None:
        self._read_deadline = None
        if self.conn.their_state in (h11.IDLE, h11.SEND_BODY):  # the request is not all in
            self.transport.close()


class ServingConfig(uvicorn.Config):
    """A uvicorn Config whose listening socket has TCP_NODELAY set, with a read timeout."""

    def __init__(self, app: str, *, read_timeout: float = 10.0, **kwargs) -> None:
        super().__init__(app, **kwargs)
        self.read_timeout = read_timeout

    def bind_socket(self) -> socket.socket:
        sock = super().bind_socket()
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


def _env_number(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m serving", description="Serve an app.")
    parser.add_argument("app", help="MODULE:ATTR of the ASGI or WSGI app")
    parser.add_argument("--interface", choices=("asgi", "wsgi"), default="asgi")
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a container must listen on all
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "1")))
    parser.add_argument("--read-timeout", type=float, default=_env_number("READ_TIMEOUT", 10))
    parser.add_argument("--keepalive-timeout", type=int,
                        default=int(_env_number("KEEPALIVE_TIMEOUT", 5)))  # fmt: skip
    parser.add_argument("--max-connections", type=int,
                        default=int(_env_number("MAX_CONNECTIONS", 256)))  # fmt: skip
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--no-access-log", action="store_true")
    args = parser.parse_args(argv)
    for name in ("workers", "max_connections"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.read_timeout <= 0:
        parser.error("--read-timeout must be positive")
    return args


def make_config(args: argparse.Namespace) -> ServingConfig:
    # uvicorn imports serving.app:create (in each worker process too), which builds the app
    # from these two variables: a WSGI app behind a request-body limit, an ASGI app as it is.
    os.environ["SERVING_APP"] = args.app
    os.environ["SERVING_INTERFACE"] = args.interface
    return ServingConfig(
        "serving.app:create",
        factory=True,
        interface="asgi3",
        host=args.host,
        port=args.port,
        workers=args.workers,
        http=BoundedReadH11,
        read_timeout=args.read_timeout,
        timeout_keep_alive=args.keepalive_timeout,
        limit_concurrency=args.max_connections,
        log_level=args.log_level,
        access_log=not args.no_access_log,
    )


def main(argv: list[str] | None = None) -> int:
    config = make_config(parse_args(argv))
    if config.workers > 1:
        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return 0
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    return 0 if server.started else STARTUP_FAILURE


if __name__ == "__main__":
    sys.exit(main())
