#!/usr/bin/env python3
"""Resolve the base image every variant builds on: `python scripts/base.py`.

BASE_IMAGE (default: the official python:3.11-slim pinned by digest) is used when it is
present or can be pulled. When no registry answers, an equivalent base is built from
Debian's packages (bookworm's Python 3.11) with mmdebstrap and SOURCE_DATE_EPOCH, imported
as LOCAL_BASE, and used instead; the script says so. The last line printed is the image to
build from.
"""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

from common import (
    BUILD,
    ROOT,
    ScriptError,
    engine_run,
    image_exists,
    main_wrapper,
    note,
    source_date_epoch,
    step,
)  # fmt: skip

DEFAULT_BASE = (
    "python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7"
)
DEFAULT_LOCAL_BASE = "grocery-base:bookworm-py3.11"
SUITE = os.environ.get("DEBIAN_SUITE", "bookworm")
# What python:3.11-slim has that matters at run time: Python with venv/ensurepip,
# libstdc++ (torch, scikit-learn), CA certificates and netbase.
PACKAGES = ["python3.11", "python3.11-venv", "libstdc++6", "ca-certificates", "netbase"]


def build_local_base(engine: str, tag: str, epoch: int, fresh: bool = False) -> None:
    """Make the root file system (reused from build/base/ unless fresh) and build tag."""
    out = BUILD / "base"
    out.mkdir(parents=True, exist_ok=True)
    rootfs = out / "rootfs.tar"
    if rootfs.is_file() and not fresh:
        note(f"reusing {rootfs.relative_to(ROOT)} (`make base REBUILD=1` makes a new one)")
        build_image(engine, tag, rootfs, epoch)
        return
    step(f"building {tag} from Debian {SUITE} packages (mmdebstrap, SOURCE_DATE_EPOCH={epoch})")
    subprocess.run([str(ROOT / "scripts" / "ensure-apt.sh"), "mmdebstrap"], check=True)
    cmd = [
        "mmdebstrap", "--quiet", "--variant=essential", f"--include={','.join(PACKAGES)}",
        "--aptopt=Acquire::Retries \"3\"", "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-exclude=/usr/share/man/*", "--dpkgopt=path-exclude=/usr/share/locale/*",
        SUITE, str(rootfs),
    ]  # fmt: skip
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(epoch))
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ScriptError(f"mmdebstrap failed: {last}")
    note(f"root file system: {rootfs} ({rootfs.stat().st_size // 2**20} MiB)")
    build_image(engine, tag, rootfs, epoch)


def build_image(engine: str, tag: str, rootfs: Path, epoch: int) -> None:
    """Build tag from rootfs with dockerfiles/base.Dockerfile (not `import`: reproducible)."""
    out = rootfs.parent
    args = ["build", "--network=none", "--file", str(ROOT / "dockerfiles" / "base.Dockerfile"),
            "--tag", tag, str(out)]  # fmt: skip
    if engine == "podman":
        args[1:1] = ["--timestamp", str(epoch), "--format", os.environ.get("PODMAN_FORMAT", "oci")]
    result = engine_run(engine, args, capture_output=True, text=True)
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ScriptError(f"building {tag} from {rootfs} failed: {reason}")
    note(f"built {tag} from {rootfs.name}")


def resolve(engine: str, base: str, local_base: str, epoch: int) -> str:
    if image_exists(engine, base):
        note(f"base image {base} is present")
        return base
    result = engine_run(engine, ["pull", "--quiet", base], capture_output=True, text=True)
    if result.returncode == 0:
        note(f"pulled base image {base}")
        return base
    reason = (result.stderr.strip().splitlines() or ["no answer"])[-1]
    note(f"cannot pull {base} ({reason[:120]})")
    if image_exists(engine, local_base):
        note(f"using the local Debian-built base {local_base} instead")
        return local_base
    build_local_base(engine, local_base, epoch)
    note(f"using the local Debian-built base {local_base} instead of {base}")
    return local_base


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", default=os.environ.get("ENGINE", "docker"))
    parser.add_argument("--base", default=os.environ.get("BASE_IMAGE") or DEFAULT_BASE)
    parser.add_argument("--local-base", default=os.environ.get("LOCAL_BASE") or DEFAULT_LOCAL_BASE)
    parser.add_argument("--rebuild", action="store_true", help="rebuild the local base")
    args = parser.parse_args()
    step(f"resolving the base image ({args.base})")
    if args.rebuild:
        build_local_base(args.engine, args.local_base, source_date_epoch(), fresh=True)
    print(resolve(args.engine, args.base, args.local_base, source_date_epoch()))
    return 0


if __name__ == "__main__":
    main_wrapper(main)
