"""dockerfiles/buildtime/prune_venv.py: removes the listed globs from site-packages, loudly."""

from __future__ import annotations

import pytest


@pytest.fixture
def venv(tmp_path):
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    for rel in (
        "torch/include/c10/core.h",
        "torch/bin/protoc",
        "torch/lib/libtorch_cpu.so",
        "torch/lib/libtorchbind_test.so",
        "numpy/tests/test_a.py",
        "numpy/linalg/tests/test_b.py",
        "numpy/linalg/tests/data/tests/nested.py",
        "numpy/linalg/linalg.py",
    ):
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(b"x" * 10)
    return tmp_path / "venv", site


def write_list(tmp_path, lines):
    path = tmp_path / "prune.txt"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_removes_listed_files_and_dirs_and_keeps_the_rest(runtime_module, venv, tmp_path, capsys):
    root, site = venv
    prune = runtime_module("prune_venv")
    patterns = ["# a comment", "", "torch/include", "torch/bin", "torch/lib/lib*_test.so",
                "numpy/**/tests"]  # fmt: skip
    assert prune.main(str(root), write_list(tmp_path, patterns)) == 0
    assert not (site / "torch/include").exists()
    assert not (site / "torch/bin").exists()
    assert not (site / "torch/lib/libtorchbind_test.so").exists()
    assert not (site / "numpy/tests").exists()
    assert not (site / "numpy/linalg/tests").exists()
    assert (site / "torch/lib/libtorch_cpu.so").is_file()
    assert (site / "numpy/linalg/linalg.py").is_file()
    assert "4 patterns" in capsys.readouterr().out


def test_a_pattern_matching_nothing_fails(runtime_module, venv, tmp_path):
    root, _ = venv
    prune = runtime_module("prune_venv")
    with pytest.raises(SystemExit, match="matches nothing"):
        prune.main(str(root), write_list(tmp_path, ["torch/no-such-dir"]))


def test_an_empty_list_removes_nothing(runtime_module, venv, tmp_path):
    root, site = venv
    prune = runtime_module("prune_venv")
    before = sorted(p.relative_to(site) for p in site.rglob("*"))
    assert prune.main(str(root), write_list(tmp_path, [])) == 0
    assert sorted(p.relative_to(site) for p in site.rglob("*")) == before
