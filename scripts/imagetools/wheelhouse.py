"""Fetch every wheel the images install into one hash-checked wheelhouse: `make wheels`.

Fetch, then build: the image builds install only from this folder, with no index. Wheels
already present (matched by sha256) are reused. The wheelhouse holds the images' platform,
CPython 3.11 on Linux x86_64 (manylinux), whatever the host is, so a Mac fetches Linux
wheels. PyTorch's CPU wheel comes from TORCH_FIND_LINKS (PyTorch's CPU wheel page).
build/wheelhouse/SHA256SUMS lists what is there; it is rewritten only when that changes, so
Make rebuilds the images only then.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from .apps import load_apps
from .common import ROOT, ScriptError, content_mtime_ns, note, sha256_files, shown, step
from .config import Config
from .lockfile import Pin, normalize, read_lock

# The images' platform: glibc 2.36 (Debian 12) accepts manylinux wheels up to 2_36.
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(36, 16, -1)]
PLATFORMS += ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
MANIFEST = "sha256.json"
# Wheels are bind-mounted, never copied into a layer: their mtime needs no SOURCE_DATE_EPOCH,
# and a fixed one (plus content-derived nanoseconds) never changes between commits.
WHEEL_MTIME = 315_532_800  # 1980-01-01, the earliest time a zip file can hold


def lock_pins(apps: list[str]) -> list[Pin]:
    """Every pin the given apps' locks (and the installers' lock) need, deduplicated."""
    pins: dict[tuple[str, str], Pin] = {}
    for name in [*apps, "tools"]:
        for pin in read_lock(ROOT / "requirements" / f"{name}.txt"):
            known = pins.get((pin.name, pin.version))
            if known:  # one file must satisfy both locks (one may list fewer platforms)
                shared = known.hashes & pin.hashes
                if not shared:
                    raise ScriptError(
                        f"{pin.name}=={pin.version} has no hash in common in two locks "
                        f"({name}.txt and another): run `make lock`"
                    )
                pin = Pin(pin.name, pin.version, shared)
            pins[(pin.name, pin.version)] = pin
    return list(pins.values())


def file_hashes(dest: Path) -> dict[str, str]:
    """sha256 of every wheel in dest: hashed again whenever a wheel was written to.

    The digests are cached in dest/sha256.json keyed on inode, size, mtime and ctime
    (common.sha256_files), so a wheel altered in place, even keeping its size, is hashed
    again. Each wheel gets mode 0644 and a content-derived mtime here, once, so that the
    hard links in the build contexts never need touching (which would move the ctime).
    """
    found = sha256_files(sorted(dest.glob("*.whl")), dest / MANIFEST)
    changed = False
    for wheel, digest in found.items():
        info = wheel.stat()
        mtime = content_mtime_ns(WHEEL_MTIME, digest)
        if info.st_mtime_ns != mtime or stat.S_IMODE(info.st_mode) != 0o644:
            wheel.chmod(0o644)
            os.utime(wheel, ns=(mtime, mtime))
            changed = True
    if changed:  # record the new ctimes, so that the next call hashes nothing
        found = sha256_files(sorted(dest.glob("*.whl")), dest / MANIFEST)
    return {wheel.name: digest for wheel, digest in found.items()}


def altered_wheels(pins: list[Pin], hashes: dict[str, str]) -> list[str]:
    """Wheels named like a locked name==version whose bytes match none of its hashes."""
    locked = {(pin.name, pin.version): pin.hashes for pin in pins}
    altered = []
    for name, digest in hashes.items():
        parts = name.split("-")
        key = (normalize(parts[0]), parts[1]) if len(parts) >= 5 else None
        if key in locked and digest not in locked[key]:
            altered.append(name)
    return altered


def missing_pins(pins: list[Pin], hashes: dict[str, str]) -> list[Pin]:
    present = set(hashes.values())
    return [pin for pin in pins if not pin.hashes & present]


def download(pins: list[Pin], dest: Path, find_links: str) -> None:
    requirements = dest / "requirements-missing.txt"
    requirements.write_text("".join(pin.requirement + "\n" for pin in pins))
    cmd = [
        sys.executable, "-m", "pip", "download", "--dest", str(dest), "--no-deps",
        "--require-hashes", "--only-binary=:all:", "--python-version", "3.11",
        "--implementation", "cp", "--abi", "cp311", "--abi", "abi3", "--abi", "none",
        "--disable-pip-version-check", "--progress-bar", "off",
        "--find-links", find_links,
        *(arg for platform in PLATFORMS for arg in ("--platform", platform)),
        "-r", str(requirements),
    ]  # fmt: skip
    extra = os.environ.get("PIP_DOWNLOAD_ARGS", "--retries 1").split()
    result = subprocess.run([*cmd, *extra], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        errors = [ln for ln in result.stderr.splitlines() if ln.startswith("ERROR")]
        raise ScriptError(f"pip download failed: {(errors or ['see pip output'])[0]}")
    requirements.unlink()


def ensure_wheelhouse(cfg: Config) -> dict[str, str]:
    """Fill the wheelhouse with the wheels every app needs; return {filename: sha256}."""
    dest = cfg.wheelhouse
    dest.mkdir(parents=True, exist_ok=True)
    pins = lock_pins(list(load_apps()))
    hashes = file_hashes(dest)
    for name in altered_wheels(pins, hashes):
        step(f"{shown(dest / name)} does not match its locked sha256 (altered?): removed, "
             "fetching it again")  # fmt: skip
        (dest / name).unlink()
        del hashes[name]
    missing = missing_pins(pins, hashes)
    if missing:
        step(f"fetching {len(missing)} of {len(pins)} wheels into {shown(dest)}")
        download(missing, dest, cfg.torch_find_links)
        hashes = file_hashes(dest)
        still = missing_pins(pins, hashes)
        if still:
            names = ", ".join(f"{p.name}=={p.version}" for p in still[:5])
            raise ScriptError(f"no wheel with a locked hash for: {names}")
    else:
        note(f"wheelhouse complete: {len(pins)} wheels in {shown(dest)}, sha256 checked")
    sums = "".join(f"{digest}  {name}\n" for name, digest in sorted(hashes.items()))
    listing = dest / "SHA256SUMS"
    if not listing.is_file() or listing.read_text() != sums:
        listing.write_text(sums)
    return hashes


def wheel_hashes(cfg: Config) -> dict[str, str]:
    """{filename: sha256} of the wheelhouse as it is (`make wheels` fills it)."""
    return file_hashes(cfg.wheelhouse) if cfg.wheelhouse.is_dir() else {}


def main(cfg: Config, command: str, argv: list[str]) -> int:
    step("checking the wheelhouse against the locks")
    ensure_wheelhouse(cfg)
    return 0
