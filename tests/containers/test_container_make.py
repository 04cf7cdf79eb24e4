"""The Make targets the README shows, run for real: `make image-<app>-<variant>`, `make wheels`
on a wheelhouse that lost a wheel and holds a tampered one, and `make train`."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from containers_support import CFG, ENGINE, ENGINE_OBJ, ROOT, image_ref, require_image

from imagetools.apps import load_apps
from imagetools.wheelhouse import lock_pins

pytestmark = pytest.mark.container


def make(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """make in the repository as a user runs it, for this run's engine and image names."""
    dropped = ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "TEST_APPS", "TEST_VARIANTS")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    return subprocess.run(
        ["make", "-C", str(ROOT), *args, f"ENGINE={ENGINE}", f"IMAGE_PREFIX={CFG.image_prefix}"],
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


@pytest.mark.images(apps=["flask"], variants=["uv"])
def test_make_image_by_name_keeps_the_built_image(tmp_path: Path) -> None:
    ref = image_ref("flask", "uv")
    require_image(ref)
    before = ENGINE_OBJ.image_id(ref)
    result = make("image-flask-uv")
    assert result.returncode == 0, result.stdout + result.stderr
    assert ENGINE_OBJ.image_id(ref) == before  # up to date: nothing rebuilt or retagged
    stamp = CFG.build_dir / "stamps" / ENGINE / f"{CFG.image_prefix}flask-uv"
    assert stamp.read_text().strip().removeprefix("sha256:") == before.removeprefix("sha256:")


@pytest.fixture
def build_dir() -> Iterator[Path]:
    """A BUILD_DIR of its own under build/ (hard links to the wheelhouse need one file system)."""
    path = CFG.build_dir / f"maketest-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_make_wheels_fetches_a_missing_wheel_and_replaces_a_tampered_one(build_dir: Path) -> None:
    wheels = CFG.build_dir / "wheelhouse"
    assert wheels.is_dir(), "no wheelhouse: run `make images` first"
    mine = build_dir / "wheelhouse"
    mine.mkdir()
    for wheel in wheels.glob("*.whl"):
        os.link(wheel, mine / wheel.name)
    gone = next(mine.glob("itsdangerous-*.whl"))
    gone.unlink()
    tampered = next(mine.glob("blinker-*.whl"))
    good = hashlib.sha256(tampered.read_bytes()).hexdigest()
    data = bytearray(tampered.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.unlink()  # a new file: the hard link to the real wheelhouse stays intact
    tampered.write_bytes(bytes(data))
    result = make("wheels", f"BUILD_DIR={build_dir}", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "does not match its locked sha256 (altered?): removed" in result.stdout
    assert f"fetching 2 of {len(lock_pins(list(load_apps())))} wheels" in result.stdout
    assert (mine / gone.name).read_bytes() == (wheels / gone.name).read_bytes()
    assert hashlib.sha256((mine / tampered.name).read_bytes()).hexdigest() == good


@pytest.mark.images(apps=["trainer"], variants=[CFG.trainer_variant])
def test_make_train_writes_the_same_models_as_the_build(tmp_path: Path) -> None:
    """Training is deterministic: the trainer image makes byte-identical weights again."""
    require_image(image_ref("trainer", CFG.trainer_variant))
    out = tmp_path / "artifacts"
    result = make("train", f"ARTIFACTS={out}")
    assert result.returncode == 0, result.stdout + result.stderr
    for model in ("image/model.safetensors", "tabular/model.skops"):
        assert (out / model).read_bytes() == (CFG.artifacts / model).read_bytes(), model
