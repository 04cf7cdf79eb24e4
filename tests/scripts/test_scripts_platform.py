"""The images' platform is explicit, and the host tooling runs on any CPython >= 3.11."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from imagetools.common import ROOT


@pytest.mark.parametrize("kind", ["docker", "podman"])
@pytest.mark.parametrize("command", ["build", "pull", "run", "create"])
def test_build_pull_run_and_create_name_the_platform(make_engine, fake_client, kind: str,
                                                     command: str) -> None:  # fmt: skip
    """Podman also never pulls on run and create: with a platform, its pull policy would
    replace a local tag by a registry's image of the same name."""
    make_engine(kind).run([command, "--rm", "x"])
    never = ["--pull=never"] if kind == "podman" and command in ("run", "create") else []
    assert fake_client.calls == [[command, "--platform=linux/amd64", *never, "--rm", "x"]]


def test_other_commands_and_an_explicit_platform_are_left_alone(make_engine,
                                                                fake_client) -> None:  # fmt: skip
    make_engine("docker").run(["image", "inspect", "x"])
    make_engine("podman").run(["run", "--platform", "linux/amd64", "x"])
    make_engine("podman").run(["save", "--output", "x.tar", "x"])
    assert fake_client.calls == [["image", "inspect", "x"],
                                 ["run", "--platform", "linux/amd64", "x"],
                                 ["save", "--output", "x.tar", "x"]]  # fmt: skip


def test_an_image_command_refuses_it_before_anything_runs(tmp_path: Path) -> None:
    """One line, exit 1, and no engine check or download first."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "scripts"), PLATFORM="linux/arm64",
               BUILD_DIR=str(tmp_path / "build"))  # fmt: skip
    result = subprocess.run([sys.executable, "-m", "imagetools", "image", "flask", "uv"], cwd=ROOT,
                            env=env, capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("imagetools: error: PLATFORM=linux/arm64 is not covered")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "build").exists()


def pythons() -> dict[tuple[int, int], str]:
    """{(major, minor): path} of the CPython interpreters on this machine (PATH and pyenv)."""
    found: dict[tuple[int, int], str] = {}
    paths = [shutil.which(f"python3.{minor}") for minor in range(6, 20)]
    paths += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python3")))
    for path in filter(None, paths):
        result = subprocess.run([path, "-c", "import sys; print(*sys.version_info[:2])"],
                                capture_output=True, text=True, check=False)  # fmt: skip
        if result.returncode == 0:
            major, minor = map(int, result.stdout.split())
            found.setdefault((major, minor), path)
    return found


def stand_in(path: Path, version: str) -> str:
    """A stand-in interpreter that answers the Makefile's checks as CPython <version> would."""
    path.write_text(f"#!/bin/sh\necho 'is Python {version} on linux/x86_64'\n")
    path.chmod(0o755)
    return str(path)


NEWER = [path for version, path in sorted(pythons().items()) if version >= (3, 12)]


@pytest.mark.parametrize("python", NEWER or [sys.executable])
def test_host_tooling_runs_on_newer_pythons(python: str) -> None:
    """lock-check through make with PYTHON=<each CPython 3.12+ here> (3.11 where none is)."""
    result = subprocess.run(["make", "-s", "lock-check", f"PYTHON={python}"], cwd=ROOT,
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "locks are up to date" in result.stdout


def test_an_old_python_is_one_clear_line(tmp_path: Path) -> None:
    old = pythons().get((3, 10)) or stand_in(tmp_path / "python3.10", "3.10")
    result = subprocess.run(["make", "images", f"PYTHON={old}"], cwd=ROOT, capture_output=True,
                            text=True, check=False)  # fmt: skip
    assert result.returncode != 0
    assert result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert f"PYTHON={old} is Python 3.10" in line
    assert line.endswith("the build tooling needs CPython 3.11 or newer (set PYTHON=...).  Stop.")


def test_the_test_venv_needs_cpython_311_and_says_so(tmp_path: Path) -> None:
    newer = NEWER[0] if NEWER else stand_in(tmp_path / "python3.12", "3.12")
    venv = tmp_path / "venv"
    result = subprocess.run(["make", "venv", f"VENV={venv}", f"VENV_PYTHON={newer}"],
                            cwd=ROOT, capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode != 0
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert f"VENV_PYTHON={newer} is Python 3.1" in line
    assert "need CPython 3.11 on Linux x86_64" in line
    assert not venv.exists()


@pytest.mark.parametrize("version", ["3.81", "3.80"])
def test_a_make_too_old_for_the_makefile_is_one_clear_line(version: str) -> None:
    # macOS ships GNU Make 3.81; MAKE_VERSION on the command line stands in for it (`-n`: a
    # Makefile without the check would print the recipes, not run them).
    result = subprocess.run(["make", "-n", "images", f"MAKE_VERSION={version}"], cwd=ROOT,
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode != 0
    assert result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert f"GNU Make {version} is too old for this Makefile (it needs 3.82 or newer)" in line
    assert "brew install make" in line
