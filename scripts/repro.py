#!/usr/bin/env python3
"""Build each image twice from a clean state and compare: `make verify-repro`.

    python scripts/repro.py [--apps ...] [--variants ...] [--engine docker|podman]

Both builds use the same assembled context, `--no-cache`, and SOURCE_DATE_EPOCH = the last
commit's time. Podman (`--timestamp`) must give identical image IDs. Docker Engine 20.10
cannot pin timestamps, so its builds are compared by content: every file's path, bytes, mode,
owner and link target in every layer, plus the image config without its dates. The report
says exactly what differs. Results: build/repro/report.json; exit 1 when an image is not
reproducible (bit-identical with podman, content-identical with docker).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tarfile
import tempfile
from pathlib import Path

import base
import build
import engine as engine_mod
from common import (
    BUILD,
    VARIANTS,
    ScriptError,
    check_variant,
    engine_run,
    load_apps,
    main_wrapper,
    note,
    source_date_epoch,
    step,
    trim_build_cache,
)
from wheels import ensure_wheelhouse

# Config fields that record when or where a build ran, not what it produced.
VOLATILE_CONFIG = {"created", "container", "docker_version", "history", "id", "parent"}
VOLATILE_CONTAINER_CONFIG = {"Hostname", "Image"}


def image_id(engine: str, tag: str) -> str:
    result = engine_run(
        engine, ["image", "inspect", "--format", "{{.Id}}", tag], capture_output=True, text=True
    )
    return result.stdout.strip()


def layer_entries(layer: tarfile.TarFile) -> dict[str, tuple]:
    """path -> (type, mode, uid, gid, size, sha256 or link target) for one layer tar."""
    entries = {}
    for member in layer:
        content = ""
        if member.isfile():
            handle = layer.extractfile(member)
            content = hashlib.sha256(handle.read() if handle else b"").hexdigest()
        elif member.issym() or member.islnk():
            content = member.linkname
        entries[member.name] = (
            member.type.decode(),
            oct(member.mode),
            member.uid,
            member.gid,
            member.size,
            content,
        )
    return entries


def image_content(archive: Path) -> tuple[dict, list[dict[str, tuple]]]:
    """(config without volatile fields, [entries of each layer]) from `save` output."""
    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))[0]
        config = json.load(outer.extractfile(manifest["Config"]))
        layers = []
        for name in manifest["Layers"]:
            with tarfile.open(fileobj=outer.extractfile(name)) as layer:
                layers.append(layer_entries(layer))
    config = {k: v for k, v in config.items() if k not in VOLATILE_CONFIG}
    for key in ("container_config", "config"):
        if isinstance(config.get(key), dict):
            config[key] = {k: v for k, v in config[key].items()
                           if k not in VOLATILE_CONTAINER_CONFIG}  # fmt: skip
    config.pop("container_config", None)
    config.get("rootfs", {}).pop("diff_ids", None)  # layer digests include file times
    return config, layers


def compare_content(a: tuple[dict, list], b: tuple[dict, list]) -> list[str]:
    """Human-readable differences between two image contents (empty: content-identical)."""
    diffs = []
    if a[0] != b[0]:
        diffs.append(f"config differs in: {', '.join(_config_paths(a[0], b[0]))}")
    if len(a[1]) != len(b[1]):
        diffs.append(f"layer count differs: {len(a[1])} vs {len(b[1])}")
    for index, (la, lb) in enumerate(zip(a[1], b[1], strict=False), 1):
        for path in sorted(set(la) | set(lb)):
            if la.get(path) != lb.get(path):
                what = "only in one build" if path not in la or path not in lb else "differs"
                detail = "" if what != "differs" else _field_diff(la[path], lb[path])
                diffs.append(f"layer {index}: /{path} {what}{detail}")
    return diffs


def _config_paths(x: object, y: object, path: str = "") -> list[str]:
    """The dotted paths where two config values differ, with both values for leaves."""
    if isinstance(x, dict) and isinstance(y, dict):
        return [p for k in sorted(set(x) | set(y))
                for p in _config_paths(x.get(k), y.get(k), f"{path}.{k}".lstrip("."))]  # fmt: skip
    return [] if x == y else [f"{path} ({str(x)[:80]!r} vs {str(y)[:80]!r})"]


def _field_diff(x: tuple, y: tuple) -> str:
    names = ("type", "mode", "uid", "gid", "size", "content")
    return " (" + ", ".join(n for n, p, q in zip(names, x, y, strict=True) if p != q) + ")"


def save(engine: str, tag: str, path: Path) -> None:
    args = ["save", "--output", str(path), tag]
    if engine == "podman":
        args[1:1] = ["--format", "docker-archive"]
    result = engine_run(engine, args, capture_output=True, text=True)
    if result.returncode != 0:
        raise ScriptError(f"saving {tag} failed: {result.stderr.strip()}")


def verify(engine: str, app: str, variant: str, ctx: Path, base_image: str, epoch: int) -> dict:
    tags = []
    saved = os.environ.get("IMAGE_PREFIX")
    try:
        for run in ("a", "b"):
            os.environ["IMAGE_PREFIX"] = f"repro-{os.getpid()}-{run}-"  # unique per run
            tags.append(build.image_name(app, variant))
            build.build_image(engine, app, variant, ctx, base_image, epoch, ["--no-cache"])
    finally:  # a failed build must not leave the prefix set for the rest of the process
        if saved is None:
            os.environ.pop("IMAGE_PREFIX", None)
        else:
            os.environ["IMAGE_PREFIX"] = saved
    ids = [image_id(engine, tag) for tag in tags]
    result = {"image": f"{app}:{variant}", "engine": engine, "ids": ids,
              "bit_identical": ids[0] == ids[1], "differences": []}  # fmt: skip
    if not result["bit_identical"]:
        with tempfile.TemporaryDirectory(dir=BUILD) as tmp:
            contents = []
            for tag in tags:
                archive = Path(tmp) / f"{tag.replace(':', '-')}.tar"
                save(engine, tag, archive)
                contents.append(image_content(archive))
        result["differences"] = compare_content(*contents)
    result["content_identical"] = result["bit_identical"] or not result["differences"]
    engine_run(engine, ["rmi", "--force", *tags], capture_output=True)
    trim_build_cache(engine)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", default=os.environ.get("ENGINE", "docker"))
    parser.add_argument("--apps", nargs="*", default=os.environ.get("APPS", "").split())
    parser.add_argument("--variants", nargs="*", default=os.environ.get("VARIANTS", "").split())
    parser.add_argument("--artifacts", type=Path, default=build.ROOT / "artifacts")
    parser.add_argument("--out", type=Path, default=BUILD / "repro")
    args = parser.parse_args()
    apps = args.apps or list(load_apps())
    variants = [check_variant(v) for v in (args.variants or VARIANTS)]
    engine_mod.ensure(args.engine)
    epoch = source_date_epoch()
    base_image = base.resolve(
        args.engine,
        os.environ.get("BASE_IMAGE") or base.DEFAULT_BASE,
        os.environ.get("LOCAL_BASE") or base.DEFAULT_LOCAL_BASE,
        epoch,
    )
    hashes = ensure_wheelhouse(BUILD / "wheelhouse", list(load_apps()))
    required = "bit-identical" if args.engine == "podman" else "content-identical"
    results = []
    total = len(apps) * len(variants)
    for number, (app, variant) in enumerate(((a, v) for a in apps for v in variants), 1):
        step(f"[{number}/{total}] {app}:{variant}: two clean builds (SOURCE_DATE_EPOCH={epoch})")
        ctx = build.assemble_context(app, hashes, args.artifacts.resolve(), epoch)
        result = verify(args.engine, app, variant, ctx, base_image, epoch)
        verdict = (
            "bit-identical"
            if result["bit_identical"]
            else "content-identical"
            if result["content_identical"]
            else "DIFFERENT"
        )
        note(f"{app}:{variant}: {verdict} ({result['ids'][0][:19]} / {result['ids'][1][:19]})")
        for line in result["differences"][:20]:
            note(f"  {line}")
        results.append(result)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"engine": args.engine, "source_date_epoch": epoch, "base_image": base_image,
              "required": required, "results": results}  # fmt: skip
    (args.out / f"report-{args.engine}.json").write_text(json.dumps(report, indent=2) + "\n")
    key = "bit_identical" if args.engine == "podman" else "content_identical"
    failed = [r["image"] for r in results if not r[key]]
    step(f"{len(results) - len(failed)}/{len(results)} images {required} with {args.engine}")
    if failed:
        raise ScriptError(f"not {required}: {', '.join(failed)}")
    return 0


if __name__ == "__main__":
    main_wrapper(main)
