"""The build scripts import each other by plain name (`from common import ...`), as they do
when run as `python scripts/x.py`: put scripts/ on sys.path before the tests import them.

Appended, not prepended: it must not shadow an installed module for the rest of the session
(`build` is one; scripts/build.py is loaded by path instead)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.append(str(SCRIPTS))


@pytest.fixture(scope="session")
def build_module() -> ModuleType:
    """scripts/build.py, imported under its own name (`build` is also a PyPI package)."""
    name = "grocery_build_script"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SCRIPTS / "build.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(autouse=True)
def _fresh_engine_cache():
    """common.engine_command is cached per process: no test may see another's client."""
    import common

    common.engine_command.cache_clear()
    yield
    common.engine_command.cache_clear()
