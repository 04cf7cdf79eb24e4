"""A fleet's shared layer cache, per image (issue 11's figures): what a second, empty Docker
engine re-runs when it builds every image from CACHE_REPO, and how long it takes against a
cold build.

One real registry (Debian's docker-registry on loopback) holds the base, pushed once and
used by digest, and the cache. This machine's engine builds each image cold (`--no-cache`)
with CACHE_REPO set (BuildKit's inline cache, pushed to CACHE_REPO/<image>:<variant>); then
a second dockerd, empty at the start, builds the same images in turn from that cache (after
the first image it also holds the base and the layers it pulled before, as a fleet builder
would). For each image: the cold build, what follows it on the first engine (the image's
lock check, tagging and the push of its cache), the second engine's build (pulls included),
the steps it ran again (`make explain`'s step names), and whether its layers
equal the first engine's. Every image of both engines is checked against its own lock
before it is tagged (the build's image check), so a cache can never hand one app another
app's layers unnoticed.

    .venv/bin/python docs/bench/fleet.py [--apps flask ...] [--variants uv ...] [--out F]

Docker only: Podman 4.3 (Debian 12) pushes to --cache-to but never pulls --cache-from (the
README, "A cache a fleet can share"), so on a second Podman store every step runs again.
Needs `make images` first (engine, base, wheelhouse, models). Writes a Markdown table with
the date and the machine's size (default docs/bench/fleet.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "tests"), str(ROOT / "tests" / "containers")]
from containers_support import second_dockerd  # noqa: E402

from imagetools import baseimage, explain, images, registry  # noqa: E402
from imagetools.apps import load_apps  # noqa: E402
from imagetools.config import VARIANTS, Config  # noqa: E402
from imagetools.engines import engine_for  # noqa: E402
from imagetools.wheelhouse import wheel_hashes  # noqa: E402
from shared_support import free_port  # noqa: E402

PREFIX = "grocery-fleet-"


def build(cfg: Config, app: str, variant: str, hashes: dict, flags: list[str]) -> dict:
    """Build app:variant on the engine DOCKER_HOST names (the cache is pushed after it)."""
    engine = engine_for(cfg)
    ctx = images.assemble_context(cfg, app, variant, hashes)
    started = time.monotonic()
    build_s = images.build_image(engine, app, variant, ctx, cfg.base_image, flags)
    tag = cfg.tag(app, variant)
    log = cfg.build_dir / "logs" / "docker" / f"{PREFIX}{app}-{variant}.log"
    return {
        "build_s": round(build_s, 1),
        "push_s": round(time.monotonic() - started - build_s, 1),
        "decisions": explain.decisions(log.read_text(), variant),
        "layers": json.loads(engine.inspect(tag, "{{json .RootFS.Layers}}")),
    }


def machine() -> str:
    mem = next(ln for ln in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in ln)
    gib = int(mem.split()[1]) / 2**20
    return f"{os.cpu_count()} cores, {gib:.0f} GiB"


def report(rows: list[dict], engine_version: str, total: dict) -> str:
    lines = [
        f"# A fleet's shared cache, per image ({datetime.now(UTC):%Y-%m-%d})",
        "",
        f"Measured by `docs/bench/fleet.py` on this project's machine ({machine()}), Docker "
        f"Engine {engine_version}, BuildKit inline cache, a loopback docker-registry. Cold: "
        "this engine, `--no-cache`. Check + push: the lock check, tag and cache push after it. "
        "Fleet: a second dockerd, empty at the start, building the images in turn from "
        "CACHE_REPO (pulls included). Re-ran: the steps the second engine ran again.",
        "",
        "| image | cold build | check + push | fleet build | fleet / cold | re-ran "
        "| layers equal |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        reran = [step for step, how in r["decisions"].items() if how != "cached"]
        lines.append(
            f"| {r['image']} | {r['cold_s']:.1f} s | {r['push_s']:.1f} s | {r['fleet_s']:.1f} s "
            f"| {r['fleet_s'] / r['cold_s']:.2f} | {', '.join(reran) or 'none'} "
            f"| {'yes' if r['same_layers'] else 'NO'} |"
        )
    lines += [
        "",
        f"All {len(rows)}: cold {total['cold']:.0f} s, push {total['push']:.0f} s, "
        f"fleet {total['fleet']:.0f} s; "
        f"{sum(1 for r in rows if any(h != 'cached' for h in r['decisions'].values()))} "
        "image(s) re-ran a step.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    apps = list(load_apps())
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", nargs="+", default=apps, choices=apps)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "fleet.md")
    args = parser.parse_args()
    base_cfg = Config.from_env()
    if base_cfg.engine != "docker":
        sys.exit("error: fleet.py drives a second dockerd: run it with ENGINE=docker")
    local = engine_for(base_cfg)
    images.prepare(local, args.apps)  # engine, base, wheelhouse, models
    hashes = wheel_hashes(base_cfg)
    work = Path(tempfile.mkdtemp(prefix="fleet-", dir=base_cfg.build_dir))
    (work / "build").mkdir()
    (work / "build" / "wheelhouse").symlink_to(base_cfg.build_dir / "wheelhouse")
    addr = f"127.0.0.1:{free_port()}"
    registry.start(base_cfg, addr, work / "registry")
    rows: list[dict] = []
    try:
        base_ref = f"{addr}/fleet/base:1"
        local.output(["tag", local.image_id(baseimage.resolve(local)), base_ref])
        pinned = f"{addr}/fleet/base@{local.push(base_ref)}"
        cfg = base_cfg.replace(build_dir=work / "build", image_prefix=PREFIX,
                               base_image=pinned, cache_repo=f"{addr}/fleet/cache")  # fmt: skip
        todo = [(app, variant) for app in args.apps for variant in args.variants]
        first = {}
        for app, variant in todo:
            print(f">> cold build of {app}:{variant} (this engine, --no-cache)", flush=True)
            first[app, variant] = build(cfg, app, variant, hashes, ["--no-cache"])
        with second_dockerd(work / "dockerd") as host:
            os.environ["DOCKER_HOST"] = host
            try:
                for app, variant in todo:
                    print(f">> fleet build of {app}:{variant} (empty engine)", flush=True)
                    second = build(cfg, app, variant, hashes, [])
                    cold = first[app, variant]
                    rows.append({
                        "image": f"{app}:{variant}", "cold_s": cold["build_s"],
                        "push_s": cold["push_s"],
                        "fleet_s": second["build_s"], "decisions": second["decisions"],
                        "same_layers": second["layers"] == cold["layers"],
                    })  # fmt: skip
                    print(f"   {rows[-1]}", flush=True)
            finally:
                del os.environ["DOCKER_HOST"]
    finally:
        registry.stop(work / "registry")
        tags = [t for t in local.tags() if t.startswith((PREFIX, f"{addr}/"))]
        local.remove(*tags)
        shutil.rmtree(work, ignore_errors=True)
    total = {k: sum(r[f"{k}_s"] for r in rows) for k in ("cold", "push", "fleet")}
    text = report(rows, local.output(["version", "--format", "{{.Server.Version}}"]).strip(), total)
    args.out.write_text(text)
    (args.out.with_suffix(".json")).write_text(json.dumps(rows, indent=1) + "\n")
    print(text)
    return 0 if all(r["same_layers"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
