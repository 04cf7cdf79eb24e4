"""Publishing, against a real registry (Debian's docker-registry on a free loopback port):
`make push` records what the registry serves, a second engine pulls the image by digest and
runs it healthy, and a base pinned by digest in that registry is pulled and built on (a
wrong digest is one clear line)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from containers_support import (
    CFG,
    ENGINE,
    ROOT,
    VENV_PYTHON,
    engine,
    free_port,
    image_ref,
    require_image,
    unique_name,
)

from imagetools import registry
from imagetools.engines import engine_for

pytestmark = pytest.mark.container

APP, VARIANT = "flask", "uv"
OTHER = "podman" if ENGINE == "docker" else "docker"


@pytest.fixture(scope="module")
def local_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    addr = f"127.0.0.1:{free_port()}"
    root = tmp_path_factory.mktemp("registry")
    registry.start(CFG, addr, root)
    try:
        yield addr
    finally:
        registry.stop(root)


def make(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-C", str(ROOT), *args, f"ENGINE={ENGINE}"],
                          env=dict(os.environ, **env), capture_output=True, text=True,
                          timeout=900, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def published(local_registry: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    require_image(image_ref(APP, VARIANT))
    out = tmp_path_factory.mktemp("published") / "published.json"
    cfg = CFG.replace(registry=f"{local_registry}/test{uuid.uuid4().hex[:6]}")
    records = registry.push(cfg, [APP], [VARIANT], out)
    assert len(records) == 1
    assert json.loads(out.read_text())[f"{records[0]['repository']}:{VARIANT}"] == records[0]
    return records[0]


def test_push_records_what_the_registry_serves(published: dict, local_registry: str) -> None:
    name = published["repository"].split("/", 1)[1]
    for tag in published["tags"]:
        headers, _ = registry.api(local_registry, f"{name}/manifests/{tag}")
        assert headers["Docker-Content-Digest"] == published["digest"], tag
    assert published["tags"] == [VARIANT, f"{VARIANT}-{CFG.revision[:12]}"]
    image_id = engine(["image", "inspect", "--format", "{{.Id}}", image_ref(APP, VARIANT)])
    assert published["config_digest"].removeprefix("sha256:") in image_id
    lock = registry.sha256(ROOT / "requirements" / f"{APP}.txt")
    assert (published["lock_sha256"], published["revision"]) == (lock, CFG.revision)


def test_the_other_engine_pulls_by_digest_and_runs_it(published: dict) -> None:
    other = engine_for(CFG.replace(engine=OTHER))
    ref = f"{published['repository']}@{published['digest']}"
    other.output(["pull", ref])
    name = unique_name("pulled")
    try:
        other.output(["run", "--detach", "--name", name, ref])
        deadline = time.monotonic() + 120  # its own health probe, run on the other engine
        probe = ["exec", name, VENV_PYTHON, "/app/healthcheck.py"]
        while other.run(probe, capture_output=True).returncode != 0:
            assert time.monotonic() < deadline, other.run(["logs", name], capture_output=True)
            time.sleep(0.5)
    finally:
        other.run(["rm", "--force", name], capture_output=True)
        other.remove(ref)


def test_a_base_pinned_by_digest_is_pulled_and_a_wrong_digest_is_one_line(
    local_registry: str,
) -> None:
    base = CFG.local_base if engine_for(CFG).exists(CFG.local_base) else CFG.base_image
    pushed = f"{local_registry}/base{uuid.uuid4().hex[:6]}:pinned"
    engine(["tag", base, pushed])
    digest = engine_for(CFG).push(pushed)
    engine(["rmi", pushed])
    prefix = f"regbase{uuid.uuid4().hex[:4]}-"
    pinned = f"{pushed.rsplit(':', 1)[0]}@{digest}"
    try:
        built = make("image", f"APP={APP}", f"VARIANT={VARIANT}", IMAGE_PREFIX=prefix,
                     BASE_IMAGE=pinned)  # fmt: skip
        assert built.returncode == 0, built.stdout[-2000:] + built.stderr
        # Docker pulls it; Podman may find it already, by the digest its push recorded.
        assert f"pulled base image {pinned}" in built.stdout or (
            ENGINE == "podman" and f"base image {pinned} is present" in built.stdout
        ), built.stdout
        wrong = pinned[:-8] + "deadbeef"
        failed = make("image", f"APP={APP}", f"VARIANT={VARIANT}", IMAGE_PREFIX=prefix,
                      BASE_IMAGE=wrong)  # fmt: skip
        assert failed.returncode != 0
        errors = [ln for ln in failed.stderr.splitlines() if not ln.startswith("make")]
        assert len(errors) == 1 and errors[0].startswith(
            f"imagetools: error: cannot pull BASE_IMAGE={wrong}: "
        ), failed.stderr
    finally:
        engine(["rmi", "--force", f"{prefix}{APP}:{VARIANT}", pinned], check=False)
        for stamp in (CFG.build_dir / "stamps" / ENGINE).glob(f"{prefix}*"):
            stamp.unlink()


def test_a_push_without_registry_is_one_clear_line(tmp_path: Path) -> None:
    result = make("push", "APPS=flask", "VARIANTS=uv", REGISTRY="")
    assert result.returncode != 0
    assert "imagetools: error: set REGISTRY=host[:port]/prefix" in result.stderr
