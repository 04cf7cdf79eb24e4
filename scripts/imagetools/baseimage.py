"""The base image every variant builds on: `python -m imagetools base [--rebuild]`.

BASE_IMAGE (default: the official python:3.11-slim pinned by digest) is used when it is
present or can be pulled. When no registry answers, a stand-in base is built from
Debian's packages (bookworm's Python 3.11) with mmdebstrap, imported as LOCAL_BASE, and used
instead; the command says so. Its SOURCE_DATE_EPOCH is the time of the last commit that
changed its recipe, not of HEAD: rebuilt at any later commit (a fresh clone, a verifying
rebuild), the same Debian packages give the same base ID. The choice is recorded in
build/stamps/<engine>/<IMAGE_PREFIX>base (the reference and its ID), rewritten only when it changes.

`python -m imagetools base-official` (officialbase.py) builds python:3.11-slim's layout offline.

`python -m imagetools base-digest` moves the pinned digest to what the tag names in its
registry now (skopeo), in config.py and in every Dockerfile's `ARG BASE_IMAGE` default.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .common import ROOT, ScriptError, note, shown, step
from .config import DEFAULT_BASE, Config, last_change
from .engines import Engine, engine_for

SUITE = os.environ.get("DEBIAN_SUITE", "bookworm")
# What python:3.11-slim has that matters at run time: Python with venv/ensurepip,
# libstdc++ (torch, scikit-learn), CA certificates and netbase.
PACKAGES = ["python3.11", "python3.11-venv", "libstdc++6", "ca-certificates", "netbase"]
# What the local base is made from, in this repository: its SOURCE_DATE_EPOCH is their last change.
RECIPE = ("dockerfiles/base.Dockerfile", "scripts/imagetools/baseimage.py")


def mmdebstrap(
    suite: str, packages: list[str], out: Path, epoch: int, variant: str = "essential"
) -> None:
    """A root file system tarball of Debian suite with packages (no docs, man pages or
    locales), reproducible at SOURCE_DATE_EPOCH=epoch; out appears only when it is whole."""
    step(f"making a Debian {suite} root file system ({variant}, {len(packages)} packages "
         f"added; mmdebstrap, SOURCE_DATE_EPOCH={epoch})")  # fmt: skip
    subprocess.run([str(ROOT / "scripts" / "ensure-apt.sh"), "mmdebstrap"], check=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(f"{out.stem}.part{out.suffix}")  # mmdebstrap's format: the extension
    cmd = [
        "mmdebstrap", "--quiet", f"--variant={variant}", f"--include={','.join(packages)}",
        "--aptopt=Acquire::Retries \"3\"", "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*", suite, str(part),
    ]  # fmt: skip
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(epoch))
    try:
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise ScriptError(f"mmdebstrap failed: {last}")
        os.replace(part, out)
    finally:
        part.unlink(missing_ok=True)
    note(f"root file system: {shown(out)} ({out.stat().st_size // 2**20} MiB)")


def build_local_base(engine: Engine, fresh: bool = False) -> None:
    """Make the root file system (reused from build/base/ unless fresh) and build LOCAL_BASE."""
    cfg = engine.cfg.replace(source_date_epoch=last_change(RECIPE, engine.cfg.source_date_epoch))
    engine = copy.copy(engine)  # the same engine object, client and all, at the recipe's time
    engine.cfg = cfg
    rootfs = cfg.build_dir / "base" / "rootfs.tar"
    if rootfs.is_file() and not fresh:
        note(f"reusing {shown(rootfs)} (`make base REBUILD=1` makes a new one)")
    else:
        mmdebstrap(SUITE, PACKAGES, rootfs, cfg.source_date_epoch)
    # Built with base.Dockerfile, not `import`: the same root fs gives the same image.
    engine.output(["build", "--network=none", "--file",
                   str(ROOT / "dockerfiles" / "base.Dockerfile"), "--tag", cfg.local_base,
                   *engine.build_flags(), str(rootfs.parent)])  # fmt: skip
    note(f"built {cfg.local_base} from {rootfs.name}")


def resolve(engine: Engine) -> str:
    """BASE_IMAGE when present or pullable, else LOCAL_BASE (built when missing); the name
    the images are built FROM is its first name (Engine.name_first)."""
    base = _resolve(engine)
    engine.name_first(base)
    return base


def _resolve(engine: Engine) -> str:
    cfg = engine.cfg
    if engine.exists(cfg.base_image):
        note(f"base image {cfg.base_image} is present")
        return cfg.base_image
    result = engine.run(["pull", "--quiet", cfg.base_image], capture_output=True, text=True)
    if result.returncode == 0:
        note(f"pulled base image {cfg.base_image}")
        return cfg.base_image
    reason = (result.stderr.strip().splitlines() or ["no answer"])[-1]
    if cfg.base_image != DEFAULT_BASE:  # a base the user chose is never swapped silently
        raise ScriptError(f"cannot pull BASE_IMAGE={cfg.base_image}: {reason[:200]}")
    note(f"cannot pull {cfg.base_image} ({reason[:120]})")
    if not engine.exists(cfg.local_base):
        build_local_base(engine)
    note(f"using the local Debian-built base {cfg.local_base} instead")
    return cfg.local_base


def update_digest() -> str:
    """Pin DEFAULT_BASE's tag at the digest its registry gives now (the multi-platform
    index's, as `docker pull` resolves it); rewrite every copy; return the new reference."""
    name = DEFAULT_BASE.split("@")[0]
    copies = [ROOT / "scripts" / "imagetools" / "config.py",
              *(p for p in sorted((ROOT / "dockerfiles").rglob("*.Dockerfile"))
                if "ARG BASE_IMAGE=" in p.read_text())]  # fmt: skip
    drifted = [str(p.relative_to(ROOT)) for p in copies if DEFAULT_BASE not in p.read_text()]
    if drifted:
        raise ScriptError(f"not pinned at {DEFAULT_BASE}: {', '.join(drifted)}; make every copy "
                          "equal first (tests/scripts/test_scripts_config.py)")  # fmt: skip
    if not shutil.which("skopeo"):
        subprocess.run([str(ROOT / "scripts" / "ensure-apt.sh"), "skopeo"], check=True)
    with tempfile.TemporaryDirectory(prefix="base-digest-") as tmp:
        raw = Path(tmp) / "index.json"
        with raw.open("wb") as handle:  # the bytes as the registry serves them
            read = subprocess.run(["skopeo", "inspect", "--raw", "--retry-times", "3",
                                   f"docker://{name}"], stdout=handle, stderr=subprocess.PIPE,
                                  check=False)  # fmt: skip
        digest = subprocess.run(["skopeo", "manifest-digest", str(raw)], capture_output=True,
                                check=False)  # fmt: skip
        for result, what in ((read, f"read {name} from its registry"), (digest, "digest it")):
            if result.returncode != 0:
                why = (result.stderr.decode(errors="replace").strip().splitlines() or ["?"])[-1]
                raise ScriptError(f"cannot {what}: {why[:200]}")
        try:
            index = json.loads(raw.read_bytes())
        except ValueError as exc:
            raise ScriptError(f"{name}: the registry's answer is not JSON ({exc})") from exc
    platforms = {f"{m.get('platform', {}).get('os')}/{m.get('platform', {}).get('architecture')}"
                 for m in index.get("manifests", [])}  # fmt: skip
    if "linux/amd64" not in platforms:
        raise ScriptError(f"{name} is not a multi-platform index with linux/amd64 "
                          f"({index.get('mediaType', 'no media type')})")  # fmt: skip
    new = f"{name}@{digest.stdout.decode().strip()}"
    if new == DEFAULT_BASE:
        note(f"{name} is still {DEFAULT_BASE.split('@')[1]}: nothing to change")
        return new
    for path in copies:
        path.write_text(path.read_text().replace(DEFAULT_BASE, new))
        note(f"{path.relative_to(ROOT)}: {new}")
    step(f"BASE_IMAGE moved to {new}: `make images` pulls and builds on it")
    return new


def main(cfg: Config, command: str, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"imagetools {command}")
    if command == "base-digest":
        parser.parse_args(argv)
        update_digest()
        return 0
    parser.add_argument("--rebuild", action="store_true", help="rebuild the local base")
    engine = engine_for(cfg)
    step(f"resolving the base image ({cfg.base_image})")
    if parser.parse_args(argv).rebuild:
        build_local_base(engine, fresh=True)
    ref = resolve(engine)
    record = f"{ref} {engine.image_id(ref)}\n"
    stamp = cfg.base_stamp
    if not stamp.is_file() or stamp.read_text() != record:  # Make rebuilds what follows
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(record)
    return 0
