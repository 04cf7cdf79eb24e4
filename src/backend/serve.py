"""Run the backend under uvicorn with N worker processes and TCP_NODELAY on every connection.

`uvicorn backend.main:app --workers N` (N > 1) binds its listening socket with `proto=0`, so
asyncio never sets TCP_NODELAY on accepted connections and each keep-alive request then
waits ~40 ms for the client's delayed ACK (Kludex/uvicorn#3149, uvicorn 0.54). Linux copies
TCP_NODELAY from a listening socket to the connections it accepts, so this launcher sets it
on the listener. With one worker it is the same as plain `uvicorn backend.main:app`.

    python -m backend [--host 0.0.0.0] [--port 8000] [--workers N]

N defaults to $WEB_CONCURRENCY, else 1.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys

import uvicorn
from uvicorn.supervisors import Multiprocess

APP = "backend.main:app"
STARTUP_FAILURE = 3


class NoDelayConfig(uvicorn.Config):
    """A uvicorn Config whose shared listening socket has TCP_NODELAY set."""

    def bind_socket(self) -> socket.socket:
        sock = super().bind_socket()
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m backend", description="Serve the backend.")
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a container must listen on all
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "1")))
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--no-access-log", action="store_true")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = NoDelayConfig(
        APP,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        access_log=not args.no_access_log,
    )
    if config.workers > 1:
        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return 0
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    return 0 if server.started else STARTUP_FAILURE


if __name__ == "__main__":
    sys.exit(main())
