"""The Makefile owns the pipeline: `make -n images` shows one step per image, in an order
that respects what each image needs (the trainer image, then the models, then the images
that carry them). No engine is needed: -n only prints the plan."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

from imagetools.common import ROOT
from imagetools.config import VARIANTS

APPS = tomllib.loads((ROOT / "dockerfiles" / "apps.toml").read_text())


def plan(tmp_path: Path, *args: str) -> list[str]:
    env = dict(os.environ, BUILD_DIR=str(tmp_path / "build"), ARTIFACTS=str(tmp_path / "art"))
    env.pop("MAKEFLAGS", None)
    result = subprocess.run(["make", "-n", "-C", str(ROOT), *args], env=env, capture_output=True,
                            text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [line.split(" -m imagetools ", 1)[1] for line in result.stdout.splitlines()
            if " -m imagetools " in line]  # fmt: skip


def test_dry_run_lists_every_image_and_the_models_first(tmp_path: Path) -> None:
    steps = plan(tmp_path, "images")
    images = [s for s in steps if s.startswith("image ")]
    expected = {f"image {app} {variant}" for app in APPS for variant in VARIANTS}
    assert {re.sub(r"\s+$", "", s) for s in images} == expected
    assert steps[:3] == ["engine", "base", "wheels"]
    train = steps.index("train --if-missing")
    assert steps.index("image trainer uv") < train
    for app, spec in APPS.items():
        for variant in VARIANTS:
            position = steps.index(f"image {app} {variant}".strip())
            if "model" in spec:
                assert position > train, f"{app}:{variant} is built before the models"


def test_one_image_plans_only_what_it_needs(tmp_path: Path) -> None:
    steps = plan(tmp_path, "image", "APP=frontend", "VARIANT=pip")
    assert [s for s in steps if s.startswith(("image", "train"))] == ["image frontend pip"]
    assert plan(tmp_path, "image-flask-multistage")[-1] == "image flask multistage"


def test_build_flags_reach_the_image_command(tmp_path: Path) -> None:
    steps = plan(tmp_path, "image", "APP=frontend", "VARIANT=uv",
                 "BUILD_FLAGS=--no-cache --pull=false")  # fmt: skip
    assert steps[-1] == 'image frontend uv --flags="--no-cache --pull=false"'


def make(*args: str, **env: str) -> subprocess.CompletedProcess:
    """`make -C ROOT ARGS` as a user runs it (no MAKEFLAGS of a make running these tests)."""
    clean = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    return subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), *args],
                          env=clean | env, capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip


def test_unit_target_leaves_out_slow_browser_and_container_tests() -> None:
    """`make test-unit`'s own pytest arguments, collecting only: the slow training test and the
    container tests are left out, an engine-free test of the build tooling is in."""
    made = make("-n", "test-unit", "PYTEST_ARGS=--collect-only -q")
    assert made.returncode == 0, made.stderr
    (line,) = [ln for ln in made.stdout.splitlines() if " -m pytest " in ln]
    argv = shlex.split(line)
    files = ["tests/grocery/test_train.py", "tests/scripts/test_scripts_repro.py",
             "tests/containers/test_container_repro.py"]  # fmt: skip
    collected = subprocess.run([sys.executable, "-m", "pytest", *argv[argv.index("pytest") + 1 :],
                                *files], cwd=ROOT, capture_output=True, text=True, timeout=300,
                               check=False)  # fmt: skip
    assert collected.returncode == 0, collected.stdout[-2000:] + collected.stderr[-2000:]
    ids = {ln.partition("::")[2] for ln in collected.stdout.splitlines() if "::" in ln}
    assert {"test_content_comparison_reports_what_differs", "test_metrics_and_progress"} <= ids
    assert "test_default_configuration_is_accurate_and_deterministic" not in ids
    assert not {i for i in ids if "builds_are" in i}, "a container test was collected"
