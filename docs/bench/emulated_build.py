"""How much slower an image's build steps run under CPU emulation (issue 18's build figures).

On Apple silicon, Docker Desktop runs every `RUN` of these linux/amd64 builds under
emulation. This x86_64 machine cannot be an arm64 host, and an engine's build steps cannot be
sent through QEMU here (its binfmt would catch the host's own programs), so this runs each
RUN step of the first stage of `<variant>.Dockerfile` itself, twice, in a chroot of the base
image's files with the step's bind mounts from the real build context:

- natively, and
- emulated: in a user namespace of its own whose binfmt_misc (one per user namespace since
  Linux 6.7) sends every dynamically linked x86_64 program (first program header PT_PHDR)
  to Debian's qemu-x86_64-static, so the shell, Python, pip, uv and every child run under
  QEMU's user-mode emulator, as on an arm64 host. QEMU itself, a static PIE, stays native.

Both runs use the same namespaces, mounts and steps; only emulation differs. QEMU translates
every instruction either way, but this is x86 on x86: on an arm64 host QEMU must also emulate
x86 memory ordering, and Rosetta 2 translates ahead of time, so Docker Desktop's own times
may be slower (QEMU) or faster (Rosetta) than these.

    .venv/bin/python docs/bench/emulated_build.py [--apps flask ...] [--variants uv pip]

Root on Linux >= 6.7 with util-linux's unshare; needs `make images` first (engine, base,
wheelhouse, models). Prints a Markdown table with the date and the machine's size.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from dockerfile_parse import DockerfileParser
from dockerfile_parse.util import get_key_val_dictionary

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from imagetools import baseimage, images  # noqa: E402
from imagetools.apps import load_apps  # noqa: E402
from imagetools.config import Config  # noqa: E402
from imagetools.engines import engine_for  # noqa: E402
from imagetools.wheelhouse import wheel_hashes  # noqa: E402

QEMU = "/usr/bin/qemu-x86_64-static"
# binfmt_misc: offset 64 (the first program header of an ELF64 file), PT_PHDR = 6.
REGISTER = rf":x86emu:M:64:\x06\x00\x00\x00::{QEMU}:F"


def steps(dockerfile: Path) -> tuple[dict[str, str], list[tuple[list[str], str]]]:
    """The first stage's ENV and ARG defaults, and its RUN steps as (mount flags, command)."""
    env: dict[str, str] = {}
    runs = []
    stages = 0
    for ins in DockerfileParser(str(dockerfile)).structure:
        if ins["instruction"] == "FROM":
            stages += 1
        if stages > 1:
            break
        if ins["instruction"] == "ENV":
            env |= get_key_val_dictionary(ins["value"])
        elif ins["instruction"] == "ARG" and stages == 1:
            name, _, default = ins["value"].partition("=")
            env[name] = default or "bench"
        elif ins["instruction"] == "RUN":
            value, flags = ins["value"].lstrip(), []
            while value.startswith("--"):
                flag, _, value = value.partition(" ")
                flags.append(flag)
                value = value.lstrip()
            runs.append((flags, value.strip()))
    return env, runs


def run_step(rootfs: Path, ctx: Path, flags: list[str], command: str, env: dict,
             emulated: bool) -> float:  # fmt: skip
    """One RUN step in a chroot of rootfs, in new user, mount and PID namespaces; seconds."""
    setup = ["set -e", f"mount --rbind /dev {rootfs}/dev", f"mount -t proc proc {rootfs}/proc"]
    for flag in flags:
        opts = dict(item.split("=", 1) for item in flag.removeprefix("--mount=").split(","))
        target = rootfs / opts["target"].lstrip("/")
        setup += [f"mkdir -p {target}", f"mount --bind -o ro {ctx / opts['source']} {target}"]
    if emulated:
        setup += ["mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc",
                  f"printf '%s' '{REGISTER}' > /proc/sys/fs/binfmt_misc/register"]  # fmt: skip
    setup.append(f"exec chroot {rootfs} /bin/sh -c {shlex.quote(command)} </dev/null")
    # The user namespace maps uids and gids 0-65535 to themselves (the setup step chowns to
    # 65532), written from here: unshare's --map-users needs newuidmap and /etc/subuid.
    proc = subprocess.Popen(
        ["unshare", "--user", "--mount", "--pid", "--fork", "--kill-child", "/bin/sh", "-c",
         "read -r go; " + "\n".join(setup)],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    started = time.monotonic()
    while os.readlink(f"/proc/{proc.pid}/ns/user") == os.readlink("/proc/self/ns/user"):
        time.sleep(0.001)  # until unshare has made the namespace
    for kind in ("uid", "gid"):
        Path(f"/proc/{proc.pid}/{kind}_map").write_text("0 0 65536\n")
    proc.communicate("go\n")
    if proc.returncode != 0:
        raise SystemExit(
            f"error: a RUN step failed ({'emulated' if emulated else 'native'}): {command[:200]}"
        )
    return time.monotonic() - started


def rootfs_of(engine, image: str, into: Path) -> Path:
    """The image's files, unpacked into a fresh folder (with /dev and /proc to mount on)."""
    into.mkdir(parents=True)
    name = engine.output(["create", image, "/bin/true"]).strip()
    try:
        export = subprocess.Popen([engine.cfg.engine, "export", name], stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", str(into)], stdin=export.stdout, check=True)
        assert export.wait() == 0, f"exporting {image} failed"
    finally:
        engine.output(["rm", name])
    for folder in ("dev", "proc", "tmp"):
        (into / folder).mkdir(exist_ok=True)
    return into


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", nargs="+", default=list(load_apps()))
    parser.add_argument("--variants", nargs="+", default=["uv"], choices=["pip", "uv"])
    args = parser.parse_args()
    if os.geteuid() != 0 or not Path(QEMU).exists():
        sys.exit(f"error: run as root, with {QEMU} (apt-get install qemu-user-static)")
    cfg = Config.from_env()
    engine = engine_for(cfg)
    images.prepare(engine, args.apps)
    base = baseimage.resolve(engine)
    hashes = wheel_hashes(cfg)
    work = Path(tempfile.mkdtemp(prefix="emubuild-", dir=cfg.build_dir))
    print(f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, the RUN "
          f"steps of each Dockerfile's first stage in a chroot of {base}.\n")  # fmt: skip
    print("| image | steps | native | QEMU | slower |\n|---|---:|---:|---:|---:|", flush=True)
    try:
        for app in args.apps:
            for variant in args.variants:
                ctx = images.assemble_context(cfg, app, variant, hashes)
                env, runs = steps(ROOT / "dockerfiles" / f"{variant}.Dockerfile")
                took = {}
                for emulated in (False, True):
                    rootfs = rootfs_of(engine, base, work / f"{app}-{variant}-{emulated}")
                    took[emulated] = sum(run_step(rootfs, ctx, flags, command, env, emulated)
                                         for flags, command in runs)  # fmt: skip
                    shutil.rmtree(rootfs)
                print(
                    f"| {app}:{variant} | {len(runs)} | {took[False]:.1f} s | "
                    f"{took[True]:.1f} s | {took[True] / took[False]:.1f}x |",
                    flush=True,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
