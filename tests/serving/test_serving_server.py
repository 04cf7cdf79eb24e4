"""`python -m serving`: uvicorn with TCP_NODELAY, bounded request reads and a connection cap."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from serving import server as server_module
from serving.server import ServingConfig, make_config, parse_args
from shared_support import free_port

SRC = Path(__file__).resolve().parents[2] / "src"


def test_listening_socket_has_nodelay() -> None:
    sock = ServingConfig("backend.main:app", host="127.0.0.1", port=0).bind_socket()
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        sock.close()


def test_workers_default_from_web_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    monkeypatch.delenv("PORT", raising=False)
    args = parse_args(["backend.main:app"])
    assert (args.host, args.port, args.workers) == ("0.0.0.0", 8000, 3)  # noqa: S104
    assert parse_args(["x:app", "--workers", "2"]).workers == 2
    for bad in (["--workers", "0"], ["--max-connections", "0"], ["--read-timeout", "0"]):
        with pytest.raises(SystemExit):
            parse_args(["x:app", *bad])


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVING_APP", "")  # make_config sets both: restored afterwards
    monkeypatch.setenv("SERVING_INTERFACE", "")
    monkeypatch.setenv("READ_TIMEOUT", "2.5")
    monkeypatch.setenv("KEEPALIVE_TIMEOUT", "3")
    monkeypatch.setenv("MAX_CONNECTIONS", "40")
    config = make_config(parse_args(["x:app", "--interface", "wsgi"]))
    assert (config.app, config.timeout_keep_alive, config.limit_concurrency) == (
        "serving.app:create", 3, 40)  # fmt: skip
    assert os.environ["SERVING_INTERFACE"] == "wsgi"
    assert config.read_timeout == 2.5


WSGI_APP = """
def app(environ, start_response):
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))  # as werkzeug
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok %d" % len(body)]
"""


@pytest.fixture
def wsgi_server(tmp_path: Path):
    """`python -m serving tiny:app --interface wsgi --read-timeout 1` on a free port."""
    (tmp_path / "tiny.py").write_text(WSGI_APP)
    port = free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(SRC)]),
               MAX_BODY_BYTES="1000")  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "serving", "tiny:app", "--interface", "wsgi", "--host",
         "127.0.0.1", "--port", str(port), "--read-timeout", "1", "--max-connections", "100",
         "--no-access-log"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
    yield port
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture
def two_workers(tmp_path: Path):
    """The same with --workers 2 (uvicorn binds the socket itself then)."""
    (tmp_path / "tiny.py").write_text(WSGI_APP)
    port = free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(SRC)]))
    server = subprocess.Popen(
        [sys.executable, "-m", "serving", "tiny:app", "--interface", "wsgi", "--host",
         "127.0.0.1", "--port", str(port), "--workers", "2", "--no-access-log"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    yield server, port
    server.terminate()
    server.wait(timeout=30)


def test_two_workers_serve_keep_alive_requests(two_workers) -> None:
    server, port = two_workers
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    deadline = time.monotonic() + 60
    while True:
        assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
        try:
            connection.request("GET", "/")
            assert connection.getresponse().read()
            break
        except OSError:
            connection.close()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
    for _ in range(10):  # same keep-alive connection
        connection.request("GET", "/")
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, b"ok 0")
    connection.close()


def test_several_workers_accept_connections_with_nodelay(monkeypatch: pytest.MonkeyPatch) -> None:
    """With --workers > 1 the workers share the socket main() binds, and asyncio sets nothing on
    the connections they accept: each has TCP_NODELAY only because the listening socket has it
    (else every keep-alive response waits ~40 ms for the client's delayed ACK)."""
    handed: list[socket.socket] = []

    class Workers:  # uvicorn's Multiprocess, recording the sockets instead of forking
        def __init__(self, config: object, sockets: list[socket.socket]) -> None:
            handed.extend(sockets)

        def run(self) -> None:
            pass

    monkeypatch.setattr(server_module, "Multiprocess", Workers)
    monkeypatch.setenv("SERVING_APP", "")  # make_config sets both: restored afterwards
    monkeypatch.setenv("SERVING_INTERFACE", "")
    argv = ["x:app", "--workers", "2", "--host", "127.0.0.1", "--port", "0"]
    assert server_module.main(argv) == 0
    (listener,) = handed
    with listener:
        listener.listen()
        with socket.create_connection(listener.getsockname()):
            accepted, _ = listener.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def get(port: int, path: str = "/") -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """True when the server closes sock (EOF or reset) within seconds."""
    sock.settimeout(seconds)
    try:
        return sock.recv(1024) == b"" or True  # data (e.g. a 4xx) then close also counts
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.mark.parametrize(
    "sent",
    [b"", b"GET / HTTP/1.1\r\nHost: x\r\n",
     b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc"],
    ids=["silent", "half-sent-headers", "half-sent-body"],
)  # fmt: skip
def test_a_stalled_request_is_closed_and_others_are_served(wsgi_server: int, sent: bytes) -> None:
    stalled = [socket.create_connection(("127.0.0.1", wsgi_server)) for _ in range(20)]
    try:
        for sock in stalled:
            sock.sendall(sent)
        started = time.monotonic()
        assert get(wsgi_server) == (200, b"ok 0"), "served while 20 clients stall"
        assert time.monotonic() - started < 1
        assert all(closed_within(sock, 3) for sock in stalled), "a stalled client stayed open"
    finally:
        for sock in stalled:
            sock.close()


def test_a_complete_slow_request_is_not_cut(wsgi_server: int) -> None:
    """The deadline is for reading the request; a client that finishes in time is served."""
    sock = socket.create_connection(("127.0.0.1", wsgi_server), timeout=5)
    try:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab")
        time.sleep(0.5)
        sock.sendall(b"cd")
        answer = b""
        while b"ok 4" not in answer:
            chunk = sock.recv(4096)
            assert chunk, f"closed before the answer: {answer!r}"
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 OK")
    finally:
        sock.close()


def post(port: int, body: bytes, chunked: bool) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        if chunked:
            connection.request("POST", "/", body=iter([body[:10], body[10:]]),
                               encode_chunked=True)  # fmt: skip
        else:
            connection.request("POST", "/", body=body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_wsgi_body_over_max_body_bytes_is_413(wsgi_server: int, chunked: bool) -> None:
    """The WSGI adapter reads the whole body into memory: it is capped first, chunked too."""
    assert post(wsgi_server, b"x" * 1000, chunked) == (200, b"ok 1000")
    status, body = post(wsgi_server, b"x" * 1001, chunked)
    assert status == 413
    assert json.loads(body) == {"error": "request body too large: the limit is 1000 bytes"}


def test_a_pipelined_request_left_half_sent_is_closed(wsgi_server: int) -> None:
    """The second request is parsed from the buffer after the first answer: it is read
    under the same deadline as one that arrives on its own."""
    sock = socket.create_connection(("127.0.0.1", wsgi_server), timeout=5)
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nab")  # fmt: skip
        answer = b""
        while b"ok 0" not in answer:
            chunk = sock.recv(4096)
            assert chunk, "closed before the first answer"
            answer += chunk
        assert closed_within(sock, 3), "the half-sent pipelined request kept the connection"
    finally:
        sock.close()


BLOCKING_APP = """
import os, time, threading
def app(environ, start_response):
    if environ["PATH_INFO"] == "/block":
        open(os.path.join(os.environ["MARKS"], str(threading.get_ident())), "w").close()
        while not os.path.exists(os.environ["RELEASE"]):
            time.sleep(0.01)
    start_response("200 OK", [("Content-Type", "text/plain")])
    if environ["PATH_INFO"] == "/big":
        return [b"x" * (16 * 1024 * 1024)]
    return [b"ok"]
"""


@pytest.fixture
def blocking_server(tmp_path: Path):
    """`python -m serving blocking:app --interface wsgi` with QUEUE_TIMEOUT=0.5: /block holds
    its thread until tmp_path/release exists, /big answers 16 MiB."""
    (tmp_path / "blocking.py").write_text(BLOCKING_APP)
    (tmp_path / "marks").mkdir()
    port = free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(SRC)]),
               QUEUE_TIMEOUT="0.5", MARKS=str(tmp_path / "marks"),
               RELEASE=str(tmp_path / "release"))  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "serving", "blocking:app", "--interface", "wsgi", "--host",
         "127.0.0.1", "--port", str(port), "--no-access-log"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "no server"
                time.sleep(0.1)
        yield port
    finally:
        (tmp_path / "release").touch()
        server.kill()
        server.wait(timeout=30)


def get_slowly(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_a_wsgi_request_that_finds_every_thread_taken_gets_503_then_service_resumes(
    blocking_server: int, tmp_path: Path
) -> None:
    """8 requests hold the WSGI pool's 8 threads: the 9th waits QUEUE_TIMEOUT, then 503 with
    Retry-After (without the slot wait it would queue until a thread came free); once they
    end, all 8 slots are free again."""
    port = blocking_server
    with ThreadPoolExecutor(max_workers=8) as pool:
        held = [pool.submit(get_slowly, port, "/block") for _ in range(8)]
        deadline = time.monotonic() + 30
        while len(list((tmp_path / "marks").iterdir())) < 8:
            assert time.monotonic() < deadline, "the 8 requests did not all start"
            time.sleep(0.05)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        connection.request("GET", "/")
        answer = connection.getresponse()
        assert answer.status == 503
        assert answer.getheader("Retry-After") == "1"
        assert json.loads(answer.read()) == {
            "error": "busy: all 8 threads stayed taken for 0.5 s; retry shortly"}  # fmt: skip
        connection.close()
        (tmp_path / "release").touch()
        assert [f.result() for f in held] == [(200, b"ok")] * 8
        again = [pool.submit(get_slowly, port, "/block") for _ in range(8)]  # released: no wait
        assert [f.result() for f in again] == [(200, b"ok")] * 8


def test_a_client_that_does_not_read_its_answer_holds_no_thread(blocking_server: int) -> None:
    """8 clients ask for 16 MiB and read nothing: the app's threads are done, so the next
    request gets a thread at once (the slot follows the thread, not the slow client)."""
    idle = []
    try:
        for _ in range(8):
            sock = socket.create_connection(("127.0.0.1", blocking_server), timeout=5)
            sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            idle.append(sock)
        time.sleep(1)  # the 8 answers are produced and wait on their sockets
        assert get_slowly(blocking_server, "/") == (200, b"ok")
    finally:
        for sock in idle:
            sock.close()
