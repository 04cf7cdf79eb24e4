"""One dependency layer's work in an image build (mounted, never shipped; standard library).

layer.py tools DIR [--uv DEST]
    Check every wheel in DIR (pip, uv) against the hashes of DIR/tools.txt; with --uv,
    unpack uv's binary from its wheel to DEST/uv (no venv, no pip run: a fraction of a
    second, so each layer's step can do it and the image keeps no installer).
layer.py finish VENV [--prune LIST --stage DIR [--last]]
    After the installer put one layer's pins into VENV: drop uv's install-time records
    (scrub_venv.py), then compile the layer's .py files, the ones with no bytecode yet:
    hash-based (no timestamps), in parallel, each file once in the whole image. Multistage
    only: --prune deletes the files `prune` names (prune_venv.py) among the packages this
    layer installed (--last: a pattern whose package no layer installed is an error),
    and --stage hard-links everything this layer added to VENV into
    DIR/<n>/ (n = 1, 2, ...), a tree the runtime stage copies as one layer of its own.

Both print when they end (`tools ready`, `finished`) and finish also when it starts
(`installed`), each line ending in @<Unix time>: imagetools/bench_builds.py reads the install
command's time between them (so the Dockerfiles need no timing lines of their own).
"""

from __future__ import annotations

import argparse
import compileall
import functools
import hashlib
import importlib.util
import os
import py_compile
import re
import stat
import sys
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import prune_venv
import scrub_venv

# Sources left uncompiled: test suites, which no service imports (22% of the backend's
# source bytes: sympy's, networkx's, numpy's tests and torch.testing._internal; the
# multistage variant prunes most of them anyway), and torch's one module that only Python
# 3.12 can compile. Were one imported, Python would compile it in memory.
SKIP = re.compile(r"/tests/|/testing/_internal/|py312_intrinsics")
HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")
STAGED_MTIME = 315_532_800  # 1980-01-01, as the wheelhouse's wheels


def mark(event: str, started: float | None = None) -> None:
    """One progress line, with how long this command took and the wall-clock time."""
    took = f" in {time.monotonic() - started:.2f} s" if started is not None else ""
    print(f"layer.py: {event}{took} @{time.time():.3f}", flush=True)


def fail(message: str) -> None:
    raise SystemExit(f"layer.py: error: {message}")


def check_tools(directory: Path, uv_dest: Path | None) -> None:
    allowed = set(HASH.findall((directory / "tools.txt").read_text()))
    wheels = sorted(directory.glob("*.whl"))
    for wheel in wheels:
        with wheel.open("rb") as handle:
            if hashlib.file_digest(handle, "sha256").hexdigest() not in allowed:
                fail(f"{wheel.name} does not match any hash of tools.txt")
    if uv_dest is not None:
        wheel = next((w for w in wheels if w.name.startswith("uv-")), None)
        if wheel is None:
            fail(f"no uv wheel in {directory}")
        with zipfile.ZipFile(wheel) as archive:
            name = next((n for n in archive.namelist() if n.endswith(".data/scripts/uv")), None)
            if name is None:
                fail(f"{wheel.name} holds no uv binary")
            uv_dest.mkdir(parents=True, exist_ok=True)
            (uv_dest / "uv").write_bytes(archive.read(name))
        (uv_dest / "uv").chmod(0o755)


def compile_new(venv: Path) -> int:
    """Compile every .py under VENV/lib that has no bytecode yet; return how many."""
    todo = []
    for top, dirs, files in os.walk(venv / "lib"):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(top, name)
            if not name.endswith(".py") or SKIP.search(path):
                continue
            if not os.path.exists(importlib.util.cache_from_source(path)):  # a new source
                todo.append(path)
    # A partial of the standard library's own function, which the workers can unpickle; it
    # prints a file's error and returns False.
    compile_one = functools.partial(
        compileall.compile_file,
        quiet=1,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    if todo:
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            results = list(pool.map(compile_one, todo, chunksize=64))
        failed = [path for path, ok in zip(todo, results, strict=True) if not ok]
        if failed:
            fail(f"{len(failed)} file(s) do not compile, first: {failed[0]}")
    return len(todo)


def staged(stage: Path) -> tuple[set[str], int]:
    """Paths (relative to /) already in the earlier layers' trees, and the next number."""
    layers = (
        sorted(int(p.name) for p in stage.iterdir() if p.name.isdigit()) if stage.is_dir() else []
    )
    found: set[str] = set()
    for number in layers:
        root = stage / str(number)
        for top, dirs, files in os.walk(root):
            found.update(os.path.relpath(os.path.join(top, n), root) for n in dirs + files)
    return found, (layers[-1] + 1 if layers else 1)


def stage_new(venv: Path, stage: Path, earlier: set[str], number: int) -> int:
    """Hard-link what VENV holds beyond the earlier layers into stage/<number>/."""
    root, count = stage / str(number), 0
    root.mkdir(parents=True)
    for top, dirs, files in os.walk(venv):
        dirs.sort()
        for name in sorted(dirs + files):
            path = os.path.join(top, name)
            rel = os.path.relpath(path, "/")
            if rel in earlier:
                continue
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                os.symlink(os.readlink(path), target)
            elif stat.S_ISDIR(info.st_mode):
                target.mkdir(exist_ok=True)
                target.chmod(stat.S_IMODE(info.st_mode))
            else:
                os.link(path, target)
                count += 1
    for top, dirs, _ in os.walk(root):  # parents made on the way get the venv's modes
        for name in dirs:
            source = Path("/", os.path.relpath(os.path.join(top, name), root))
            if source.is_dir() and not source.is_symlink():
                os.chmod(os.path.join(top, name), stat.S_IMODE(source.stat().st_mode))
    # One fixed time for everything staged (COPY keeps it): the runtime's layer is then the
    # same bytes whenever its files are, also where the engine cannot pin times (Docker
    # Engine 20.10), so an unchanged layer keeps its digest and is not pushed again.
    for top, dirs, files in os.walk(root, topdown=False):
        for name in dirs + files:
            os.utime(os.path.join(top, name), (STAGED_MTIME, STAGED_MTIME), follow_symlinks=False)
    os.utime(root, (STAGED_MTIME, STAGED_MTIME))
    return count


def finish(venv: Path, prune_list: Path | None, stage: Path | None, last: bool) -> None:
    sites = sorted(venv.glob("lib/python3*/site-packages"))
    if len(sites) != 1:
        fail(f"no single site-packages in {venv}")
    scrub_venv.scrub(sites[0])
    earlier, number = staged(stage) if stage else (set(), 1)
    if prune_list is not None:
        lines = prune_list.read_text().splitlines()
        patterns = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
        site_rel = os.path.relpath(sites[0], "/")
        new = {p.name for p in sites[0].iterdir() if f"{site_rel}/{p.name}" not in earlier}
        mine = [p for p in patterns if p.split("/", 1)[0] in new]  # this layer's packages
        never = [p for p in patterns if not (sites[0] / p.split("/", 1)[0]).exists()]
        if last and never:
            fail(f"prune pattern {never[0]!r} names a package no layer installed")
        freed = prune_venv.prune(sites[0], mine) if mine else 0
        print(f"layer.py: pruned {len(mine)} pattern(s), {freed / 2**20:.0f} MiB")
    started = time.monotonic()
    compiled = compile_new(venv)
    print(f"layer.py: compiled {compiled} file(s) in {time.monotonic() - started:.2f} s")
    if stage is not None:
        print(
            f"layer.py: staged {stage_new(venv, stage, earlier, number)} file(s) as layer {number}"
        )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="layer.py")
    commands = parser.add_subparsers(dest="command", required=True)
    tools = commands.add_parser("tools")
    tools.add_argument("directory", type=Path)
    tools.add_argument("--uv", type=Path)
    done = commands.add_parser("finish")
    done.add_argument("venv", type=Path)
    done.add_argument("--prune", type=Path)
    done.add_argument("--stage", type=Path)
    done.add_argument("--last", action="store_true")
    args = parser.parse_args(argv)
    started = time.monotonic()
    if args.command == "tools":
        check_tools(args.directory, args.uv)
        mark("tools ready", started)
    else:
        mark("installed")
        finish(args.venv, args.prune, args.stage, args.last)
        mark("finished", started)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
