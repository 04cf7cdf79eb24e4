"""Copy this image's root file system into DEST without what a running service never needs.

Run inside the multistage Dockerfile's `runtime-root` stage: `python3 prune_rootfs.py /runtime`
(`python3 prune_rootfs.py DEST SOURCE` prunes another root, as the tests do).
The result is a distroless-style root: Python and the shared libraries it loads, /etc, CA
certificates and dpkg's status file (so scanners still see the Debian packages), but no
shell, no coreutils, no package manager (apt, dpkg), no pip/ensurepip/wheels, no docs. It
adds the `nonroot` user (uid/gid 65532, as distroless) and writable /tmp.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path

STAGED_MTIME = 315_532_800  # 1980-01-01, as layer.py's staged venv layers
# Files the engine mounts into every build step: they describe the build container, not
# the image (and differ between two builds), so the engine provides them at run time.
RUNTIME_FILES = {"etc/hostname", "etc/hosts", "etc/resolv.conf", ".dockerenv", ".containerenv"}
SKIP_TOP = {"proc", "sys", "dev", "run", "tmp", "mnt", "media", "srv", "boot", "root", "home"}
# Directories dropped whole (relative to /).
DROP_DIRS = {
    "etc/apt", "etc/dpkg", "etc/cron.daily", "etc/logrotate.d", "etc/update-motd.d",
    "usr/lib/apt", "usr/lib/dpkg", "usr/libexec", "usr/games", "usr/local/games",
    "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
    "usr/share/lintian", "usr/share/perl", "usr/share/perl5", "usr/share/bash-completion",
    "usr/share/python-wheels", "usr/share/debconf", "usr/share/menu", "usr/share/common-licenses",
    "usr/lib/x86_64-linux-gnu/perl", "usr/lib/x86_64-linux-gnu/perl-base",
    "usr/lib/x86_64-linux-gnu/gconv", "usr/lib/aarch64-linux-gnu/perl-base",
    "usr/lib/aarch64-linux-gnu/perl",
    "var/cache", "var/log", "var/lib/apt", "var/lib/dpkg/info", "var/lib/dpkg/updates",
    "var/lib/dpkg/triggers", "var/lib/dpkg/alternatives", "var/backups", "var/mail", "var/spool",
}  # fmt: skip
# Directories dropped wherever they appear under a Python installation.
DROP_PYTHON = {"ensurepip", "idlelib", "turtledemo", "tkinter", "lib2to3", "test", "pip",
               "setuptools", "wheel", "_distutils_hack", "pydoc_data"}  # fmt: skip
# The installers' metadata (`pip-24.0.dist-info`) and setuptools' hook into the dropped
# `_distutils_hack`: scanners would report pip as installed, Python would warn at start.
DROP_PYTHON_PREFIXES = ("pip-", "setuptools-", "wheel-")
DROP_PYTHON_FILES = {"distutils-precedence.pth"}
BIN_DIRS = {"bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin", "usr/local/sbin"}
USER = "nonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin\n"
GROUP = "nonroot:x:65532:\n"


def keep_binary(name: str) -> bool:
    """Only the Python interpreter survives in the bin directories."""
    return name.startswith("python3") and not name.endswith("-config")


def is_python_tree(rel: str) -> bool:
    return "/python3" in f"/{rel}" and ("lib/python3" in rel or "dist-packages" in rel)


def dropped_python_entry(rel: str, name: str) -> bool:
    """pip, setuptools and wheel in a Python installation (but not e.g. the stdlib's pipes)."""
    if not is_python_tree(rel):
        return False
    return name in DROP_PYTHON_FILES or name.startswith(DROP_PYTHON_PREFIXES)


def copy_tree(src: Path, dest: Path) -> None:
    """Copy src into dest (both absolute), dropping what the runtime does not need."""
    copied_dirs: list[tuple[Path, Path]] = []
    for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
        rel_dir = os.path.relpath(dirpath, src)
        rel_dir = "" if rel_dir == "." else rel_dir
        kept = []
        for name in sorted(dirnames):
            rel = f"{rel_dir}/{name}".lstrip("/")
            full = Path(dirpath, name)
            if full == dest or (rel_dir == "" and name in SKIP_TOP):
                continue
            if rel in DROP_DIRS or (is_python_tree(rel) and name in DROP_PYTHON):
                continue
            if dropped_python_entry(rel, name):
                continue
            if full.is_symlink():  # a symlink to a directory: recreate the link only
                make_link(full, dest / rel)
                continue
            kept.append(name)
            (dest / rel).mkdir(parents=True, exist_ok=True)
            copied_dirs.append((full, dest / rel))
        dirnames[:] = kept
        for name in sorted(filenames):
            rel = f"{rel_dir}/{name}".lstrip("/")
            full = Path(dirpath, name)
            if rel_dir in BIN_DIRS and not keep_binary(name):
                continue
            if rel in RUNTIME_FILES:
                continue
            if dropped_python_entry(rel, name):
                continue
            mode = full.lstat().st_mode
            if stat.S_ISLNK(mode):
                make_link(full, dest / rel)
            elif stat.S_ISREG(mode):
                shutil.copy2(full, dest / rel, follow_symlinks=False)
    # Directory times last, deepest first: copying into a directory changes its mtime.
    for full, target in reversed(copied_dirs):
        shutil.copystat(full, target, follow_symlinks=False)


def make_link(src: Path, target: Path) -> None:
    """The same link, with the source link's times (not the build's: see main)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(os.readlink(src), target)
    info = src.lstat()
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns), follow_symlinks=False)


def main(dest_arg: str, source_arg: str = "/") -> int:
    dest, source = Path(dest_arg).absolute(), Path(source_arg).absolute()
    if dest.exists():
        print(f"prune_rootfs: error: {dest} exists", file=sys.stderr)
        return 1
    dest.mkdir(parents=True)
    copy_tree(source, dest)
    for name, mode in (("tmp", 0o1777), ("home/nonroot", 0o755), ("run", 0o755)):
        (dest / name).mkdir(parents=True, exist_ok=True)
        (dest / name).chmod(mode)
    if os.geteuid() == 0:  # always in the image build; not when tests run as a user
        os.chown(dest / "home/nonroot", 65532, 65532)
    with open(dest / "etc/passwd", "a") as passwd, open(dest / "etc/group", "a") as group:
        passwd.write(USER)
        group.write(GROUP)
    # What this script made or changed gets one fixed time, not the build's: two builds (a
    # cold one and one that reuses the cache) then give this layer the same bytes on Docker,
    # which cannot pin file times itself (Podman's --timestamp does).
    for name in ("etc/passwd", "etc/group", "tmp", "home/nonroot", "home", "run", "."):
        os.utime(dest / name, (STAGED_MTIME, STAGED_MTIME))
    kept = sum(len(files) for _, _, files in os.walk(dest))
    print(f"prune_rootfs: {kept} files kept in {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*(sys.argv[1:3] or ["/runtime"])))
