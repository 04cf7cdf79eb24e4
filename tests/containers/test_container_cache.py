"""A code-only change rebuilds only the app layer: the dependency layer comes from the cache.

Uses the tooling's own functions (imagetools.images) on a private copy of its build folder (the real
build/context and the real images are untouched) and tags `grocery-cachetest-*`.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from containers_support import CFG, ROOT, engine, image_ref, require_image

from imagetools import images
from imagetools.engines import Engine, engine_for
from imagetools.wheelhouse import wheel_hashes

pytestmark = pytest.mark.container

APP, VARIANT = "frontend", "uv"
PREFIX = "grocery-cachetest-"
INSTALL_STEP = "uv pip install"
TAG = f"{PREFIX}{APP}:{VARIANT}"


@dataclass
class Built:
    """The first build of the app: its context, base image, epoch and layers."""

    builder: Engine
    ctx: Path
    base_image: str
    epoch: int
    layers: list[str]
    log_file: Path
    wheel_hashes: dict[str, str]
    image_ids: list[str]


@pytest.fixture(scope="module")
def first_build() -> Iterator[Built]:
    """Build the app once into a private build folder beside the real one (same file system:
    the context's wheels are hard links) under the tag grocery-cachetest-<app>:<variant>."""
    require_image(image_ref(APP, VARIANT))  # the real build ran, so its wheels are here
    private = ROOT / "build" / f"cachetest-{uuid.uuid4().hex[:8]}"
    private.mkdir(parents=True)
    (private / "wheelhouse").symlink_to(ROOT / "build" / "wheelhouse")
    builder = engine_for(CFG.replace(build_dir=private, image_prefix=PREFIX))
    image_ids: list[str] = []
    try:
        base_image = images.prepare(builder, [APP])
        hashes = wheel_hashes(builder.cfg)
        ctx = images.assemble_context(builder.cfg, APP, VARIANT, hashes)
        assert ctx.is_relative_to(private)
        assert builder.cfg.tag(APP, VARIANT) == TAG
        images.build_image(builder, APP, VARIANT, ctx, base_image, [])
        image_ids.append(image_id(TAG))
        log_file = private / "logs" / builder.name / f"{PREFIX}{APP}-{VARIANT}.log"
        yield Built(builder, ctx, base_image, builder.cfg.source_date_epoch, layers(TAG),
                    log_file, hashes, image_ids)  # fmt: skip
    finally:
        shutil.rmtree(private, ignore_errors=True)
        remove_test_images(image_ids)


def remove_test_images(image_ids: list[str]) -> None:
    """Untag TAG, then remove the images the earlier builds left untagged. An image that
    carries any other tag (a fully cached build can equal a real image) is left alone."""
    engine(["rmi", TAG], check=False)
    for ident in dict.fromkeys(image_ids):
        tags = engine(["image", "inspect", "--format", "{{json .RepoTags}}", ident], check=False)
        if tags.strip() in ("[]", "null"):
            engine(["rmi", ident], check=False)


def image_id(ref: str) -> str:
    return engine(["image", "inspect", "--format", "{{.Id}}", ref]).strip()


def layers(ref: str) -> list[str]:
    return json.loads(engine(["image", "inspect", "--format", "{{json .RootFS.Layers}}", ref]))


def step_status(log: str, marker: str) -> str:
    """`CACHED` or `DONE ...` of the BuildKit step whose title contains marker."""
    number = next(
        (m[1] for m in re.finditer(r"^#(\d+) \[[^\]]+\] (.*)$", log, re.M) if marker in m[2]),
        None,
    )
    assert number is not None, f"no build step with {marker!r} in the log:\n{log[-3000:]}"
    statuses = re.findall(rf"^#{number} (CACHED|DONE [\d.]+s|ERROR.*)$", log, re.M)
    assert statuses, f"step #{number} has no status in the log"
    return statuses[-1]


def rebuild_after_code_change(first: Built, revision: str | None, epoch: int) -> list[str]:
    """Append a comment to one module of the context and build again; return the layers."""
    source = sorted((first.ctx / "app" / APP).glob("*.py"))[0]
    with source.open("a") as handle:
        handle.write(f"# a code-only change {uuid.uuid4().hex}\n")
    builder = engine_for(
        first.builder.cfg.replace(
            source_date_epoch=epoch, revision=revision or first.builder.cfg.revision
        )
    )
    images.build_image(builder, APP, VARIANT, first.ctx, first.base_image, [])
    first.image_ids.append(image_id(TAG))
    log = first.log_file.read_text()
    assert step_status(log, INSTALL_STEP) == "CACHED", (
        "the dependency layer was rebuilt; a build argument used before it (ARG VCS_REF, "
        "CREATED, ...) or a changed lock/wheel invalidates it: declare such ARGs after the "
        "dependency RUN"
    )
    assert step_status(log, "COPY app/").startswith("DONE"), "the app layer was not rebuilt"
    return layers(TAG)


def test_code_only_change_reuses_the_dependency_layer(first_build: Built) -> None:
    after = rebuild_after_code_change(first_build, None, first_build.epoch)
    before = first_build.layers
    assert len(after) == len(before)
    assert after[:-1] == before[:-1], "a layer below the app layer changed"
    assert after[-1] != before[-1], "the app layer did not change"


def test_new_commit_with_code_only_change_reuses_the_dependency_layer(first_build: Built) -> None:
    """What CI sees: a new commit changes VCS_REF, CREATED and the context's mtimes."""
    epoch = first_build.epoch + 3600
    images.assemble_context(
        first_build.builder.cfg.replace(source_date_epoch=epoch),
        APP,
        VARIANT,
        first_build.wheel_hashes,
    )
    after = rebuild_after_code_change(first_build, "f" * 40, epoch)
    assert after[:-1] == first_build.layers[:-1], "a layer below the app layer changed"
