"""A fleet shares its layer cache through a registry (CACHE_REPO): a second, empty Docker
engine builds from it without re-running the dependency install.

This engine builds one service (uv and multistage) on a base pulled by digest from a real
registry, with CACHE_REPO set: Docker 20.10's BuildKit writes the image's cache into its
config (inline) and the image is pushed to CACHE_REPO. A second dockerd, empty, then builds
the same: the images must hold their own lock (the build's image check), have the first
engine's layers, and re-run no step. Podman 4.3 is not tested here: its --cache-from never
pulls (README, "A cache a fleet can share").
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path

import pytest
from containers_support import (
    APPS,
    CFG,
    ENGINE,
    ROOT,
    SERVICES,
    free_port,
    image_ref,
    require_image,
    second_dockerd,
)

from imagetools import explain, images, registry
from imagetools.config import Config
from imagetools.engines import engine_for
from imagetools.wheelhouse import wheel_hashes

pytestmark = pytest.mark.container

APP = next(app for app in SERVICES if "model" not in APPS[app])  # a service with no model
PREFIX = "grocery-fleettest-"


def build(cfg: Config, variant: str) -> dict:
    """Build APP:variant on the engine DOCKER_HOST names; what the build did and made."""
    engine = engine_for(cfg)
    base = images.prepare(engine, [APP])
    ctx = images.assemble_context(cfg, APP, variant, wheel_hashes(cfg))
    started = time.monotonic()
    images.build_image(engine, APP, variant, ctx, base, [])  # checks the image against its lock
    tag = cfg.tag(APP, variant)
    log = cfg.build_dir / "logs" / "docker" / f"{PREFIX}{APP}-{variant}.log"
    return {
        "seconds": time.monotonic() - started,
        "decisions": explain.decisions(log.read_text()),
        "layers": json.loads(engine.inspect(tag, "{{json .RootFS.Layers}}")),
    }


def test_an_empty_engine_builds_from_the_fleet_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if ENGINE != "docker":
        pytest.fail("this test drives a second dockerd: run it with ENGINE=docker")
    require_image(image_ref(APP, "uv"))  # the real build ran: wheels and base are here
    addr = f"127.0.0.1:{free_port()}"
    registry.start(CFG, addr, tmp_path / "registry")
    private = ROOT / "build" / f"fleettest-{uuid.uuid4().hex[:8]}"
    private.mkdir(parents=True)
    (private / "wheelhouse").symlink_to(ROOT / "build" / "wheelhouse")
    local = engine_for(CFG)
    base_ref = f"{addr}/fleet/base:1"
    try:
        # Both engines build on one base, pulled by digest (the second has nothing else).
        local.output(["tag", local.image_id(images.baseimage.resolve(local)), base_ref])
        base = f"{addr}/fleet/base@{local.push(base_ref)}"
        cfg = CFG.replace(build_dir=private, image_prefix=PREFIX, base_image=base,
                          cache_repo=f"{addr}/fleet/cache")  # fmt: skip
        first = {variant: build(cfg, variant) for variant in ("uv", "multistage")}
        with second_dockerd(tmp_path / "dockerd") as host, monkeypatch.context() as env:
            env.setenv("DOCKER_HOST", host)
            assert not engine_for(cfg).exists(base), "the second engine is not empty"
            second = {variant: build(cfg, variant) for variant in ("uv", "multistage")}
        report = {v: {"decisions": second[v]["decisions"],
                      "seconds": round(second[v]["seconds"], 1)} for v in second}  # fmt: skip
        print(f"fleet cache, second engine: {report}")
        for variant in second:
            assert second[variant]["layers"] == first[variant]["layers"], variant
        # No step ran: inline cache holds the final stage's steps only, but their cache keys
        # are computed from the Dockerfile and the context, so the builder stage's RUNs are
        # not needed once `COPY --from=builder` is a hit.
        steps = ["setup", "deps-torch", "deps-numeric", "deps-rest", "app"]  # apps.toml [[layer]]
        assert second["uv"]["decisions"] == dict.fromkeys(steps, "cached"), report
        assert set(second["multistage"]["decisions"].values()) == {"cached"}, report
    finally:
        registry.stop(tmp_path / "registry")
        shutil.rmtree(private, ignore_errors=True)
        tags = [t for t in local.tags() if t.startswith((PREFIX, f"{addr}/"))]
        local.remove(*tags)
