"""`make image` builds on whatever engine DOCKER_HOST points to: a second dockerd here.

A second Docker engine is started on its own socket, data root, exec root and bridge
(never `--bridge=none`: dockerd then deletes the first engine's docker0 interface).
`make image DOCKER_HOST=unix://...` must build there (making the local base there too),
leave the first engine untouched, and say which engine it used.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from containers_support import CFG, ENGINE, ROOT, client, second_dockerd

pytestmark = pytest.mark.container


@pytest.fixture(scope="module")
def second_engine(tmp_path_factory):
    if ENGINE != "docker":
        pytest.fail("this test drives dockerd: run it with ENGINE=docker")
    with second_dockerd(tmp_path_factory.mktemp("dockerd-data")) as host:
        yield host


def test_make_image_builds_on_the_engine_docker_host_names(second_engine):
    first_before = client("unix:///var/run/docker.sock", "images", "-q").stdout.split()
    assert client(second_engine, "image", "inspect", CFG.tag("frontend", "uv")).returncode != 0
    env = dict(os.environ, DOCKER_HOST=second_engine, ENGINE="docker")
    result = subprocess.run(
        ["make", "-C", str(ROOT), "image", "APP=frontend", "VARIANT=uv"],
        env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert f"answers at {second_engine}" in result.stdout
    assert client(second_engine, "image", "inspect", CFG.tag("frontend", "uv")).returncode == 0
    assert client(second_engine, "image", "inspect", CFG.local_base).returncode == 0
    first_after = client("unix:///var/run/docker.sock", "images", "-q").stdout.split()
    assert sorted(first_after) == sorted(first_before), "the first engine's images changed"
    link = subprocess.run(["ip", "link", "show", "docker0"], capture_output=True, check=False)
    assert link.returncode == 0, "the first engine's docker0 bridge is gone"
