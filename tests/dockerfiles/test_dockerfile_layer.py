"""dockerfiles/buildtime/layer.py: each dependency layer's tools check, bytecode and staging."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import zipfile
from pathlib import Path

import pytest

SITE = "lib/python3.11/site-packages"


@pytest.fixture
def layer(runtime_module):
    return runtime_module("layer")


def install(venv: Path, files: dict[str, str]) -> None:
    """What an installer leaves: sources, no bytecode (--no-compile)."""
    for rel, text in files.items():
        path = venv / SITE / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def pyc(venv: Path, rel: str) -> Path:
    return Path(importlib.util.cache_from_source(str(venv / SITE / rel)))


def tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir()}


def test_finish_compiles_only_new_sources_hash_based(layer, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    install(venv, {"alpha/__init__.py": "A = 1\n", "alpha/py312_intrinsics.py": "type X = int\n",
                   "alpha/tests/test_a.py": "T = 1\n"})  # fmt: skip
    layer.finish(venv, None, None, False)
    compiled = pyc(venv, "alpha/__init__.py")
    flags = int.from_bytes(compiled.read_bytes()[4:8], "little")
    assert flags == 0b01, "not an unchecked hash-based pyc (PEP 552)"
    assert not pyc(venv, "alpha/py312_intrinsics.py").exists()  # torch's 3.12-only module
    assert not pyc(venv, "alpha/tests/test_a.py").exists()  # test suites: never imported
    before = compiled.stat().st_mtime_ns
    install(venv, {"beta/__init__.py": "B = 2\n"})
    os.utime(compiled, ns=(1, 1))  # a rewrite would move it again
    layer.finish(venv, None, None, False)
    assert pyc(venv, "beta/__init__.py").exists()
    assert compiled.stat().st_mtime_ns == 1 != before, "an earlier layer's bytecode was rewritten"


def test_a_source_that_does_not_compile_fails_the_layer(layer, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    install(venv, {"bad/__init__.py": "def (:\n"})
    with pytest.raises(SystemExit, match=r"1 file\(s\) do not compile, first: .*bad/__init__.py"):
        layer.finish(venv, None, None, False)


def test_stage_holds_what_each_layer_added(layer, tmp_path: Path) -> None:
    venv, stage = tmp_path / "venv", tmp_path / "layers"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (venv / "bin" / "python").symlink_to("/usr/bin/python3")
    install(venv, {"torch/__init__.py": "T = 1\n", "torch/include/x.h": "//\n"})
    prune = tmp_path / "prune.txt"
    prune.write_text("torch/include\nnumpy/tests\n")
    layer.finish(venv, prune, stage, False)
    install(venv, {"numpy/__init__.py": "N = 1\n", "numpy/tests/t.py": "\n"})
    layer.finish(venv, prune, stage, True)
    rel = venv.relative_to("/").as_posix()
    first, second = tree(stage / "1"), tree(stage / "2")
    assert f"{rel}/pyvenv.cfg" in first and f"{rel}/bin/python" in first
    assert os.readlink(stage / "1" / rel / "bin" / "python") == "/usr/bin/python3"
    assert f"{rel}/{SITE}/torch/__init__.py" in first
    assert not [p for p in first | second if "/include/" in p or "/tests/" in p], "not pruned"
    assert second == {f"{rel}/{SITE}/numpy/__init__.py",
                      Path(pyc(venv, "numpy/__init__.py")).relative_to("/").as_posix()}  # fmt: skip
    staged = stage / "2" / rel / SITE / "numpy" / "__init__.py"
    assert staged.samefile(venv / SITE / "numpy" / "__init__.py"), "a copy, not a hard link"
    times = {p.lstat().st_mtime for p in (stage / "1").rglob("*")}
    assert times == {layer.STAGED_MTIME}, "not every staged entry has the one fixed time"


def test_a_prune_pattern_no_layer_matched_fails_the_last_layer(layer, tmp_path: Path) -> None:
    venv, stage = tmp_path / "venv", tmp_path / "layers"
    install(venv, {"torch/__init__.py": "\n"})
    prune = tmp_path / "prune.txt"
    prune.write_text("torhc/include\n")  # a typo
    layer.finish(venv, prune, stage, False)  # another layer may still install it
    install(venv, {"numpy/__init__.py": "\n"})
    with pytest.raises(SystemExit, match=r"'torhc/include' names a package no layer installed"):
        layer.finish(venv, prune, stage, True)


def wheelhouse(tmp_path: Path, tampered: bool = False) -> Path:
    tools = tmp_path / "tools"
    tools.mkdir()
    with zipfile.ZipFile(tools / "uv-0.1-py3-none-any.whl", "w") as archive:
        archive.writestr("uv-0.1.data/scripts/uv", "#!/bin/sh\necho uv\n")
    digest = hashlib.sha256((tools / "uv-0.1-py3-none-any.whl").read_bytes()).hexdigest()
    if tampered:
        digest = "0" * 64
    (tools / "tools.txt").write_text(f"uv==0.1 \\\n    --hash=sha256:{digest}\n")
    return tools


def test_tools_are_hash_checked_and_uv_unpacked(layer, tmp_path: Path) -> None:
    tools = wheelhouse(tmp_path)
    layer.check_tools(tools, tmp_path / "uv")
    assert (tmp_path / "uv" / "uv").read_text() == "#!/bin/sh\necho uv\n"
    assert os.access(tmp_path / "uv" / "uv", os.X_OK)


def test_a_tools_wheel_off_the_lock_is_refused(layer, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"uv-0.1-py3-none-any.whl does not match any hash"):
        layer.check_tools(wheelhouse(tmp_path, tampered=True), tmp_path / "uv")
    assert not (tmp_path / "uv").exists()
