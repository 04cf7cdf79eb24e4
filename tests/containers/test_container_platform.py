"""An engine whose default platform is linux/arm64 (Docker Desktop on Apple silicon) still
builds and runs the linux/amd64 images the locks are for: every build and run names it.

Before PLATFORM existed, such an engine failed with a misleading error: the build asked for
an arm64 variant of the base, and pip then found no arm64 wheel in the wheelhouse.
"""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest
from containers_support import (
    APPS,
    ENGINE,
    ROOT,
    Service,
    engine,
    http,
    remove_prefixed,
    unique_name,
)

pytestmark = pytest.mark.container

APP, VARIANT = "flask", "uv"


def make_image(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-C", str(ROOT), "image", f"APP={APP}", f"VARIANT={VARIANT}", f"ENGINE={ENGINE}"],
        env=dict(os.environ, **env), capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip


@pytest.mark.skipif(ENGINE != "docker", reason="DOCKER_DEFAULT_PLATFORM is Docker's setting")
def test_an_arm64_default_platform_still_builds_and_runs_amd64(monkeypatch) -> None:
    prefix = f"arm64default{uuid.uuid4().hex[:4]}-"
    tag = f"{prefix}{APP}:{VARIANT}"
    name = unique_name("arm64default")
    monkeypatch.setenv("DOCKER_DEFAULT_PLATFORM", "linux/arm64")  # also for the run below
    try:
        result = make_image(IMAGE_PREFIX=prefix, DOCKER_DEFAULT_PLATFORM="linux/arm64")
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr
        arch = engine(["image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", tag]).strip()
        assert arch == "linux/amd64"
        port = APPS[APP]["port"]
        engine(["run", "--detach", "--name", name, "--publish", f"127.0.0.1::{port}", tag])
        Service(APP, VARIANT, name).wait_healthy()
        mapping = engine(["port", name, f"{port}/tcp"]).split()[0]
        assert http(f"http://{mapping}/health")[0] == 200
    finally:
        engine(["rm", "--force", name], check=False)
        remove_prefixed(prefix)


def test_an_unsupported_platform_is_one_clear_line() -> None:
    result = make_image(PLATFORM="linux/arm64")
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if not line.startswith("make")]
    assert errors == [
        "imagetools: error: PLATFORM=linux/arm64 is not covered by the locks and the wheelhouse "
        "(CPython 3.11 wheels for linux/amd64): build linux/amd64, which arm64 hosts (Apple "
        "silicon) run under emulation"
    ]
