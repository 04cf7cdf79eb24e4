"""Shared helpers of the build tooling: paths, messages, errors, file digests."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROG = "imagetools"


def shown(path: Path) -> str:
    """path relative to the repository when it is inside it (else as it is)."""
    return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


class ScriptError(Exception):
    """An error shown to the user as one line, exit status 1."""


def step(message: str) -> None:
    print(f">> {message}", flush=True)


def note(message: str) -> None:
    print(f"   {message}", flush=True)


def read_json(path: Path, default=None, cache: bool = False):
    """A JSON file's data; default when it is missing. A cache that is not JSON (cut short,
    hand-edited) is also default; a record that is not JSON is an error naming the file."""
    try:
        return json.loads(path.read_text()) if path.is_file() else default
    except ValueError as exc:
        if cache:
            return default
        raise ScriptError(f"{shown(path)} is not valid JSON ({exc}): fix or remove it") from exc


def write_json(path: Path, data, indent: int | None = 1) -> None:
    """Write data as sorted JSON, atomically: a concurrent reader sees the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        partial.write_text(json.dumps(data, indent=indent, sort_keys=True) + "\n")
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def stop(process: subprocess.Popen, timeout: float = 20) -> None:
    """Terminate a child process; kill it when it does not end within timeout seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def sha256_files(paths: Iterable[Path], cache_file: Path) -> dict[Path, str]:
    """sha256 of each file, reusing a digest from cache_file while the file is unchanged.

    A cached digest is keyed on the file's device, inode, size, mtime and ctime (in ns). Any
    write to a file, in place and of the same size included, moves its ctime to the current
    time, and no system call sets a ctime back: a stale digest cannot be reused, whatever a
    tool does to the mtime. Hard links share one inode, so a wheel linked into a build
    context is hashed once. Entries of files not seen for 100 calls are dropped.
    """
    try:
        cache_data = read_json(cache_file, {}, cache=True)
        entries, generation = cache_data["entries"], cache_data["generation"] + 1
    except (KeyError, TypeError):  # missing, cut short or an older format
        entries, generation = {}, 1
    digests: dict[Path, str] = {}
    for path in paths:
        info = path.stat()
        key = f"{info.st_dev}:{info.st_ino}"
        stamp = [info.st_size, info.st_mtime_ns, info.st_ctime_ns]
        entry = entries.get(key)
        if entry and entry["stamp"] == stamp:
            digest = entry["sha256"]
        else:
            with path.open("rb") as handle:  # streamed: torch's wheel is ~200 MB
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
        entries[key] = {"stamp": stamp, "sha256": digest, "seen": generation}
        digests[path] = digest
    entries = {k: v for k, v in entries.items() if v.get("seen", 0) > generation - 100}
    write_json(cache_file, {"generation": generation, "entries": entries}, indent=None)
    return digests


def content_mtime_ns(seconds: int, digest: str) -> int:
    """A file time whose seconds are `seconds` and whose nanoseconds come from its sha256.

    BuildKit sends a context file again only when its size, mode or mtime (in ns) differ
    from the copy it kept from the last build; with every mtime pinned to SOURCE_DATE_EPOCH a
    same-size edit would never reach it. Deriving the nanoseconds from the content makes a
    changed file look changed, and keeps the times a function of the inputs, so images stay
    reproducible (Podman's --timestamp pins them anyway). A change that kept the same
    nanoseconds by chance (one in 10^9) is caught by the check of /app against the context
    that every build makes before it tags an image (build.check_image).
    """
    return seconds * 1_000_000_000 + int(digest[:15], 16) % 1_000_000_000
