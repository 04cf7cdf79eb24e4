"""Reproducibility in `make test`: one small image built twice from clean, per engine.

The full matrix is `make verify-repro` (and `ENGINE=podman make verify-repro`); here the
frontend's uv image stands for it. Docker Engine 20.10 cannot pin timestamps, so its two
builds must be content-identical; Podman's `--timestamp` must give the same image ID.
"""

from __future__ import annotations

import pytest
from containers_support import CFG

from imagetools import images, repro
from imagetools.engines import engine_for
from imagetools.wheelhouse import wheel_hashes

pytestmark = pytest.mark.container


def two_clean_builds(engine_name: str, app: str = "frontend", variant: str = "uv") -> dict:
    engine = engine_for(CFG.replace(engine=engine_name))
    base_image = images.prepare(engine, [app])
    ctx = images.assemble_context(engine.cfg, app, variant, wheel_hashes(engine.cfg))
    return repro.verify(engine, app, variant, ctx, base_image)


def test_docker_builds_are_content_identical():
    result = two_clean_builds("docker")
    assert result["content_identical"], "\n".join(result["differences"][:30])
    assert result["differences"] == []


def test_podman_builds_are_bit_identical():
    result = two_clean_builds("podman")
    assert result["ids"][0] and result["bit_identical"], (
        f"image IDs differ: {result['ids']}; " + "; ".join(result["differences"][:20])
    )
