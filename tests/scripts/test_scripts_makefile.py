"""The Makefile owns the pipeline: `make -n images` shows one step per image, in an order
that respects what each image needs (the trainer image, then the models, then the images
that carry them). No engine is needed: -n only prints the plan."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from imagetools.apps import load_apps
from imagetools.common import ROOT
from imagetools.config import VARIANTS, Config

APPS = load_apps()


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


def test_models_at_hand_need_no_trainer_image(tmp_path: Path) -> None:
    """With ARTIFACTS already trained (verify-published hands the published models over),
    an image that carries a model is built without building the trainer first."""
    (tmp_path / "art").mkdir()
    (tmp_path / "art" / ".trained").write_text("")
    steps = plan(tmp_path, "image", "APP=flask", "VARIANT=uv")
    assert [s for s in steps if s.startswith(("image", "train"))] == ["image flask uv"]


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


ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)[ \t]*\?=[ \t]*(.*)$", re.MULTILINE)


def help_variables(output: str) -> dict[str, str]:
    """`make help`'s variable table: name -> the value shown."""
    rows = output.split("Variables (current value):\n", 1)[1].splitlines()
    return {name: value.strip() for name, _, value in (row.strip().partition(" ") for row in rows)}


def test_help_lists_every_variable_with_its_current_value(tmp_path: Path) -> None:
    """Each `NAME ?= default` of the Makefile and of build/apps.mk, with the value Make has:
    the default, the environment's, the command line's; on a PATH with no engine client."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("make", "bash", "sed", "awk", "grep", "find", "mkdir", "mv"):
        (tools / name).symlink_to(shutil.which(name))
    build = tmp_path / "build"
    result = make("help", f"BUILD_DIR={build}", "BENCH_REPEAT=7", "ENGINE=podman",
                  f"PYTHON={sys.executable}", PATH=str(tools))  # fmt: skip
    assert result.returncode == 0, result.stderr
    shown = help_variables(result.stdout)
    defaults = dict(ASSIGNMENT.findall((ROOT / "Makefile").read_text()))
    defaults.update(ASSIGNMENT.findall((build / "apps.mk").read_text()))
    assert sorted(shown) == sorted(defaults)
    assert (shown["BUILD_DIR"], shown["BENCH_REPEAT"], shown["ENGINE"]) == (
        str(build),
        "7",
        "podman",
    )
    for name, default in defaults.items():
        if name not in ("BUILD_DIR", "BENCH_REPEAT", "ENGINE", "PYTHON") and "$" not in default:
            assert shown[name] == os.environ.get(name, default), name
    assert shown["BENCH_APPS"] == shown["APPS"] == " ".join(APPS)  # defaults made of others


def test_help_lists_a_variable_added_to_the_makefile(tmp_path: Path) -> None:
    makefile = tmp_path / "Makefile"
    text = (ROOT / "Makefile").read_text()
    makefile.write_text(text.replace("\nARTIFACTS ?=", "\nNEW_KNOB ?= 42\nARTIFACTS ?=", 1))
    result = make("-f", str(makefile), "help", f"BUILD_DIR={tmp_path / 'build'}")
    assert result.returncode == 0, result.stderr
    assert help_variables(result.stdout)["NEW_KNOB"] == "42"


def test_makes_stamps_are_the_tooling_s_stamps(tmp_path: Path) -> None:
    """Make dates the base and each image by the files the tooling writes: if the two paths
    drifted, every `make images` would build everything again (or never rebuild)."""
    build = tmp_path / "build"
    result = make("--eval", "print-%: ; @echo $($*)", "print-BASE_STAMP", "print-IMAGE_STAMPS",
                  f"BUILD_DIR={build}", "IMAGE_PREFIX=ci/x-", "ENGINE=podman", "APPS=flask",
                  "VARIANTS=uv", f"PYTHON={sys.executable}")  # fmt: skip
    assert result.returncode == 0, result.stderr
    cfg = Config(build_dir=build, image_prefix="ci/x-", engine="podman")
    assert result.stdout.split() == [str(cfg.base_stamp), str(cfg.stamp("flask", "uv"))]
