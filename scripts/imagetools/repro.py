"""Build each image twice from a clean state and compare: `make verify-repro`.

    python -m imagetools verify-repro [--apps ...] [--variants ...]

Both builds use the same assembled context, `--no-cache`, and SOURCE_DATE_EPOCH = the last
commit's time. Podman (`--timestamp`) must give identical image IDs. Docker Engine 20.10
cannot pin timestamps, so its builds are compared by content: every file's path, bytes, mode,
owner and link target in every layer, plus the image config without its dates. The report
says exactly what differs. Results: build/repro/report.json; exit 1 when an image is not
reproducible (bit-identical with podman, content-identical with docker).
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import tempfile
from pathlib import Path

from . import images
from .apps import parse_selection
from .common import ScriptError, note, step
from .config import Config
from .engines import Engine, engine_for
from .wheelhouse import wheel_hashes

# Config fields that record when or where a build ran, not what it produced.
VOLATILE_CONFIG = {"created", "container", "docker_version", "history", "id", "parent"}
VOLATILE_CONTAINER_CONFIG = {"Hostname", "Image"}


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


def verify(engine: Engine, app: str, variant: str, ctx: Path, base_image: str) -> dict:
    tags = []
    for run in ("a", "b"):  # a prefix unique per run
        build = engine_for(engine.cfg.replace(image_prefix=f"repro-{os.getpid()}-{run}-"))
        tags.append(build.cfg.tag(app, variant))
        images.build_image(build, app, variant, ctx, base_image, ["--no-cache"])
    ids = [engine.image_id(tag) for tag in tags]
    result = {"image": f"{app}:{variant}", "engine": engine.name, "ids": ids,
              "bit_identical": ids[0] == ids[1], "differences": []}  # fmt: skip
    if not result["bit_identical"]:
        with tempfile.TemporaryDirectory(dir=engine.cfg.build_dir) as tmp:
            contents = []
            for tag in tags:
                archive = Path(tmp) / f"{tag.replace(':', '-')}.tar"
                engine.save(tag, archive)
                contents.append(image_content(archive))
        result["differences"] = compare_content(*contents)
    result["content_identical"] = result["bit_identical"] or not result["differences"]
    engine.remove(*tags)
    engine.trim_cache()
    return result


def main(cfg: Config, command: str, argv: list[str]) -> int:
    args, apps, variants = parse_selection(command, argv, cfg.build_dir / "repro")
    engine = engine_for(cfg)
    base_image = images.prepare(engine, apps)
    hashes = wheel_hashes(cfg)
    epoch = cfg.source_date_epoch
    required = "bit-identical" if engine.bit_reproducible else "content-identical"
    results = []
    total = len(apps) * len(variants)
    for number, (app, variant) in enumerate(((a, v) for a in apps for v in variants), 1):
        step(f"[{number}/{total}] {app}:{variant}: two clean builds (SOURCE_DATE_EPOCH={epoch})")
        ctx = images.assemble_context(cfg, app, variant, hashes)
        result = verify(engine, app, variant, ctx, base_image)
        verdict = ("bit-identical" if result["bit_identical"] else
                   "content-identical" if result["content_identical"] else "DIFFERENT")  # fmt: skip
        note(f"{app}:{variant}: {verdict} ({result['ids'][0][:19]} / {result['ids'][1][:19]})")
        for line in result["differences"][:20]:
            note(f"  {line}")
        results.append(result)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"engine": cfg.engine, "source_date_epoch": epoch, "base_image": base_image,
              "required": required, "results": results}  # fmt: skip
    (args.out / f"report-{cfg.engine}.json").write_text(json.dumps(report, indent=2) + "\n")
    key = "bit_identical" if engine.bit_reproducible else "content_identical"
    failed = [r["image"] for r in results if not r[key]]
    step(f"{len(results) - len(failed)}/{len(results)} images {required} with {cfg.engine}")
    if failed:
        raise ScriptError(f"not {required}: {', '.join(failed)}")
    return 0
