"""Make's stamps follow the engine named on make's command line: a stamp whose image is gone
is dropped when Make reads the Makefile, so that `make image ENGINE=<engine>` builds it again.
(GNU Make 4.3 does not export variables to `$(shell ...)`: the Makefile must name them.)"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from containers_support import CFG, ENGINE, ROOT, image_ref, require_image

from imagetools.engines import engine_for

pytestmark = pytest.mark.container


def make_n(build: Path, *args: str) -> subprocess.CompletedProcess:
    """`make -n ... ENGINE=<engine>` with the other engine in the environment."""
    other = "podman" if ENGINE == "docker" else "docker"
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    return subprocess.run(
        ["make", "-C", str(ROOT), "-n", *args, f"ENGINE={ENGINE}", f"BUILD_DIR={build}",
         f"IMAGE_PREFIX={CFG.image_prefix}"],
        env=env | {"ENGINE": other}, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.mark.images(apps=["flask"], variants=["uv"])
def test_the_stamp_of_an_image_the_engine_has_is_kept(tmp_path: Path) -> None:
    require_image(image_ref("flask", "uv"))
    stamp = tmp_path / "stamps" / ENGINE / f"{CFG.image_prefix}flask-uv"
    stamp.parent.mkdir(parents=True)
    stamp.write_text(engine_for(CFG).image_id(image_ref("flask", "uv")) + "\n")
    result = make_n(tmp_path, "image", "APP=flask", "VARIANT=uv")
    assert result.returncode == 0, result.stderr
    assert stamp.exists() and "its image is gone" not in result.stdout, result.stdout


def test_a_stale_stamp_of_the_engine_named_on_the_command_line_is_dropped(tmp_path: Path) -> None:
    build = tmp_path / "build"
    stale = build / "stamps" / ENGINE / f"{CFG.image_prefix}flask-uv"
    stale.parent.mkdir(parents=True)
    stale.write_text(f"sha256:{'0' * 64}\n")  # an image no engine has
    result = make_n(build, "image", "APP=flask", "VARIANT=uv")
    assert result.returncode == 0, result.stderr
    assert not stale.exists(), result.stdout
    assert "its image is gone or was replaced; it will be built again" in result.stdout
    assert "imagetools image flask uv" in result.stdout
