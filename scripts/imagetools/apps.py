"""dockerfiles/apps.toml, the one list of apps: read and checked (standard library only:
the host tooling runs before any venv exists)."""

from __future__ import annotations

import argparse
import re
import tomllib
from functools import cache
from pathlib import Path

from .common import ROOT, ScriptError, shown
from .config import VARIANTS
from .lockfile import normalize

APPS_FILE = ROOT / "dockerfiles" / "apps.toml"


# One table per app: the keys and what each must hold.
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
LAYERS_KEY = "layer"  # [[layer]]: the dependency layers, shared by every app (not an app)
MAX_LAYERS = 2  # named layers; the Dockerfiles have one more dependency step, `rest`
REST = "rest"
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
        if app == LAYERS_KEY:
            problems.append(f"[{app}]: {app!r} is the dependency layers' key, not an app name")
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


def layer_problems(layers: object) -> list[str]:
    """Every problem of the [[layer]] tables, one line each (empty: valid)."""
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        return ["[[layer]] must be tables, each with a name and a list of packages"]
    problems = []
    if len(layers) > MAX_LAYERS:
        problems.append(f"[[layer]]: at most {MAX_LAYERS} layers (the Dockerfiles have "
                        f"{MAX_LAYERS + 1} dependency steps, the last one `{REST}`)")  # fmt: skip
    seen: dict[str, str] = {}
    for number, layer in enumerate(layers, 1):
        name, packages = layer.get("name"), layer.get("packages")
        if not isinstance(name, str) or not APP_NAME.match(name) or name == REST:
            problems.append(f"[[layer]] {number}: name must be a lower-case word, not {REST!r}")
        if not packages or not _is_strings(packages):
            problems.append(f"[[layer]] {number}: packages must be a non-empty list of names")
            continue
        problems += [f"[[layer]] {number}: unknown key {key!r} (known: name, packages)"
                     for key in layer if key not in ("name", "packages")]  # fmt: skip
        for package in packages:
            if package != normalize(package):
                problems.append(f"[[layer]] {name}: write {package!r} as {normalize(package)!r}")
            elif package in seen:
                problems.append(f"[[layer]] {name}: {package} is already in {seen[package]}")
            seen[package] = str(name)
    return problems


@cache
def _load() -> tuple[dict[str, dict], tuple[tuple[str, frozenset[str]], ...]]:
    try:
        with APPS_FILE.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ScriptError(f"{shown(APPS_FILE)}: {exc}") from None
    layers = data.pop(LAYERS_KEY, [])
    problems = layer_problems(layers) + app_problems(data)
    if problems:
        raise ScriptError("\n".join(f"{shown(APPS_FILE)}: {p}" for p in problems))
    named = tuple((layer["name"], frozenset(layer["packages"])) for layer in layers)
    return data, named


def load_apps() -> dict[str, dict]:
    """dockerfiles/apps.toml's apps, checked: every problem is one line of the error."""
    return _load()[0]


load_apps.cache_clear = _load.cache_clear  # type: ignore[attr-defined]


def dependency_layers() -> list[str]:
    """The names of the dependency layers, in build order: the named ones, then `rest`."""
    return [*(name for name, _ in _load()[1]), REST]


def split_lock(pins: list) -> list[list]:
    """An app's pins (lockfile.Pin), one list per dependency layer, in build order; lists
    may be empty. The last layer holds every pin no named layer lists."""
    named = _load()[1]
    split: list[list] = [[] for _ in range(len(named) + 1)]
    for pin in pins:
        index = next((i for i, (_, names) in enumerate(named) if pin.name in names), len(named))
        split[index].append(pin)
    return split


def app_spec(app: str) -> dict:
    apps = load_apps()
    if app not in apps:
        raise ScriptError(f"unknown app {app!r}; choose from: {', '.join(apps)}")
    return apps[app]


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ScriptError(f"unknown variant {variant!r}; choose from: {', '.join(VARIANTS)}")
    return variant


def parse_selection(
    command: str, argv: list[str], out: Path
) -> tuple[argparse.Namespace, list, list]:
    """`--apps A.. --variants V.. --out DIR` of a command over images: (args, apps, variants),
    every app and variant when none is named."""
    parser = argparse.ArgumentParser(prog=f"imagetools {command}")
    parser.add_argument("--apps", nargs="*", default=[])
    parser.add_argument("--variants", nargs="*", default=[])
    parser.add_argument("--out", type=Path, default=out)
    args = parser.parse_args(argv)
    apps = args.apps or list(load_apps())
    return args, apps, [check_variant(v) for v in (args.variants or VARIANTS)]
