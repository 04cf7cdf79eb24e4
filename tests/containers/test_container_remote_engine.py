"""`make image` builds on whatever engine DOCKER_HOST points to: a second dockerd here.

A second Docker engine is started on its own socket, data root, exec root and bridge
(never `--bridge=none`: dockerd then deletes the first engine's docker0 interface).
`make image DOCKER_HOST=unix://...` must build there (making the local base there too),
leave the first engine untouched, and say which engine it used.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from containers_support import ENGINE, ROOT

pytestmark = pytest.mark.container

DOCKERD = "/usr/sbin/dockerd"


def client(host: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, DOCKER_HOST=host, DOCKER_BUILDKIT="1")
    return subprocess.run(["/usr/bin/docker", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def second_engine(tmp_path_factory):
    if ENGINE != "docker":
        pytest.fail("this test drives dockerd: run it with ENGINE=docker")
    assert Path(DOCKERD).exists(), "dockerd is missing: `make images` installs docker.io"
    name = f"grocery-test-{uuid.uuid4().hex[:8]}"
    run = Path("/run") / name  # short: unix socket paths are limited to 108 bytes
    run.mkdir(parents=True)
    data = tmp_path_factory.mktemp("dockerd-data")
    host = f"unix://{run}/docker.sock"
    bridge = f"gt{uuid.uuid4().hex[:6]}"
    for args in (["link", "add", "name", bridge, "type", "bridge"],
                 ["addr", "add", "10.231.77.1/24", "dev", bridge],
                 ["link", "set", bridge, "up"]):  # fmt: skip
        subprocess.run(["ip", *args], check=True, capture_output=True)
    log = (run / "dockerd.log").open("wb")
    proc = subprocess.Popen(
        [DOCKERD, f"--host={host}", f"--data-root={data}", f"--exec-root={run}/exec",
         f"--pidfile={run}/dockerd.pid", f"--bridge={bridge}", "--iptables=false",
         "--ip-masq=false", f"--containerd-namespace={name}",
         f"--containerd-plugins-namespace={name}-plugins"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while client(host, "info").returncode != 0:
            assert proc.poll() is None, (run / "dockerd.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the second dockerd did not answer in 60 s"
            time.sleep(0.5)
        yield host
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        subprocess.run(["umount", "-R", str(run / "exec")], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
        shutil.rmtree(run, ignore_errors=True)


def test_make_image_builds_on_the_engine_docker_host_names(second_engine):
    first_before = client("unix:///var/run/docker.sock", "images", "-q").stdout.split()
    assert client(second_engine, "image", "inspect", "grocery-frontend:uv").returncode != 0
    env = dict(os.environ, DOCKER_HOST=second_engine, ENGINE="docker")
    result = subprocess.run(
        ["make", "-C", str(ROOT), "image", "APP=frontend", "VARIANT=uv"],
        env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert f"answers at {second_engine}" in result.stdout
    assert client(second_engine, "image", "inspect", "grocery-frontend:uv").returncode == 0
    assert client(second_engine, "image", "inspect", "grocery-base:bookworm-py3.11").returncode == 0
    first_after = client("unix:///var/run/docker.sock", "images", "-q").stdout.split()
    assert sorted(first_after) == sorted(first_before), "the first engine's images changed"
    link = subprocess.run(["ip", "link", "show", "docker0"], capture_output=True, check=False)
    assert link.returncode == 0, "the first engine's docker0 bridge is gone"
