"""A new revision with the same inputs reaches the image's labels, on both engines.

buildah keys a LABEL step on its text as written (`revision="${VCS_REF}"`), so Podman's
layer cache once handed back, at a new commit, the image of an earlier one with its
revision and created labels. `make test` runs this file with Docker, `make test-podman`
with Podman. Builds a private copy of the frontend's uv context (the real build folder and
images are untouched) under the tag grocery-labeltest-<app>:uv, for a service and a job
(Podman 4.3 also dropped --label when the target was not the Dockerfile's last stage).
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


def built(app: str, private: Path, revision: str, epoch: int,
          ctx: Path | None = None) -> tuple[str, Path]:  # fmt: skip
    """Build the app at revision and epoch; return its image ID and context."""
    builder = engine_for(CFG.replace(build_dir=private, image_prefix=PREFIX, revision=revision,
                                     source_date_epoch=epoch))  # fmt: skip
    base = images.prepare(builder, [app])
    if ctx is None:
        ctx = images.assemble_context(builder.cfg, app, VARIANT, wheel_hashes(builder.cfg))
    images.build_image(builder, app, VARIANT, ctx, base, [])
    return builder.image_id(f"{PREFIX}{app}:{VARIANT}"), ctx


def facts(image: str) -> tuple[dict[str, str], list[str]]:
    labels = json.loads(engine(["image", "inspect", "--format", "{{json .Config.Labels}}", image]))
    layers = json.loads(engine(["image", "inspect", "--format", "{{json .RootFS.Layers}}", image]))
    return labels, layers


# One service and one job (the two kinds of last stage), from apps.toml.
KINDS = [SERVICES[0], *[app for app, spec in APPS.items() if "port" not in spec][:1]]


@pytest.mark.parametrize("app", KINDS)
def test_a_new_revision_with_the_same_inputs_gets_its_own_labels_and_the_same_layers(
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
        assert labels_a[f"{OCI}.revision"] == "a" * 40
        assert labels_b[f"{OCI}.revision"] == "b" * 40, "the layer cache kept the old label"
        assert labels_a[f"{OCI}.created"] == labels_b[f"{OCI}.created"]
        assert layers_b == layers_a, "a new revision alone changed a layer"
        assert second != first
        again, _ = built(app, private, "a" * 40, epoch, ctx)
        ids.append(again)
        assert facts(again)[0][f"{OCI}.revision"] == "a" * 40
        if ENGINE_OBJ.bit_reproducible:
            assert again == first, "the same revision and inputs gave another image ID"
    finally:
        shutil.rmtree(private, ignore_errors=True)
        engine(["rmi", f"{PREFIX}{app}:{VARIANT}"], check=False)
        for image in dict.fromkeys(ids):
            tags = engine(["image", "inspect", "--format", "{{json .RepoTags}}", image],
                          check=False)  # fmt: skip
            if tags.strip() in ("[]", "null"):
                engine(["rmi", image], check=False)
