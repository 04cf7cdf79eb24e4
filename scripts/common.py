"""Shared helpers for the build scripts: paths, app data, messages, the container engine."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
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


def shown(path: Path) -> str:
    """path relative to the repository when it is inside it (else as it is)."""
    return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


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
        for line in str(exc).splitlines():
            print(f"{PROG}: error: {line}", file=sys.stderr)
        sys.exit(1)
    except subprocess.CalledProcessError as exc:
        command = " ".join(str(part) for part in exc.cmd)
        print(f"{PROG}: error: `{command}` failed (exit {exc.returncode})", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        sys.exit(130)


# dockerfiles/apps.toml, one table per app: the keys and what each must hold. Checked with
# the standard library: the host tooling needs no venv (`make images` runs before one exists).
APP_KEYS = {
    "description": "a string",
    "packages": "a non-empty list of package names under src/",
    "command": "a non-empty list of strings",
    "env": "a table of strings",
    "port": "a whole number from 1 to 65535",
    "health": "a path starting with /",
    "model": "a folder name under the trainer's artifacts",
    "prune": "a list of glob strings",
}
APP_NAME = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")  # a valid image repository name


def _is_strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def app_problems(apps: dict, root: Path = ROOT) -> list[str]:
    """Every problem of the apps.toml data, one line each (empty: valid)."""
    problems = []
    ports: dict[int, str] = {}
    for app, spec in apps.items():
        if not isinstance(spec, dict):
            problems.append(f"[{app}] must be a table")
            continue
        if not APP_NAME.match(app):
            problems.append(f"[{app}]: app names are lower-case letters, digits and . _ -")
        problems += [f"[{app}]: unknown key {key!r} (known: {', '.join(APP_KEYS)})"
                     for key in spec if key not in APP_KEYS]  # fmt: skip
        packages, command = spec.get("packages"), spec.get("command")
        if not packages or not _is_strings(packages):
            problems.append(f"[{app}]: packages must be {APP_KEYS['packages']}")
        else:
            problems += [f"[{app}]: package {name!r} is not under src/ (no src/{name}/__init__.py)"
                         for name in packages
                         if not (root / "src" / name / "__init__.py").is_file()]  # fmt: skip
        if not command or not _is_strings(command):
            problems.append(f"[{app}]: command must be {APP_KEYS['command']}, like "
                            '["python", "-m", "mypkg"]')  # fmt: skip
        env = spec.get("env", {})
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            problems.append(f"[{app}]: env must be {APP_KEYS['env']}")
        if "prune" in spec and not _is_strings(spec["prune"]):
            problems.append(f"[{app}]: prune must be {APP_KEYS['prune']}")
        for key in ("description", "model"):
            if key in spec and not isinstance(spec[key], str):
                problems.append(f"[{app}]: {key} must be {APP_KEYS[key]}")
        port, health = spec.get("port"), spec.get("health")
        if (port is None) != (health is None):
            problems.append(f"[{app}]: a service needs both port and health (a job neither)")
        if port is not None:
            if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
                problems.append(f"[{app}]: port must be {APP_KEYS['port']}, not {port!r}")
            elif port in ports:
                problems.append(f"[{app}]: port {port} is already [{ports[port]}]'s")
            else:
                ports[port] = app
        if health is not None and not (isinstance(health, str) and health.startswith("/")):
            problems.append(f"[{app}]: health must be {APP_KEYS['health']}, not {health!r}")
        if not (root / "requirements" / f"{app}.txt").is_file():
            problems.append(f"no lock for {app}: write requirements/{app}.in, add `-r {app}.in` "
                            "to requirements/dev.in, and run `make lock`")  # fmt: skip
    return problems


@cache
def load_apps() -> dict[str, dict]:
    """dockerfiles/apps.toml, checked: every problem is one line of the error."""
    try:
        with APPS_FILE.open("rb") as handle:
            apps = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ScriptError(f"{shown(APPS_FILE)}: {exc}") from None
    problems = app_problems(apps)
    if problems:
        raise ScriptError("\n".join(f"{shown(APPS_FILE)}: {p}" for p in problems))
    return apps


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


# The images' platform: the locks and the wheelhouse hold CPython 3.11 wheels for Linux
# x86_64. Every build, pull, run and create names it (engine_run), so an engine whose own
# platform differs (Docker Desktop on Apple silicon) emulates it instead of picking its own.
PLATFORMS = ("linux/amd64",)
PLATFORM_COMMANDS = ("build", "pull", "run", "create")


def target_platform() -> str:
    """PLATFORM (default linux/amd64), refused with one line when the locks do not cover it."""
    value = os.environ.get("PLATFORM") or PLATFORMS[0]
    if value not in PLATFORMS:
        raise ScriptError(
            f"PLATFORM={value} is not covered by the locks and the wheelhouse (CPython 3.11 "
            f"wheels for {', '.join(PLATFORMS)}): build {PLATFORMS[0]}, which arm64 hosts "
            "(Apple silicon) run under emulation"
        )
    return value


def engine_run(engine: str, args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run the engine client with args; kwargs go to subprocess.run (check=False default).

    build, pull, run and create get `--platform PLATFORM` unless args name one already
    (and Podman's run and create `--pull=never`: they run the image built here)."""
    if args and args[0] in PLATFORM_COMMANDS and not any(a.startswith("--platform") for a in args):
        extra = [f"--platform={target_platform()}"]
        if engine == "podman" and args[0] in ("run", "create"):
            # With a platform, Podman's default pull policy becomes "newer": a tag that also
            # exists in a registry would be replaced by the registry's image before it runs.
            extra.append("--pull=never")
        args = [args[0], *extra, *args[1:]]
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
