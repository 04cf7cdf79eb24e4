"""`python -m imagetools base-official [--rebuild]`: OFFICIAL_BASE, python:3.11-slim's layout
built offline, so that the path every user with a registry takes is tested here too.

The official image is Debian 13 (trixie) with CPython compiled into /usr/local with a shared
libpython (docker-library/python's 3.11/slim-trixie Dockerfile). This one is made from three
inputs in build/base-official/: two mmdebstrap roots (the runtime: minbase, as
debian:trixie-slim, with the packages that image adds and keeps; a toolchain) and the pristine
CPython source of Debian's python3.11 source package (apt-get source, checked by apt against
the signed index and here against a pinned sha256). dockerfiles/base-official.Dockerfile
compiles CPython in the toolchain root and copies /usr/local onto the runtime root.

An input is reused while its recipe (suite, packages, time; the source's pin) is the one it
was made from (build/base-official/inputs.json); it appears only when whole. The inputs'
SOURCE_DATE_EPOCH is the last commit that changed this module or the Dockerfile.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .baseimage import mmdebstrap
from .common import ROOT, ScriptError, note, read_json, shown, step, write_json
from .config import Config, last_change
from .engines import Engine, engine_for

SUITE = "trixie"
RECIPE = ("dockerfiles/base-official.Dockerfile", "scripts/imagetools/officialbase.py")
# debian:trixie-slim is minbase; python:3.11-slim adds ca-certificates, netbase and tzdata and
# keeps the libraries its CPython's modules link (its `ldd | dpkg-query --search` step).
RUNTIME_PACKAGES = [
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
# CPython's source: the upstream tarball (python.org's Python-3.11.2.tgz) as Debian ships it,
# the orig tarball of bookworm's python3.11 source package; the pin keeps the same bytes
# whatever Debian revision names it.
SOURCE_PACKAGE, SOURCE_SUITE, PYTHON_VERSION = "python3.11", "bookworm", "3.11.2"
SOURCE_SHA256 = "2411c74bda5bbcfcddaf4531f66d1adc73f247f529aee981b029513aefdbf849"
DEBIAN_MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def apt_failure(stderr: str) -> str:
    """The line of apt's output that says why: the first failed fetch, else its last error."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()] or ["no output"]
    fetch = [ln for ln in lines if "Failed to fetch" in ln]
    errors = [ln for ln in lines if ln.startswith("E:")]
    return (fetch or errors or lines)[0 if fetch else -1][:240]


def source_tarball(out: Path) -> None:
    """The orig tarball of SOURCE_PACKAGE from Debian's archive (apt-get source --tar-only with
    a private apt state: the host's sources and lists are not touched), checked against the pin."""
    subprocess.run([str(ROOT / "scripts" / "ensure-apt.sh"), "apt", "debian-archive-keyring"],
                   check=True)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="cpython-source-") as tmp:
        state = Path(tmp)
        (state / "sources").mkdir()
        (state / "sources" / "src.sources").write_text(
            f"Types: deb-src\nURIs: {DEBIAN_MIRROR}\nSuites: {SOURCE_SUITE}\nComponents: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")  # fmt: skip
        (state / "lists" / "partial").mkdir(parents=True)
        (state / "cache" / "archives" / "partial").mkdir(parents=True)
        (state / "get").mkdir()
        for folder in (state, state / "get"):  # apt downloads as its _apt user
            folder.chmod(0o755 if folder == state else 0o777)
        apt = ["apt-get", "-q", "-o", "Dir::Etc::SourceList=/dev/null", "-o",
               f"Dir::Etc::SourceParts={state / 'sources'}", "-o",
               f"Dir::State::Lists={state / 'lists'}", "-o", f"Dir::Cache={state / 'cache'}",
               "-o", "Dir::State::status=/dev/null", "-o", "Debug::NoLocking=1"]  # fmt: skip
        # --error-on=any: a failed index fetch is an error here, not a warning.
        for args in (["update", "--error-on=any"],
                     ["source", "--download-only", "--tar-only", SOURCE_PACKAGE]):  # fmt: skip
            result = subprocess.run([*apt, *args], cwd=state / "get", capture_output=True,
                                    text=True, check=False)  # fmt: skip
            if result.returncode != 0:
                why = apt_failure(result.stderr)
                raise ScriptError(f"apt-get {args[0]} ({SOURCE_PACKAGE} from Debian "
                                  f"{SOURCE_SUITE}) failed: {why}")  # fmt: skip
        found = sorted((state / "get").glob(f"{SOURCE_PACKAGE}_*.orig.tar.*"))
        if len(found) != 1:
            raise ScriptError(f"apt-get source gave no one orig tarball of {SOURCE_PACKAGE}: "
                              f"{sorted(p.name for p in (state / 'get').iterdir())}")  # fmt: skip
        if (digest := sha256(found[0])) != SOURCE_SHA256:
            raise ScriptError(f"{found[0].name} has sha256 {digest}, not the pinned "
                              f"{SOURCE_SHA256} (imagetools/officialbase.py)")  # fmt: skip
        part = out.with_name(out.name + ".part")
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(found[0], part)
        os.replace(part, out)
        note(f"CPython source: {shown(out)} ({found[0].name}, sha256 {SOURCE_SHA256[:12]}...)")


def build(engine: Engine, fresh: bool = False) -> str:
    """OFFICIAL_BASE from its inputs (each made again when missing, made from another recipe,
    or fresh); return its image ID."""
    cfg = engine.cfg.replace(source_date_epoch=last_change(RECIPE, engine.cfg.source_date_epoch))
    engine = copy.copy(engine)  # the same engine object, at the recipe's time
    engine.cfg = cfg
    ctx = cfg.build_dir / "base-official"
    epoch = cfg.source_date_epoch

    def root(packages: list[str]):
        return ([SUITE, "minbase", *packages, str(epoch)],
                lambda out: mmdebstrap(SUITE, packages, out, epoch, "minbase"))  # fmt: skip

    inputs = {
        "runtime-root.tar": root(RUNTIME_PACKAGES),
        "build-root.tar": root(TOOLCHAIN_PACKAGES),
        "cpython.tar.gz": ([SOURCE_PACKAGE, SOURCE_SUITE, SOURCE_SHA256], source_tarball),
    }
    record = ctx / "inputs.json"
    made = read_json(record, cache=True) or {}
    for name, (recipe, make) in inputs.items():
        path = ctx / name
        if not fresh and path.is_file() and made.get(name) == recipe:
            if name == "cpython.tar.gz" and sha256(path) != SOURCE_SHA256:
                path.unlink()  # changed since: fetched again below
            else:
                note(f"reusing {shown(path)} (`make base-official REBUILD=1` makes it again)")
                continue
        made.pop(name, None)
        write_json(record, made)  # a failure below leaves no claim on the old file
        make(path)
        made[name] = recipe
        write_json(record, made)
    step(f"building {cfg.official_base}: CPython {PYTHON_VERSION} into /usr/local on Debian "
         f"{SUITE} (about 2 minutes on 2 cores when not cached)")  # fmt: skip
    log = cfg.build_dir / "logs" / "base-official.log"
    seconds, image = engine.build(
        ["build", "--network=none", "--file",
         str(ROOT / "dockerfiles" / "base-official.Dockerfile"),
         f"--build-arg=PYTHON_VERSION={PYTHON_VERSION}", f"--build-arg=SOURCE_DATE_EPOCH={epoch}",
         "--tag", cfg.official_base, *engine.build_flags(), str(ctx)],
        log, f"building {cfg.official_base}")  # fmt: skip
    note(f"built {cfg.official_base} in {seconds:.0f} s ({image[:19]}; log: {shown(log)})")
    return image


def main(cfg: Config, command: str, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"imagetools {command}")
    parser.add_argument("--rebuild", action="store_true", help="make every input again")
    build(engine_for(cfg), fresh=parser.parse_args(argv).rebuild)
    return 0
