"""imagetools.package_index: the bench's static PEP 503 index, used by real pip and uv."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import pytest

from imagetools import package_index
from imagetools.common import ScriptError
from imagetools.package_index import serving, write_index

BIN = Path(sys.executable).parent
# No find-links or extra index of the host's pip configuration: the index alone.
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
ENV["PIP_CONFIG_FILE"] = os.devnull


def make_wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> Path:
    """A minimal valid pure-Python wheel: one module and its dist-info."""
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": f"VERSION = {version!r}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    with zipfile.ZipFile(path, "w") as wheel:
        for member, text in files.items():
            wheel.writestr(member, text)
        record = "".join(f"{m},,\n" for m in files) + f"{info}/RECORD,,\n"
        wheel.writestr(f"{info}/RECORD", record)
    return path


@pytest.fixture
def index(tmp_path: Path) -> Path:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    made = [make_wheel(wheels, "bench_probe", "1.0", ("bench-dep>=2",))]
    made += [make_wheel(wheels, "bench_dep", version) for version in ("2.0", "1.0")]
    root = tmp_path / "index"
    write_index(root, {w: hashlib.sha256(w.read_bytes()).hexdigest() for w in made})
    return root


def test_pages_link_every_wheel_with_its_hash(index: Path) -> None:
    page = (index / "simple" / "bench-dep" / "index.html").read_text()
    for version in ("1.0", "2.0"):
        wheel = index / "files" / f"bench_dep-{version}-py3-none-any.whl"
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        assert f'href="../../files/{wheel.name}#sha256={digest}"' in page
    # PEP 658/714: each wheel's METADATA beside it, its hash on the link
    wheel = index / "files" / "bench_probe-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read("bench_probe-1.0.dist-info/METADATA")
    assert (index / "files" / f"{wheel.name}.metadata").read_bytes() == metadata
    announced = f"sha256={hashlib.sha256(metadata).hexdigest()}"
    page = (index / "simple" / "bench-probe" / "index.html").read_text()
    assert f'data-dist-info-metadata="{announced}" data-core-metadata="{announced}"' in page
    assert sorted(p.name for p in (index / "simple").iterdir()) == [
        "bench-dep", "bench-probe", "index.html"]  # fmt: skip


def test_pip_and_uv_resolve_and_install_from_it(index: Path, tmp_path: Path) -> None:
    with serving(index) as url:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/simple/")
        with urllib.request.urlopen(url + "bench-probe/", timeout=10) as answer:
            assert b"bench_probe-1.0-py3-none-any.whl" in answer.read()
        for tool, command in {
            "pip": [str(BIN / "pip"), "install", "--no-cache-dir", "--disable-pip-version-check",
                    "--index-url", url, "--target"],
            "uv": [str(BIN / "uv"), "pip", "install", "--no-cache", "--index-url", url,
                   "--python", sys.executable, "--target"],
        }.items():  # fmt: skip
            target = tmp_path / tool
            done = subprocess.run([*command, str(target), "bench-probe"], capture_output=True,
                                  text=True, timeout=120, env=ENV)  # fmt: skip
            assert done.returncode == 0, f"{tool}: {done.stderr[-2000:]}"
            # the resolver picked the newest dependency the index offers
            assert (target / "bench_dep.py").read_text() == "VERSION = '2.0'\n", tool


def test_a_file_that_does_not_match_its_hash_is_refused(index: Path, tmp_path: Path) -> None:
    served = index / "files" / "bench_probe-1.0-py3-none-any.whl"
    data = served.read_bytes()
    served.unlink()  # a hard link: replace, do not write through to the source wheel
    served.write_bytes(data + b"\0")
    with serving(index) as url:
        done = subprocess.run(
            [str(BIN / "pip"), "download", "--no-deps", "--no-cache-dir", "--index-url", url,
             "-d", str(tmp_path / "out"), "bench-probe"],
            capture_output=True, text=True, timeout=120,
            env=ENV)  # fmt: skip
    assert done.returncode != 0 and "hash" in done.stderr.lower(), done.stderr[-2000:]


def test_a_wheel_without_metadata_is_one_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken-1.0-py3-none-any.whl"
    with zipfile.ZipFile(broken, "w") as wheel:
        wheel.writestr("broken.py", "")
    with pytest.raises(ScriptError, match=r"broken-1\.0-py3-none-any\.whl is no wheel: it has 0"):
        write_index(tmp_path / "index", {broken: hashlib.sha256(broken.read_bytes()).hexdigest()})


def test_the_index_takes_many_connections_at_once(tmp_path: Path) -> None:
    """uv's parallel requests all reach the listen queue, none is dropped to wait for a SYN
    retry (1 s): 64 connections complete while nothing accepts them yet."""
    server = package_index._Server(("127.0.0.1", 0), package_index._Quiet)
    clients = []
    try:
        for _ in range(64):
            client = socket.socket()
            client.settimeout(0.5)
            client.connect(server.server_address)  # TimeoutError when the queue is full
            clients.append(client)
    finally:
        for client in clients:
            client.close()
        server.server_close()
    assert len(clients) == 64
