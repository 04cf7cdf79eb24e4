"""Reproducibility in `make test`: one small image built twice from clean, per engine.

The full matrix is `make verify-repro` (and `ENGINE=podman make verify-repro`); here the
frontend's uv image stands for it. Docker Engine 20.10 cannot pin timestamps, so its two
builds must be content-identical; Podman's `--timestamp` must give the same image ID.
"""

from __future__ import annotations

import sys

import pytest
from containers_support import ROOT, load_script

pytestmark = pytest.mark.container


@pytest.fixture(scope="module")
def scripts(request):
    """repro.py and build.py, with `import build` meaning scripts/build.py (not pypa's)."""
    build = load_script("build")
    saved = sys.modules.get("build")
    sys.modules["build"] = build
    repro = load_script("repro")
    request.addfinalizer(
        lambda: sys.modules.__setitem__("build", saved) if saved else sys.modules.pop("build")
    )
    return build, repro, load_script("base"), load_script("engine"), load_script("wheels")


def two_clean_builds(scripts, engine_name: str, app: str = "frontend", variant: str = "uv"):
    build, repro, base, engine, wheels = scripts
    engine.ensure(engine_name)
    epoch = build.source_date_epoch()
    base_image = base.resolve(engine_name, base.DEFAULT_BASE, base.DEFAULT_LOCAL_BASE, epoch)
    hashes = wheels.ensure_wheelhouse(build.BUILD / "wheelhouse", list(build.load_apps()))
    ctx = build.assemble_context(app, hashes, ROOT / "artifacts", epoch)
    return repro.verify(engine_name, app, variant, ctx, base_image, epoch)


def test_docker_builds_are_content_identical(scripts):
    result = two_clean_builds(scripts, "docker")
    assert result["content_identical"], "\n".join(result["differences"][:30])
    assert result["differences"] == []


def test_podman_builds_are_bit_identical(scripts):
    result = two_clean_builds(scripts, "podman")
    assert result["ids"][0] and result["bit_identical"], (
        f"image IDs differ: {result['ids']}; " + "; ".join(result["differences"][:20])
    )


def test_content_comparison_reports_what_differs(scripts):
    """The comparison itself can fail: a changed file and a changed mode are named."""
    _, repro, *_ = scripts
    config = {"architecture": "amd64", "config": {"Env": ["A=1"]}}
    layer = {"app/x.py": ("0", "0o644", 0, 0, 3, "aaa"), "app/y": ("2", "0o777", 0, 0, 0, "x")}
    changed = {"app/x.py": ("0", "0o644", 0, 0, 3, "bbb"), "app/y": ("2", "0o755", 0, 0, 0, "x")}
    assert repro.compare_content((config, [layer]), (config, [dict(layer)])) == []
    diffs = repro.compare_content((config, [layer]), (config, [changed]))
    assert diffs == ["layer 1: /app/x.py differs (content)", "layer 1: /app/y differs (mode)"]
    other = {"architecture": "amd64", "config": {"Env": ["A=2"]}}
    assert repro.compare_content((config, []), (other, [])) == [
        "config differs in: config.Env (\"['A=1']\" vs \"['A=2']\")"
    ]
