"""Build each image twice from a clean state and compare: `make verify-repro`; rebuild what
was published, elsewhere and otherwise, and compare with it: `make verify-published`.

    python -m imagetools verify-repro [--apps ...] [--variants ...]
    python -m imagetools verify-published [--apps ...] [--variants ...] [--artifacts DIR]

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
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from . import images
from .apps import parse_selection
from .common import ROOT, ScriptError, note, shown, step
from .config import Config
from .engines import Engine, engine_for
from .signing import selected
from .wheelhouse import ensure_wheelhouse, wheel_hashes

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


def compare(engine: Engine, first: str, second: str) -> dict:
    """Two images' IDs and, when they differ, their content differences."""
    ids = [engine.image_id(first), engine.image_id(second)]
    result = {"ids": ids, "bit_identical": ids[0] == ids[1], "differences": []}
    if not result["bit_identical"]:
        with tempfile.TemporaryDirectory(dir=engine.cfg.build_dir) as tmp:
            contents = []
            for number, ref in enumerate((first, second)):
                engine.save(ref, Path(tmp) / f"{number}.tar")
                contents.append(image_content(Path(tmp) / f"{number}.tar"))
        result["differences"] = compare_content(*contents)
    result["content_identical"] = result["bit_identical"] or not result["differences"]
    return result


def told(result: dict, what: str) -> dict:
    """Say one image's verdict and its first differences; return the result."""
    verdict = ("bit-identical" if result["bit_identical"] else
               "content-identical" if result["content_identical"] else "DIFFERENT")  # fmt: skip
    note(f"{result['image']}: {verdict} {what}")
    for line in result["differences"][:20]:
        note(f"  {line}")
    return result


def finish(engine: Engine, out: Path, report: dict, what: str) -> int:
    """Write the report; fail naming the images that are not as reproducible as required."""
    required = "bit-identical" if engine.bit_reproducible else "content-identical"
    out.mkdir(parents=True, exist_ok=True)
    report = {"engine": engine.name, "required": required, **report}
    (out / f"report-{engine.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    key = "bit_identical" if engine.bit_reproducible else "content_identical"
    failed = [r["image"] for r in report["results"] if not r[key]]
    step(f"{len(report['results']) - len(failed)}/{len(report['results'])} images {required} "
         f"{what} ({engine.name}); report: {shown(out)}/report-{engine.name}.json")  # fmt: skip
    if failed:
        raise ScriptError(f"not {required} {what}: {', '.join(failed)}")
    return 0


def verify(engine: Engine, app: str, variant: str, ctx: Path, base_image: str) -> dict:
    tags = []
    for run in ("a", "b"):  # a prefix unique per run
        build = engine_for(engine.cfg.replace(image_prefix=f"repro-{os.getpid()}-{run}-"))
        tags.append(build.cfg.tag(app, variant))
        images.build_image(build, app, variant, ctx, base_image, ["--no-cache"])
    result = {"image": f"{app}:{variant}", **compare(engine, *tags)}
    engine.remove(*tags)
    engine.trim_cache()
    return result


# What the rebuild of `verify-published` varies, as reproducible-builds.org's reprotest does:
# another path (a fresh clone), umask, time zone, locale, hostname and one CPU.
VARIED_ENV = {"TZ": "Pacific/Kiritimati", "LANG": "fr_FR.UTF-8", "LC_ALL": "C.UTF-8"}
VARIED_UMASK = "0002"
VARIED_HOSTNAME = "verify-rebuild"
# Make's variables that say where and how the publisher built, not what: not passed on.
PUBLISHER_ONLY = (
    "MAKEFLAGS",
    "MAKELEVEL",
    "MFLAGS",
    "BUILD_DIR",
    "ARTIFACTS",
    "IMAGE_PREFIX",
    "REGISTRY",
    "BUILD_FLAGS",
    "REVISION",
    "SOURCE_DATE_EPOCH",
    "APPS",
    "VARIANTS",
)


def rebuild(
    cfg: Config, revision: str, apps: list[str], variants: list[str], artifacts: Path | None
) -> tuple[Config, dict]:
    """Clone the source at revision into a new folder and run its `make images` with
    --no-cache and a varied environment; return the rebuild's config and what was varied."""
    src = cfg.build_dir / "verify" / revision[:12] / "src"
    if src.exists():
        shutil.rmtree(src)
    step(f"cloning {shown(ROOT)} at {revision[:12]} into {shown(src)}")
    for git in (
        ["clone", "--quiet", "--no-checkout", str(ROOT), str(src)],
        ["-C", str(src), "checkout", "--quiet", "--detach", revision],
    ):
        done = subprocess.run(["git", *git], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ScriptError(f"git {git[0]} of revision {revision}: {done.stderr.strip()}")
    wheels = src / "build" / "wheelhouse"  # the same hash-checked inputs, not fetched again
    wheels.mkdir(parents=True)
    for wheel in cfg.wheelhouse.glob("*.whl"):
        os.link(wheel, wheels / wheel.name)
    prefix = f"verify-{revision[:12]}-"
    env = {k: v for k, v in os.environ.items() if k not in PUBLISHER_ONLY} | VARIED_ENV
    make = ["make", "--no-print-directory", "-C", str(src), "images", f"ENGINE={cfg.engine}",
            f"IMAGE_PREFIX={prefix}", "BUILD_FLAGS=--no-cache", f"APPS={' '.join(apps)}",
            f"VARIANTS={' '.join(variants)}", f"BASE_IMAGE={cfg.base_image}",
            f"LOCAL_BASE={cfg.local_base}"]  # fmt: skip
    if artifacts:
        make.append(f"ARTIFACTS={artifacts.resolve()}")
    varied = {"path": shown(src), "umask": VARIED_UMASK, **VARIED_ENV, "cpus": "1 (taskset)"}
    shell = f'umask {VARIED_UMASK} && exec "$@"'
    command = ["taskset", "--cpu-list", "0", "sh", "-c", shell, "sh", *make]
    if os.geteuid() == 0 and shutil.which("unshare"):  # a hostname of its own (root only)
        shell = f"hostname {VARIED_HOSTNAME} && {shell}"
        command = ["unshare", "--uts", "taskset", "--cpu-list", "0", "sh", "-c", shell, "sh", *make]
        varied["hostname"] = VARIED_HOSTNAME
    step("rebuilding with " + ", ".join(f"{k}={v}" for k, v in varied.items()))
    if subprocess.run(command, env=env, check=False).returncode != 0:
        raise ScriptError(f"the rebuild of {revision[:12]} failed (its output is above)")
    return cfg.replace(image_prefix=prefix, build_dir=src / "build"), varied


@contextmanager
def base_named(engine: Engine, base: str, name: str, base_id: str) -> Iterator[None]:
    """The published base (pulled by digest unless here already) under the name the images
    were built FROM, first among its names: buildah writes that name into an image's
    history, so the rebuild must use it too. A base that cannot be had, or is another
    image, is one line. A different image that had the name here gets it back afterwards."""
    if not base:  # published before bases were recorded: the base here now
        yield
        return
    before = engine.image_id(name)
    retagged = False
    if not (before and (not base_id or before.endswith(base_id[-64:]))):
        note(f"rebuilding on the base they were built on: {base}"
             + (f", as {name}" if name != base else ""))  # fmt: skip
        pulled = engine.run(["pull", base], capture_output=True, text=True)
        if pulled.returncode != 0:
            why = (pulled.stderr.strip().splitlines() or ["no answer"])[-1]
            raise ScriptError(f"cannot pull {base}, the base the images were built on: {why}")
        if name != base:
            if before:
                note(f"{name} here is another image ({before[:19]}): it gets the name back after")
            engine.output(["tag", base, name])
            retagged = True
    found = engine.image_id(name)
    if base_id and not found.endswith(base_id[-64:]):
        raise ScriptError(f"{name} is {found[:19] or 'missing'}, not the base the images were "
                          f"built on ({base_id[:19]})")  # fmt: skip
    engine.name_first(name)
    try:
        yield
    finally:
        if retagged and before:
            try:
                engine.output(["tag", before, name])
            except ScriptError as exc:
                note(f"could not give {name} back to {before[:19]}: {exc}")


def verify_published(cfg: Config, argv: list[str]) -> int:
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--artifacts", type=Path, help="models to use instead of training anew")
    extra.add_argument("--published", type=Path, default=cfg.build_dir / "published.json")
    known, argv = extra.parse_known_args(argv)
    args, apps, variants = parse_selection("verify-published", argv, cfg.build_dir / "verify")
    records = selected(cfg, known.published, apps, variants)
    revisions = {r["revision"] for r in records}
    if len(revisions) != 1:
        raise ScriptError(f"the selected images were published from {len(revisions)} revisions; "
                          "select one with APPS/VARIANTS")  # fmt: skip
    revision = revisions.pop()
    bases = {(r.get("base", ""), r.get("base_name", ""), r.get("base_id", "")) for r in records}
    if len(bases) != 1:
        raise ScriptError(f"the selected images were built on {len(bases)} bases; "
                          "select one with APPS/VARIANTS")  # fmt: skip
    base, name, base_id = bases.pop()  # "": recorded before bases were: the base here now
    engine = engine_for(cfg)
    engine.ensure()
    ensure_wheelhouse(cfg)
    with base_named(engine, base, name or base, base_id):
        rebuilt_cfg, varied = rebuild(cfg.replace(base_image=name or base or cfg.base_image),
                                      revision, apps, variants, known.artifacts)  # fmt: skip
    results = []
    for record, (app, variant) in zip(records, [(a, v) for a in apps for v in variants],
                                      strict=True):  # fmt: skip
        published = f"{record['repository']}@{record['digest']}"
        engine.output(["pull", published])
        result = {"image": f"{app}:{variant}", "published": published,
                  **compare(engine, published, rebuilt_cfg.tag(app, variant))}  # fmt: skip
        results.append(told(result, f"with {published.split('/')[-1][:40]}"))
    engine.remove(*(rebuilt_cfg.tag(a, v) for a in {*apps, "trainer"} for v in variants),
                  rebuilt_cfg.tag("trainer", cfg.trainer_variant))  # fmt: skip
    report = {"revision": revision, "base": base or cfg.base_image, "varied": varied,
              "results": results}  # fmt: skip
    return finish(engine, args.out, report, "with the published ones")


def main(cfg: Config, command: str, argv: list[str]) -> int:
    if command == "verify-published":
        return verify_published(cfg, argv)
    args, apps, variants = parse_selection(command, argv, cfg.build_dir / "repro")
    engine = engine_for(cfg)
    base_image = images.prepare(engine, apps)
    hashes = wheel_hashes(cfg)
    epoch = cfg.source_date_epoch
    results = []
    total = len(apps) * len(variants)
    for number, (app, variant) in enumerate(((a, v) for a in apps for v in variants), 1):
        step(f"[{number}/{total}] {app}:{variant}: two clean builds (SOURCE_DATE_EPOCH={epoch})")
        ctx = images.assemble_context(cfg, app, variant, hashes)
        result = verify(engine, app, variant, ctx, base_image)
        results.append(told(result, f"({result['ids'][0][:19]} / {result['ids'][1][:19]})"))
    report = {"source_date_epoch": epoch, "base_image": base_image, "results": results}
    return finish(engine, args.out, report, "between two builds")
