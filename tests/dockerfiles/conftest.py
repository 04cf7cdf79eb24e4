"""Fixtures for the Dockerfile and runtime tests: loading the runtime scripts and scripts/."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = ROOT / "dockerfiles"
RUNTIME = DOCKERFILES / "runtime"


def load_path(name: str, path: Path) -> ModuleType:
    """Import a file that is not on sys.path (the runtime scripts) under a unique name."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def runtime_module():
    """Load dockerfiles/runtime/<name>.py fresh (module globals may be monkeypatched)."""

    def load(name: str) -> ModuleType:
        return load_path(f"runtime_{name}_under_test", RUNTIME / f"{name}.py")

    return load


@pytest.fixture(scope="session")
def scripts_on_path() -> Path:
    """scripts/ on sys.path, so `import base` works as it does for the scripts themselves."""
    scripts = str(ROOT / "scripts")
    if scripts not in sys.path:
        sys.path.append(scripts)  # appended: never shadows an installed module
    return ROOT / "scripts"
