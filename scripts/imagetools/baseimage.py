"""The base image every variant builds on: `python -m imagetools base [--rebuild]`.

BASE_IMAGE (default: the official python:3.11-slim pinned by digest) is used when it is
present or can be pulled. When no registry answers, an equivalent base is built from
Debian's packages (bookworm's Python 3.11) with mmdebstrap, imported as LOCAL_BASE, and used
instead; the command says so. Its SOURCE_DATE_EPOCH is the time of the last commit that
changed its recipe, not of HEAD: rebuilt at any later commit (a fresh clone, a verifying
rebuild), the same Debian packages give the same base ID. The choice is recorded in
build/stamps/<engine>/base (the reference and its ID), rewritten only when it changes.

`python -m imagetools base-official [--rebuild]` builds OFFICIAL_BASE offline: the official
image's layout (Debian 13 trixie, CPython compiled into /usr/local with a shared libpython, as
docker-library/python's 3.11/slim-trixie Dockerfile makes it), from two mmdebstrap roots (a
toolchain; the runtime: minbase with the libraries that image keeps) and the pristine CPython
source of Debian's python3.11 source package (apt-get source, checked against a pinned
sha256). Images built on it (`make test-official`) take the path every user with a registry
takes, here where python:3.11-slim cannot be pulled.

`python -m imagetools base-digest` moves the pinned digest to what the tag names in its
registry now (skopeo), in config.py and in every Dockerfile's `ARG BASE_IMAGE` default.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
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

OFFICIAL_SUITE = "trixie"
OFFICIAL_RECIPE = ("dockerfiles/base-official.Dockerfile", "scripts/imagetools/baseimage.py")
# debian:trixie-slim is minbase; python:3.11-slim adds ca-certificates, netbase and tzdata and
# keeps the libraries its CPython's modules link (its `ldd | dpkg-query --search` step).
OFFICIAL_PACKAGES = [
    "ca-certificates", "netbase", "tzdata", "libbz2-1.0", "libdb5.3t64", "libffi8",
    "libgdbm-compat4t64", "libgdbm6t64", "liblzma5", "libncursesw6", "libreadline8t64",
    "libsqlite3-0", "libssl3t64", "libtinfo6", "libuuid1", "zlib1g",
]  # fmt: skip
# docker-library's build dependencies (no tk, bluetooth or gnupg: no tkinter, no download).
TOOLCHAIN_PACKAGES = [
    "gcc", "make", "libc6-dev", "dpkg-dev", "libbz2-dev", "libdb-dev", "libffi-dev",
    "libgdbm-dev", "libgdbm-compat-dev", "liblzma-dev", "libncurses-dev", "libreadline-dev",
    "libsqlite3-dev", "libssl-dev", "uuid-dev", "zlib1g-dev",
]  # fmt: skip
# CPython's source: the upstream tarball (Python-3.11.2.tgz) as Debian ships it, the orig
# tarball of bookworm's python3.11 source package; apt checks it against the signed Sources
# index, and this pin keeps the same bytes whatever Debian revision names it.
CPYTHON_SOURCE = ("python3.11", "bookworm", "3.11.2",
                  "2411c74bda5bbcfcddaf4531f66d1adc73f247f529aee981b029513aefdbf849")  # fmt: skip
DEBIAN_MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")


def mmdebstrap(
    suite: str, packages: list[str], out: Path, epoch: int, variant: str = "essential"
) -> None:
    """A root file system tarball of Debian suite with packages (no docs, man pages or
    locales), reproducible at SOURCE_DATE_EPOCH=epoch."""
    step(f"making a Debian {suite} root file system ({variant}, {len(packages)} packages "
         f"added; mmdebstrap, SOURCE_DATE_EPOCH={epoch})")  # fmt: skip
    subprocess.run([str(ROOT / "scripts" / "ensure-apt.sh"), "mmdebstrap"], check=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        "mmdebstrap", "--quiet", f"--variant={variant}", f"--include={','.join(packages)}",
        "--aptopt=Acquire::Retries \"3\"", "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*", suite, str(out),
    ]  # fmt: skip
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(epoch))
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        out.unlink(missing_ok=True)
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ScriptError(f"mmdebstrap failed: {last}")
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


def debian_source_tarball(out: Path) -> None:
    """CPYTHON_SOURCE's orig tarball from Debian's archive (apt-get source --tar-only with a
    private apt state: the host's sources and lists are not touched), checked against the pin."""
    package, suite, _, sha256 = CPYTHON_SOURCE
    subprocess.run([str(ROOT / "scripts" / "ensure-apt.sh"), "apt", "debian-archive-keyring"],
                   check=True)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="cpython-source-") as tmp:
        state = Path(tmp)
        (state / "sources").mkdir()
        (state / "sources" / "src.sources").write_text(
            f"Types: deb-src\nURIs: {DEBIAN_MIRROR}\nSuites: {suite}\nComponents: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")  # fmt: skip
        (state / "lists" / "partial").mkdir(parents=True)
        (state / "cache" / "archives" / "partial").mkdir(parents=True)
        (state / "get").mkdir(mode=0o777)  # apt downloads as its _apt user
        state.chmod(0o755)
        apt = ["apt-get", "-q", "-o", "Dir::Etc::SourceList=/dev/null", "-o",
               f"Dir::Etc::SourceParts={state / 'sources'}", "-o",
               f"Dir::State::Lists={state / 'lists'}", "-o", f"Dir::Cache={state / 'cache'}",
               "-o", "Dir::State::status=/dev/null", "-o", "Debug::NoLocking=1"]  # fmt: skip
        for args in (["update"], ["source", "--download-only", "--tar-only", package]):
            result = subprocess.run([*apt, *args], cwd=state / "get", capture_output=True,
                                    text=True, check=False)  # fmt: skip
            if result.returncode != 0:
                why = (result.stderr.strip().splitlines() or ["no output"])[-1]
                raise ScriptError(f"apt-get {args[0]} ({package} from Debian {suite}) failed: "
                                  f"{why[:200]}")  # fmt: skip
        found = sorted((state / "get").glob(f"{package}_*.orig.tar.*"))
        if len(found) != 1:
            raise ScriptError(f"apt-get source gave no one orig tarball of {package}: "
                              f"{[p.name for p in (state / 'get').iterdir()]}")  # fmt: skip
        digest = hashlib.sha256(found[0].read_bytes()).hexdigest()
        if digest != sha256:
            raise ScriptError(f"{found[0].name} has sha256 {digest}, not the pinned {sha256} "
                              "(scripts/imagetools/baseimage.py CPYTHON_SOURCE)")  # fmt: skip
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(found[0], out)
    note(f"CPython source: {shown(out)} ({found[0].name}, sha256 {sha256[:12]}...)")


def build_official_base(engine: Engine, fresh: bool = False) -> str:
    """OFFICIAL_BASE from its three inputs in build/base-official/ (each made when missing, or
    all again when fresh); return its image ID."""
    cfg = engine.cfg.replace(
        source_date_epoch=last_change(OFFICIAL_RECIPE, engine.cfg.source_date_epoch)
    )
    engine = copy.copy(engine)
    engine.cfg = cfg
    ctx = cfg.build_dir / "base-official"
    inputs = {"runtime-root.tar": lambda out: mmdebstrap(
                  OFFICIAL_SUITE, OFFICIAL_PACKAGES, out, cfg.source_date_epoch, "minbase"),
              "build-root.tar": lambda out: mmdebstrap(
                  OFFICIAL_SUITE, TOOLCHAIN_PACKAGES, out, cfg.source_date_epoch, "minbase"),
              "cpython.tar.gz": debian_source_tarball}  # fmt: skip
    for name, make in inputs.items():
        if fresh or not (ctx / name).is_file():
            make(ctx / name)
        else:
            note(f"reusing {shown(ctx / name)} (`make base-official REBUILD=1` makes new ones)")
    step(f"building {cfg.official_base}: CPython {CPYTHON_SOURCE[2]} into /usr/local on Debian "
         f"{OFFICIAL_SUITE} (a few minutes: no layer cache on a fresh engine)")  # fmt: skip
    log = cfg.build_dir / "logs" / "base-official.log"
    seconds, image = engine.build(
        ["build", "--network=none", "--file",
         str(ROOT / "dockerfiles" / "base-official.Dockerfile"),
         f"--build-arg=PYTHON_VERSION={CPYTHON_SOURCE[2]}",
         f"--build-arg=SOURCE_DATE_EPOCH={cfg.source_date_epoch}",
         "--tag", cfg.official_base, *engine.build_flags(), str(ctx)],
        log, f"building {cfg.official_base}")  # fmt: skip
    note(f"built {cfg.official_base} in {seconds:.0f} s ({image[:19]}; log: {shown(log)})")
    return image


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
    parser.add_argument("--rebuild", action="store_true", help="make its inputs again")
    engine = engine_for(cfg)
    if command == "base-official":
        build_official_base(engine, fresh=parser.parse_args(argv).rebuild)
        return 0
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
