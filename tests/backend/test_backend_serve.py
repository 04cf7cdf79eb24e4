"""`python -m backend`: uvicorn with several workers that keeps TCP_NODELAY."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backend.serve import NoDelayConfig, parse_args

SRC = Path(__file__).resolve().parents[2] / "src"


def test_listening_socket_has_nodelay() -> None:
    sock = NoDelayConfig("backend.main:app", host="127.0.0.1", port=0).bind_socket()
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        sock.close()


def test_workers_default_from_web_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    args = parse_args([])
    assert (args.host, args.port, args.workers) == ("0.0.0.0", 8000, 3)  # noqa: S104
    assert parse_args(["--workers", "2"]).workers == 2
    with pytest.raises(SystemExit):
        parse_args(["--workers", "0"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_workers_serve_keep_alive_requests_without_delayed_ack(model_dir: Path) -> None:
    port = free_port()
    env = dict(os.environ, MODEL_DIR=str(model_dir), PYTHONPATH=str(SRC), LOG_LEVEL="WARNING")
    command = [sys.executable, "-m", "backend", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--workers", "2", "--no-access-log"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
            try:
                connection.request("GET", "/health")
                assert connection.getresponse().read()
                break
            except OSError:
                connection.close()
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        timings = []
        for _ in range(10):  # same keep-alive connection
            started = time.perf_counter()
            connection.request("GET", "/health")
            response = connection.getresponse()
            assert response.status == 200
            response.read()
            timings.append(time.perf_counter() - started)
        connection.close()
        # Without TCP_NODELAY every keep-alive response waits ~40 ms for a delayed ACK.
        assert min(timings) < 0.03, timings
    finally:
        server.terminate()
        server.wait(timeout=30)
