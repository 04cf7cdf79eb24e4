"""dockerfiles/buildtime/prune_rootfs.py on a fake Debian root in tmp_path."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "dockerfiles" / "buildtime" / "prune_rootfs.py"
PY = "usr/local/lib/python3.11"
FILES = [
    "usr/bin/bash", "usr/bin/dash", "usr/bin/apt-get", "usr/bin/apt", "usr/bin/dpkg",
    "usr/bin/perl", "usr/bin/ls", "usr/bin/python3.11", "usr/bin/python3.11-config",
    "usr/sbin/useradd", "usr/local/bin/python3.11", "usr/local/bin/pip", "usr/local/bin/pip3",
    "usr/local/bin/python3-config", "usr/local/bin/idle3",
    f"{PY}/os.py", f"{PY}/pipes.py", f"{PY}/ensurepip/__init__.py", f"{PY}/test/test_os.py",
    f"{PY}/lib2to3/main.py", f"{PY}/site-packages/pip/__init__.py",
    f"{PY}/site-packages/pip-24.0.dist-info/METADATA",
    f"{PY}/site-packages/setuptools/__init__.py",
    f"{PY}/site-packages/setuptools-65.5.1.dist-info/METADATA",
    f"{PY}/site-packages/wheel/__init__.py", f"{PY}/site-packages/_distutils_hack/__init__.py",
    f"{PY}/site-packages/distutils-precedence.pth", f"{PY}/site-packages/README.txt",
    "usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30", "usr/lib/apt/methods/http",
    "usr/lib/dpkg/methods/file", "usr/share/doc/libc6/copyright", "usr/share/zoneinfo/UTC",
    "etc/passwd", "etc/group", "etc/os-release", "etc/apt/sources.list", "etc/dpkg/dpkg.cfg",
    "etc/ssl/certs/ca-certificates.crt", "var/lib/dpkg/status", "var/lib/dpkg/info/bash.list",
    "var/lib/apt/lists/index", "var/cache/apt/pkgcache.bin", "var/log/dpkg.log",
    "tmp/leftover", "root/.bashrc", "home/someone/notes", "proc/cpuinfo",
]  # fmt: skip
LINKS = {
    "bin": "usr/bin",
    "sbin": "usr/sbin",
    "lib": "usr/lib",
    "usr/bin/sh": "dash",
    "usr/bin/python3": "python3.11",
    "usr/local/bin/python3": "python3.11",
    "usr/local/bin/python": "python3",
    "usr/lib/x86_64-linux-gnu/libstdc++.so.6": "libstdc++.so.6.0.30",
    "etc/ssl/certs/dangling.pem": "/usr/share/ca-certificates/missing.crt",
}
OLD = 946684800  # 2000-01-01: the base image's timestamps


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    for rel in FILES:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{rel}\n")
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc/group").write_text("root:x:0:\n")
    for name in ("usr/bin/python3.11", "usr/local/bin/python3.11", "usr/bin/bash"):
        (root / name).chmod(0o755)
    for rel, target in LINKS.items():
        (root / rel).symlink_to(target)
    for path in sorted(root.rglob("*"), reverse=True):
        os.utime(path, (OLD, OLD), follow_symlinks=False)
    return root


@pytest.fixture
def pruned(runtime_module, fake_root: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "out" / "runtime"
    assert runtime_module("prune_rootfs").main(str(dest), str(fake_root)) == 0
    return dest


def kept(dest: Path, rel: str) -> bool:
    return os.path.lexists(dest / rel)


def test_shells_package_managers_and_tools_are_dropped(pruned: Path) -> None:
    for rel in ("usr/bin/bash", "usr/bin/dash", "usr/bin/sh", "usr/bin/apt-get", "usr/bin/apt",
                "usr/bin/dpkg", "usr/bin/perl", "usr/bin/ls", "usr/sbin/useradd",
                "usr/bin/python3.11-config", "usr/local/bin/python3-config",
                "usr/local/bin/idle3", "usr/lib/apt", "usr/lib/dpkg", "etc/apt", "etc/dpkg",
                "var/lib/dpkg/info", "var/lib/apt", "var/cache", "var/log",
                "usr/share/doc"):  # fmt: skip
        assert not kept(pruned, rel), f"{rel} survived"


def test_pip_setuptools_wheel_and_their_metadata_are_dropped(pruned: Path) -> None:
    for rel in ("usr/local/bin/pip", "usr/local/bin/pip3", f"{PY}/ensurepip", f"{PY}/test",
                f"{PY}/lib2to3", f"{PY}/site-packages/pip", f"{PY}/site-packages/setuptools",
                f"{PY}/site-packages/wheel", f"{PY}/site-packages/_distutils_hack",
                f"{PY}/site-packages/pip-24.0.dist-info",
                f"{PY}/site-packages/setuptools-65.5.1.dist-info",
                f"{PY}/site-packages/distutils-precedence.pth"):  # fmt: skip
        assert not kept(pruned, rel), f"{rel} survived"


def test_python_its_stdlib_and_runtime_files_are_kept(pruned: Path, fake_root: Path) -> None:
    for rel in ("usr/bin/python3.11", "usr/local/bin/python3.11", f"{PY}/os.py",
                f"{PY}/pipes.py", f"{PY}/site-packages/README.txt",
                "usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30", "usr/share/zoneinfo/UTC",
                "etc/os-release", "etc/ssl/certs/ca-certificates.crt",
                "var/lib/dpkg/status"):  # fmt: skip
        assert (pruned / rel).is_file(), f"{rel} was dropped"
        assert (pruned / rel).read_bytes() == (fake_root / rel).read_bytes()
    assert (pruned / "usr/local/bin/python3.11").stat().st_mode & 0o777 == 0o755


def test_symlinks_are_preserved_as_links(pruned: Path) -> None:
    for rel in ("bin", "sbin", "lib", "usr/bin/python3", "usr/local/bin/python3",
                "usr/lib/x86_64-linux-gnu/libstdc++.so.6",
                "etc/ssl/certs/dangling.pem"):  # fmt: skip
        assert (pruned / rel).is_symlink(), f"{rel} is not a symlink"
        assert os.readlink(pruned / rel) == LINKS[rel]
    assert not kept(pruned, "usr/local/bin/python"), "only python3* names survive in bin dirs"
    assert (pruned / "bin/python3").is_file()  # resolves inside the pruned root


def test_virtual_and_home_directories_are_not_copied(pruned: Path) -> None:
    for rel in ("proc/cpuinfo", "root", "home/someone", "tmp/leftover"):
        assert not kept(pruned, rel), rel


def test_nonroot_user_and_writable_tmp(pruned: Path) -> None:
    passwd = (pruned / "etc/passwd").read_text().splitlines()
    group = (pruned / "etc/group").read_text().splitlines()
    assert passwd == [
        "root:x:0:0:root:/root:/bin/bash",
        "nonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin",
    ]
    assert group == ["root:x:0:", "nonroot:x:65532:"]
    assert stat.S_IMODE((pruned / "tmp").stat().st_mode) == 0o1777
    home = (pruned / "home/nonroot").stat()
    assert stat.S_IMODE(home.st_mode) == 0o755
    if os.geteuid() == 0:
        assert (home.st_uid, home.st_gid) == (65532, 65532)


def test_copied_directories_keep_their_times(pruned: Path) -> None:
    for rel in ("usr", "usr/lib", "usr/local/lib/python3.11", "etc/ssl/certs"):
        assert (pruned / rel).stat().st_mtime == OLD, f"{rel} mtime changed"
    assert (pruned / "etc/os-release").stat().st_mtime == OLD


def test_what_it_adds_has_a_fixed_time(pruned: Path, fake_root: Path) -> None:
    """Not the build's time: Docker cannot pin file times, and a layer holding the build's
    time differs between a cold build and a cached one (a bump would re-ship it)."""
    for rel in ("etc/passwd", "etc/group", "tmp", "home", "home/nonroot", "run", "."):
        assert (pruned / rel).stat().st_mtime == 315_532_800, rel
    links = [rel for rel in LINKS if kept(pruned, rel)]  # recreated links keep their times
    assert len(links) >= 5
    for rel in links:
        assert (pruned / rel).lstat().st_mtime == OLD, rel


def test_destination_inside_the_source_is_not_copied_into_itself(
    runtime_module, fake_root: Path
) -> None:
    dest = fake_root / "runtime"
    assert runtime_module("prune_rootfs").main(str(dest), str(fake_root)) == 0
    assert (dest / "usr/bin/python3.11").is_file()
    assert not kept(dest, "runtime")


def test_command_line_and_existing_destination(fake_root: Path, tmp_path: Path) -> None:
    dest = tmp_path / "cli"
    command = [sys.executable, str(SCRIPT), str(dest), str(fake_root)]
    first = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert first.returncode == 0, first.stderr
    assert "files kept" in first.stdout and (dest / "usr/bin/python3").is_symlink()
    again = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 1 and "exists" in again.stderr
