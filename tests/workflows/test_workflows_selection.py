"""tests/conftest.py picks the container tests of a CI image job: real pytest runs on a sample
suite with the real conftest, the way `make test-containers APPS=... VARIANTS=...` calls it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from imagetools.common import ROOT

SAMPLE = """
import pytest

pytestmark = pytest.mark.container


@pytest.mark.parametrize(("app", "variant"), [("flask", "uv"), ("flask", "pip")])
def test_each(app, variant):
    pass


@pytest.mark.parametrize("variant", ["uv", "pip"])
@pytest.mark.images(apps=["backend"])
def test_backend(variant):
    pass


@pytest.mark.parametrize("pair", [("frontend", "uv")])
def test_pair(pair):
    pass


@pytest.mark.images(apps=["flask"], variants=["pip", "uv", "multistage"])
def test_across():
    pass


def test_none():
    pass
"""
INI = """[pytest]
addopts = --strict-markers -p no:cacheprovider
markers =
    container: needs an engine
    images(apps, variants): the images a test needs
    several_images: several images or none
"""


def collect(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    suite = tmp_path / "suite"
    if not suite.exists():
        suite.mkdir()
        shutil.copy(ROOT / "tests" / "conftest.py", suite / "conftest.py")
        (suite / "test_sample.py").write_text(SAMPLE)
        (suite / "test_unit.py").write_text("def test_unit():\n    pass\n")
        (suite / "pytest.ini").write_text(INI)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TEST_", "PYTEST_"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", *args], cwd=suite,
        env=base | {"PYTHONPATH": f"{ROOT / 'scripts'}:{ROOT / 'tests'}"} | env,
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def ids(result: subprocess.CompletedProcess) -> set[str]:
    assert result.returncode == 0, result.stdout + result.stderr
    return {line.split("::", 1)[1] for line in result.stdout.splitlines() if "::" in line}


def test_an_image_job_keeps_the_tests_of_its_image_alone(tmp_path: Path) -> None:
    result = collect(tmp_path, TEST_APPS="flask", TEST_VARIANTS="uv")
    assert ids(result) == {"test_each[flask-uv]", "test_unit"}
    assert "6 container tests need images outside APPS x VARIANTS" in result.stdout


def test_marks_and_pair_parameters_name_the_images(tmp_path: Path) -> None:
    assert ids(collect(tmp_path, TEST_APPS="backend", TEST_VARIANTS="pip")) == {
        "test_backend[pip]", "test_unit"}  # fmt: skip
    assert ids(collect(tmp_path, TEST_APPS="frontend", TEST_VARIANTS="uv")) == {
        "test_pair[pair0]", "test_unit"}  # fmt: skip
    # All of an app's variants: its cross-variant test comes too.
    assert ids(collect(tmp_path, TEST_APPS="flask")) == {
        "test_each[flask-uv]", "test_each[flask-pip]", "test_across", "test_unit"}  # fmt: skip


def test_everything_runs_by_default_and_several_images_is_a_mark(tmp_path: Path) -> None:
    everything = ids(collect(tmp_path))
    assert len(everything) == 8
    assert ids(collect(tmp_path, "-m", "several_images")) == {"test_across", "test_none"}


@pytest.mark.parametrize("mark", ['apps=["nope"]', 'variants=["conda"]'])
def test_a_mark_naming_an_unknown_image_is_an_error(tmp_path: Path, mark: str) -> None:
    collect(tmp_path)  # writes the suite
    sample = tmp_path / "suite" / "test_sample.py"
    sample.write_text(SAMPLE.replace('apps=["backend"]', mark))
    result = collect(tmp_path)
    assert result.returncode != 0
    assert "are not in dockerfiles/apps.toml x the variants" in result.stdout + result.stderr


def test_ci_image_jobs_select_by_image_not_by_keyword() -> None:
    jobs = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())["jobs"]
    runs = [
        step["run"] for step in jobs["images"]["steps"] if "test-containers" in step.get("run", "")
    ]
    assert [run.split() for run in runs] == [
        ["make", "test-containers", 'APPS="$APPS"', 'VARIANTS="$VARIANTS"']]  # fmt: skip
