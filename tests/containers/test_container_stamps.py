"""Make's stamps follow the engine named on make's command line: a stamp whose image is gone
is dropped when Make reads the Makefile, so that `make image ENGINE=<engine>` builds it again.
(GNU Make 4.3 does not export variables to `$(shell ...)`: the Makefile must name them.)"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from containers_support import CFG, ENGINE, ROOT

pytestmark = pytest.mark.container


def test_a_stale_stamp_of_the_engine_named_on_the_command_line_is_dropped(tmp_path: Path) -> None:
    build = tmp_path / "build"
    stale = build / "stamps" / ENGINE / f"{CFG.image_prefix}flask-uv"
    stale.parent.mkdir(parents=True)
    stale.write_text(f"sha256:{'0' * 64}\n")  # an image no engine has
    other = "podman" if ENGINE == "docker" else "docker"
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    result = subprocess.run(
        ["make", "-C", str(ROOT), "-n", "image", "APP=flask", "VARIANT=uv", f"ENGINE={ENGINE}",
         f"BUILD_DIR={build}", f"IMAGE_PREFIX={CFG.image_prefix}"],
        env=env | {"ENGINE": other}, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert not stale.exists(), result.stdout
    assert "its image is gone or was replaced; it will be built again" in result.stdout
    assert "imagetools image flask uv" in result.stdout
