"""Shared helpers for the build scripts: paths, app data, messages, the container engine."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
APPS_FILE = ROOT / "dockerfiles" / "apps.toml"
VARIANTS = ("pip", "uv", "multistage")
PROG = Path(sys.argv[0]).stem


def load_script(name: str) -> ModuleType:
    """Import scripts/<name>.py under a private name, once.

    A plain `import build` can find pypa's `build` package (pip-tools needs it) instead of
    scripts/build.py, so other scripts and the tests load the scripts by path.
    """
    module_name = f"grocery_script_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, ROOT / "scripts" / f"{name}.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


class ScriptError(Exception):
    """An error shown to the user as one line, exit status 1."""


def step(message: str) -> None:
    print(f">> {message}", flush=True)


def note(message: str) -> None:
    print(f"   {message}", flush=True)


def main_wrapper(main) -> None:
    """Run main(); turn ScriptError and Ctrl-C into one readable line and exit status."""
    try:
        sys.exit(main())
    except ScriptError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except subprocess.CalledProcessError as exc:
        command = " ".join(str(part) for part in exc.cmd)
        print(f"{PROG}: error: `{command}` failed (exit {exc.returncode})", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        sys.exit(130)


@cache
def load_apps() -> dict[str, dict]:
    with APPS_FILE.open("rb") as handle:
        return tomllib.load(handle)


def app_spec(app: str) -> dict:
    apps = load_apps()
    if app not in apps:
        raise ScriptError(f"unknown app {app!r}; choose from: {', '.join(apps)}")
    return apps[app]


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ScriptError(f"unknown variant {variant!r}; choose from: {', '.join(VARIANTS)}")
    return variant


def source_date_epoch() -> int:
    """SOURCE_DATE_EPOCH from the environment, else the last commit's time, else 0."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        value = os.environ["SOURCE_DATE_EPOCH"]
        if not value.isdigit():
            raise ScriptError(f"SOURCE_DATE_EPOCH must be whole seconds, not {value!r}")
        return int(value)
    result = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%ct"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return int(result.stdout.strip() or 0)


def git_revision() -> str:
    result = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or "unknown"


def _client_version(client: str) -> str:
    try:
        result = subprocess.run(
            [client, "version", "--format", "{{.Client.Version}}"],
            capture_output=True, text=True, check=False, timeout=30,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return ""
    return result.stdout.strip()


@cache
def engine_command(engine: str) -> tuple[list[str], dict[str, str]]:
    """The client command and extra environment for ENGINE (docker or podman).

    Docker builds need BuildKit (RUN --mount). A client with the buildx plugin drives it;
    so does a pre-23 client (Debian's docker.io 20.10) with DOCKER_BUILDKIT=1. The 28.x
    client without buildx cannot, so it is skipped for another client on the machine.
    """
    if engine == "podman":
        if not shutil.which("podman"):
            raise ScriptError("podman is not installed (Debian/Ubuntu: apt-get install podman)")
        return ["podman"], {}
    if engine != "docker":
        raise ScriptError(f"unknown ENGINE {engine!r}; choose docker or podman")
    candidates = [os.environ["DOCKER"]] if os.environ.get("DOCKER") else []
    candidates += [c for c in (shutil.which("docker"), "/usr/bin/docker") if c]
    for client in dict.fromkeys(candidates):
        if not Path(client).exists() and not shutil.which(client):
            continue
        version = _client_version(client)
        if not version:
            continue
        major = int(version.split(".")[0]) if version.split(".")[0].isdigit() else 0
        if major and major < 23:
            return [client], {"DOCKER_BUILDKIT": "1"}
        buildx = subprocess.run(
            [client, "buildx", "version"], capture_output=True, check=False, timeout=30
        )
        if buildx.returncode == 0:
            return [client], {"DOCKER_BUILDKIT": "1"}
    raise ScriptError(
        "no docker client here can drive BuildKit: install the buildx plugin, or Debian's "
        "docker.io (its 20.10 client works with DOCKER_BUILDKIT=1), or use ENGINE=podman"
    )


def engine_run(engine: str, args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run the engine client with args; kwargs go to subprocess.run (check=False default)."""
    command, extra_env = engine_command(engine)
    env = dict(os.environ, **extra_env, **kwargs.pop("env", {}))
    kwargs.setdefault("check", False)
    return subprocess.run([*command, *args], env=env, **kwargs)


def image_exists(engine: str, ref: str) -> bool:
    result = engine_run(engine, ["image", "inspect", ref], capture_output=True)
    return result.returncode == 0


def trim_build_cache(engine: str) -> None:
    """Keep the builder's cache bounded after --no-cache builds (they add a copy each time).

    BuildKit keeps every no-cache build's layers as cache records: a few dozen cold builds of
    the torch images fill tens of GB. Keep the most recently used BUILD_CACHE_KEEP (20GB by
    default); the images themselves are never touched.
    """
    if engine != "docker":
        return
    keep = os.environ.get("BUILD_CACHE_KEEP", "20GB")
    engine_run(engine, ["builder", "prune", "--force", "--keep-storage", keep],
               capture_output=True)  # fmt: skip


def sha256_files(paths: Iterable[Path], cache_file: Path) -> dict[Path, str]:
    """sha256 of each file, reusing a digest from cache_file while the file is unchanged.

    A cached digest is keyed on the file's device, inode, size, mtime and ctime (in ns). Any
    write to a file, in place and of the same size included, moves its ctime to the current
    time, and no system call sets a ctime back: a stale digest cannot be reused, whatever a
    tool does to the mtime. Hard links share one inode, so a wheel linked into a build
    context is hashed once. Entries of files not seen for 100 calls are dropped.
    """
    try:
        cache_data = json.loads(cache_file.read_text()) if cache_file.exists() else {}
        entries, generation = cache_data["entries"], cache_data["generation"] + 1
    except (ValueError, KeyError, TypeError):  # missing, cut short or an older format
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
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    partial = cache_file.with_name(f".{cache_file.name}.{os.getpid()}")
    partial.write_text(json.dumps({"generation": generation, "entries": entries}) + "\n")
    partial.replace(cache_file)  # atomic: a concurrent reader sees the old or the new file
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
