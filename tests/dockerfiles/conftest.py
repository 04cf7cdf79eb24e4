"""Fixtures for the Dockerfile tests: loading the standalone scripts the images use.

dockerfiles/runtime/ holds the files that ship in the image (launch.py, healthcheck.py),
dockerfiles/buildtime/ the programs a build step runs (prune_rootfs.py, prune_venv.py,
scrub_venv.py). Neither is part of the build tooling's package (`imagetools`, imported
directly): they run inside an image, so the tests load them by path.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = ROOT / "dockerfiles"
SCRIPT_DIRS = (DOCKERFILES / "runtime", DOCKERFILES / "buildtime")


def script_path(name: str) -> Path:
    """dockerfiles/runtime/<name>.py or dockerfiles/buildtime/<name>.py (exactly one)."""
    found = [folder / f"{name}.py" for folder in SCRIPT_DIRS if (folder / f"{name}.py").is_file()]
    assert len(found) == 1, f"{name}.py: expected in exactly one of {SCRIPT_DIRS}, found {found}"
    return found[0]


def load_path(name: str, path: Path) -> ModuleType:
    """Import a file that is not on sys.path under a unique name."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def runtime_module():
    """Load dockerfiles/{runtime,buildtime}/<name>.py fresh (its globals may be monkeypatched)."""

    def load(name: str) -> ModuleType:
        return load_path(f"dockerfiles_{name}_under_test", script_path(name))

    return load
