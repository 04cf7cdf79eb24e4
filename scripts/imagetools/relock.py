"""Write the locks: `requirements/*.in` into hashed `requirements/*.txt` with pip-compile,
or check them (lockfile.py reads them).

    python -m imagetools lock            # regenerate every lock (make lock)
    python -m imagetools lock --upgrade  # also move pins to the newest allowed versions
    python -m imagetools lock --check    # fail if a lock is stale or unsafe (make lock-check)
    python -m imagetools lock --only myapp  # only these locks (dev.txt must be locked)

The locks are dev, tools and one per app of dockerfiles/apps.toml (the one list of apps).
`dev.in` includes every app's inputs, so it is locked first; each app lock is then compiled
with `dev.txt` as a constraint, so a package has the same version in every lock. Both
commands first check the layout: an app with no `.in`, a `.in` with no app, an app's `.in`
that `dev.in` does not include. Each lock
records the sha256 of its inputs in a `# input-sha256:` line, which `--check` compares
offline. Locks never hold machine-specific sources: find-links and index URLs (such as
PyTorch's CPU wheel page in backend.in) stay in the inputs.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from .apps import LAYERS_KEY
from .common import ROOT
from .common import ScriptError as LockError
from .config import Config

REQ = ROOT / "requirements"
TOOLS = "tools"  # the installers' lock (uv), in every image
MARKER = "# input-sha256: "
INCLUDE = re.compile(r"^\s*(?:-r|--requirement|-c|--constraint)\s+(\S+)", re.MULTILINE)
# What must never be in a lock: CUDA builds of torch's dependencies, and anything that
# names one machine (local paths, file URLs, extra sources).
FORBIDDEN = re.compile(
    r"^(?:nvidia-\S*|triton)==|file://|/opt/|/home/|/root/|/Users/|^\s*(?:--find-links|-f |"
    r"--index-url|-i |--extra-index-url|--trusted-host)",
    re.MULTILINE | re.IGNORECASE,
)
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", re.MULTILINE)


def app_names() -> list[str]:
    """The apps of dockerfiles/apps.toml, read as they are (a new app's table is not valid
    before its lock exists, and locking must come first)."""
    path = ROOT / "dockerfiles" / "apps.toml"
    try:
        with path.open("rb") as handle:
            return [name for name in tomllib.load(handle) if name != LAYERS_KEY]
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise LockError(f"cannot read dockerfiles/apps.toml: {exc}") from None


def lock_names() -> list[str]:
    """Every lock, in the order they are compiled: dev first, the others constrained by it."""
    return ["dev", *app_names(), TOOLS]


def layout_problems() -> list[str]:
    """An app without inputs, inputs without an app, an app's inputs that dev.in leaves out."""
    apps = app_names()
    problems = [f"[{app}] in dockerfiles/apps.toml has no requirements/{app}.in: write the "
                "app's requirements there" for app in apps
                if not (REQ / f"{app}.in").is_file()]  # fmt: skip
    problems += [f"requirements/{path.name} has no [{path.stem}] table in dockerfiles/apps.toml: "
                 "add one, or remove the file" for path in sorted(REQ.glob("*.in"))
                 if path.stem not in (*apps, "dev", TOOLS)]  # fmt: skip
    dev_in = REQ / "dev.in"
    included = {Path(name).name for name in INCLUDE.findall(dev_in.read_text())}
    problems += [f"requirements/dev.in does not include {app}.in: add the line `-r {app}.in` "
                 "(the test venv runs every app)" for app in [*apps, TOOLS]
                 if f"{app}.in" not in included and (REQ / f"{app}.in").is_file()]  # fmt: skip
    return problems


def inputs_of(name: str) -> list[Path]:
    """The files a lock depends on: its .in, every file it includes, and dev.txt for apps."""
    seen: list[Path] = []

    def visit(path: Path) -> None:
        if path in seen:
            return
        if not path.is_file():
            raise LockError(f"missing input {path.relative_to(ROOT)}")
        seen.append(path)
        for include in INCLUDE.findall(path.read_text()):
            visit((path.parent / include).resolve())

    visit(REQ / f"{name}.in")
    if name != "dev":
        seen.append(REQ / "dev.txt")
    return seen


def input_sha256(name: str) -> str:
    digest = hashlib.sha256()
    for path in inputs_of(name):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0")
        text = path.read_text()
        if path.suffix == ".txt":  # a lock's own marker line is not part of its pins
            text = "".join(line for line in text.splitlines(True) if not line.startswith(MARKER))
        digest.update(text.encode() + b"\0")
    return digest.hexdigest()


def check_platform() -> None:
    machine = platform.machine().lower()
    if (
        sys.version_info[:2] != (3, 11)
        or sys.platform != "linux"
        or machine
        not in {
            "x86_64",
            "amd64",
        }
    ):
        raise LockError(
            "locks are pinned for CPython 3.11 on Linux x86_64 (the images' platform); "
            f"this is Python {platform.python_version()} on {sys.platform}/{machine}: "
            "run `make lock` inside `nix develop` on Linux x86_64 or in a python:3.11 container"
        )


def compile_lock(name: str, upgrade: bool) -> None:
    out = REQ / f"{name}.txt"
    cmd = [
        sys.executable, "-m", "piptools", "compile",
        "--quiet", "--generate-hashes", "--allow-unsafe", "--strip-extras",
        "--no-emit-index-url", "--no-emit-find-links",
        "--pip-args", os.environ.get("LOCK_PIP_ARGS", "--retries 1"),
        "--output-file", out.name,
    ]  # fmt: skip
    if upgrade:
        cmd.append("--upgrade")
    if name != "dev":
        cmd += ["--constraint", "dev.txt"]
    cmd.append(f"{name}.in")
    print(f">> locking requirements/{name}.txt", flush=True)
    env = dict(os.environ, CUSTOM_COMPILE_COMMAND="make lock")
    result = subprocess.run(cmd, cwd=REQ, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        errors = [line for line in result.stderr.splitlines() if "ERROR" in line or "rror:" in line]
        raise LockError(f"pip-compile failed for {name}.in: {(errors or ['see above'])[-1]}")
    text = out.read_text()
    problems = FORBIDDEN.findall(text)
    if problems:
        raise LockError(f"requirements/{name}.txt would hold {problems[0]!r}: refusing to write it")
    out.write_text(f"{MARKER}{input_sha256(name)}\n{text}")


def check_lock(name: str) -> list[str]:
    out = REQ / f"{name}.txt"
    if not out.is_file():
        return [f"requirements/{name}.txt is missing: run `make lock`"]
    text = out.read_text()
    problems = []
    recorded = next((ln[len(MARKER) :] for ln in text.splitlines() if ln.startswith(MARKER)), "")
    if recorded.strip() != input_sha256(name):
        problems.append(f"requirements/{name}.txt is stale: its inputs changed, run `make lock`")
    for match in FORBIDDEN.finditer(text):
        problems.append(f"requirements/{name}.txt holds {match.group(0).strip()!r}")
    if "--hash=sha256:" not in text:
        problems.append(f"requirements/{name}.txt has no hashes")
    if name != "dev":
        dev_pins = dict(PIN.findall((REQ / "dev.txt").read_text()))
        for pkg, version in PIN.findall(text):
            if dev_pins.get(pkg) != version:
                problems.append(f"requirements/{name}.txt pins {pkg}=={version}, dev.txt does not")
    return problems


def main(cfg: Config, command: str, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"imagetools {command}")
    parser.add_argument("--check", action="store_true", help="check, do not write")
    parser.add_argument("--upgrade", action="store_true", help="move pins to newest versions")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="lock only these")
    args = parser.parse_args(argv)
    try:
        names = lock_names()
        problems = layout_problems()
        if args.check:
            problems += [p for name in names for p in check_lock(name)]
            for problem in problems:
                print(f"lock-check: {problem}", file=sys.stderr)
            if not problems:
                print(f">> {len(names)} locks are up to date, hashed and machine-independent")
            return 1 if problems else 0
        if problems:
            raise LockError("; ".join(problems))
        unknown = sorted(set(args.only or []) - set(names))
        if unknown:
            raise LockError(f"no lock named {', '.join(unknown)}; the locks: {', '.join(names)}")
        check_platform()
        for name in names:
            if not args.only or name in args.only:
                compile_lock(name, args.upgrade)
    except LockError as exc:
        print(f"lock: error: {exc}", file=sys.stderr)
        return 1
    return 0
