"""What a new revision with the same inputs gives, on each engine.

Docker (BuildKit) computes the labels every build: the image names the new revision, with
the same layers. buildah (Podman 4.3) keys a LABEL step on its text as written
(`revision="${VCS_REF}"`), so the image stays the one the first revision with these inputs
built, labels included; `make push` records the revision the image names. A new revision
with new code names itself, and on Podman equals a build from nothing. `make test` runs
this file with Docker, `make test-podman` with Podman, for one service and one job; each
builds a private copy of the app's uv context under the tag grocery-labeltest-<app>:uv.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest
from containers_support import (
    APPS,
    CFG,
    ENGINE_OBJ,
    ROOT,
    SERVICES,
    engine,
    image_ref,
    require_image,
)

from imagetools import images
from imagetools.engines import engine_for
from imagetools.wheelhouse import wheel_hashes

pytestmark = pytest.mark.container

VARIANT, PREFIX = "uv", "grocery-labeltest-"
OCI = "org.opencontainers.image"


def built(app: str, private: Path, revision: str, epoch: int, ctx: Path | None = None,
          prefix: str = PREFIX, flags: tuple[str, ...] = ()) -> tuple[str, Path]:  # fmt: skip
    """Build the app at revision and epoch; return its image ID and context."""
    builder = engine_for(CFG.replace(build_dir=private, image_prefix=prefix, revision=revision,
                                     source_date_epoch=epoch))  # fmt: skip
    base = images.prepare(builder, [app])
    if ctx is None:
        ctx = images.assemble_context(builder.cfg, app, VARIANT, wheel_hashes(builder.cfg))
    images.build_image(builder, app, VARIANT, ctx, base, list(flags))
    return builder.image_id(f"{prefix}{app}:{VARIANT}"), ctx


def facts(image: str) -> tuple[dict[str, str], list[str]]:
    labels = json.loads(engine(["image", "inspect", "--format", "{{json .Config.Labels}}", image]))
    layers = json.loads(engine(["image", "inspect", "--format", "{{json .RootFS.Layers}}", image]))
    return labels, layers


# One service and one job (the two kinds of last stage), from apps.toml.
KINDS = [
    next(app for app in SERVICES if "model" not in APPS[app]),
    *[app for app, spec in APPS.items() if "port" not in spec][:1],
]


@pytest.mark.parametrize("app", KINDS)
def test_a_new_revision_with_the_same_inputs_keeps_the_layers(
    app: str,
) -> None:
    require_image(image_ref(app, VARIANT))  # the real build ran, so its wheels are here
    private = ROOT / "build" / f"labeltest-{uuid.uuid4().hex[:8]}"
    private.mkdir(parents=True)
    (private / "wheelhouse").symlink_to(ROOT / "build" / "wheelhouse")
    ids: list[str] = []
    epoch = CFG.source_date_epoch
    try:
        first, ctx = built(app, private, "a" * 40, epoch)
        ids.append(first)
        # The same context (same files, same epoch): only the revision differs.
        second, _ = built(app, private, "b" * 40, epoch, ctx)
        ids.append(second)
        (labels_a, layers_a), (labels_b, layers_b) = facts(first), facts(second)
        assert layers_b == layers_a, "a new revision alone changed a layer"
        if ENGINE_OBJ.bit_reproducible:
            # buildah keys the LABEL step on its text: the image (labels included) of the
            # first revision that built these inputs, which `make push` records as such.
            assert second == first and labels_b == labels_a, "Podman's cache: the same image"
        else:
            assert labels_a[f"{OCI}.revision"] == "a" * 40
            assert labels_b[f"{OCI}.revision"] == "b" * 40, "BuildKit kept the old label"
            assert second != first
    finally:
        shutil.rmtree(private, ignore_errors=True)
        engine(["rmi", f"{PREFIX}{app}:{VARIANT}"], check=False)
        for image in dict.fromkeys(ids):
            tags = engine(["image", "inspect", "--format", "{{json .RepoTags}}", image],
                          check=False)  # fmt: skip
            if tags.strip() in ("[]", "null"):
                engine(["rmi", image], check=False)


def test_a_new_revision_with_new_code_names_itself_and_rebuilds_the_same_from_nothing() -> None:
    """The build CI runs on every commit: code changed, the dependency layer reused from an
    earlier commit's build. The image names the new revision (not the one that built the
    reused layers), and with Podman a build from nothing at that revision (--no-cache, as
    `verify-published` does) gives the same image ID: the reused steps' times agree with the
    new ones. Docker gives the same content (its own check: verify-repro)."""
    app = KINDS[0]
    require_image(image_ref(app, VARIANT))
    private = ROOT / "build" / f"labeltest-{uuid.uuid4().hex[:8]}"
    private.mkdir(parents=True)
    (private / "wheelhouse").symlink_to(ROOT / "build" / "wheelhouse")
    cold = "grocery-labeltest-cold-"
    epoch = CFG.source_date_epoch
    first = ""
    try:
        first, ctx = built(app, private, "a" * 40, epoch)
        module = sorted((ctx / "app").rglob("*.py"))[0]
        module.write_text(module.read_text() + f"# a code-only change {uuid.uuid4().hex}\n")
        warm, _ = built(app, private, "c" * 40, epoch + 86_400, ctx)
        (_, layers_a), (labels_c, layers_c) = facts(first), facts(warm)
        assert labels_c[f"{OCI}.revision"] == "c" * 40, "the image names an older revision"
        assert layers_c[:-1] == layers_a[:-1] and layers_c[-1] != layers_a[-1]
        if ENGINE_OBJ.bit_reproducible:
            scratch, _ = built(app, private, "c" * 40, epoch + 86_400, ctx, cold, ("--no-cache",))
            assert scratch == warm, "a build from nothing at that revision differs"
    finally:
        shutil.rmtree(private, ignore_errors=True)
        engine(["rmi", f"{PREFIX}{app}:{VARIANT}", f"{cold}{app}:{VARIANT}"], check=False)
        if first:  # the first build lost its tag to the second: remove it if no tag is left
            tags = engine(["image", "inspect", "--format", "{{json .RepoTags}}", first],
                          check=False)  # fmt: skip
            if tags.strip() in ("[]", "null"):
                engine(["rmi", first], check=False)
