"""Why each image step re-ran or was reused: `make explain APP=backend VARIANT=uv [--json]`.

Every image build records, per step, the digest of each of its inputs, named as a user
knows them (a file under src/, requirements/, artifacts/, the wheelhouse, an apps.toml
field, the base image, the Dockerfile text up to the step), together with the
engine's decision (cached or ran, read from BuildKit's plain progress or Podman's log), in
build/explain/<engine>/<tag>.json. Comparing it with the last build of the same image gives
one line per step:

    flask:uv deps-numeric: re-ran, requirements/flask.txt: scikit-learn 1.9.0 -> 1.9.1
    flask:uv deps-rest: re-ran, the dependency layers before it
    flask:uv app: re-ran, src/flask_api/views.py changed

A step the engine reused although an input changed, and whose layer records other inputs
than the current ones, fails the build (the safety net under the cache keys); a step the
engine re-ran with no input changed is a warning (a pruned cache, or a nondeterministic
input).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

from .apps import check_variant, dependency_layers
from .common import ROOT, ScriptError, shown
from .config import Config
from .lockfile import read_lock


# Each step of the Dockerfiles: the marker in its instruction, which finds it in the engine's
# log and in the Dockerfile (the text up to the end of that instruction is one of the step's
# inputs). Dependency layer n is the step `deps-<its apps.toml name>`.
def steps_of(variant: str) -> dict[str, str]:
    steps = {"rootfs": "runtime-root inputs"} if variant == "multistage" else {}
    steps["setup"] = "setup inputs"
    for number, name in enumerate(dependency_layers(), 1):
        steps[f"deps-{name}"] = f"dependency layer {number} inputs"
    return steps | {"app": "COPY app/ /app/"}


KEY = re.compile(r"\b((?:TOOLS|DEPS\d)_SHA256)=([0-9a-f]{64})")


def source_name(app: str, spec: dict, rel: str) -> str:
    """The repository path (or apps.toml field) a context file comes from."""
    runtime, helpers = "dockerfiles/runtime/", "dockerfiles/buildtime/"
    if rel.startswith("app/"):
        inner = rel.removeprefix("app/")
        if inner == "launch.json":
            return f"dockerfiles/apps.toml [{app}] command/env/port/health"
        if inner in ("launch.py", "healthcheck.py"):
            return runtime + inner
        if inner.startswith("model/"):
            return f"artifacts/{spec['model']}/{inner.removeprefix('model/')}"
        return f"src/{inner}"
    names = {"tools/tools.txt": "requirements/tools.txt", "tools/pip.whl": "pip's wheel",
             "prune.txt": f"dockerfiles/apps.toml [{app}].prune",
             ".dockerignore": "dockerfiles/context.dockerignore"}  # fmt: skip
    if rel in names:
        return names[rel]
    if rel.startswith("deps/") and rel.endswith("/lock.txt"):
        return f"requirements/{app}.txt"
    if rel.endswith(".whl"):
        return f"build/wheelhouse/{rel.rsplit('/', 1)[-1]}"
    return helpers + rel.removeprefix("buildtime/")


def dockerfile_upto(dockerfile: Path, marker: str) -> str:
    """sha256 of the Dockerfile's text up to the end of the instruction holding marker."""
    lines = dockerfile.read_text().splitlines(keepends=True)
    end = next((i for i, line in enumerate(lines) if marker in line), len(lines) - 1)
    while end + 1 < len(lines) and lines[end].rstrip().endswith("\\"):
        end += 1
    return hashlib.sha256("".join(lines[: end + 1]).encode()).hexdigest()


def step_inputs(app: str, spec: dict, variant: str, digests: dict[str, str],
                base_id: str) -> dict[str, dict[str, str]]:  # fmt: skip
    """{step: {input name: digest}} for the variant's steps, from the context's digests
    (the files each step mounts, as images.step_inputs keys them; each step after the first
    also depends on the steps before it).

    Build args that only set labels (VCS_REF, CREATED, ...) are no step's input: BuildKit
    keeps labels in the config; buildah keys a LABEL step on its text, not on the args."""
    dockerfile = ROOT / "dockerfiles" / f"{variant}.Dockerfile"
    shared = {rel: d for rel, d in digests.items()
              if rel.startswith(("tools/", "buildtime/")) or rel == ".dockerignore"}  # fmt: skip
    files = {"rootfs": {rel: d for rel, d in digests.items() if rel == "buildtime/prune_rootfs.py"},
             "setup": shared if variant != "pip" else {},
             "app": {rel: d for rel, d in digests.items() if rel.startswith("app/")}}  # fmt: skip
    for number, name in enumerate(dependency_layers(), 1):
        files[f"deps-{name}"] = shared | {rel: d for rel, d in digests.items()
                                         if rel.startswith(f"deps/{number}/")
                                         or rel == "prune.txt"}  # fmt: skip
    steps: dict[str, dict[str, str]] = {}
    for step, marker in steps_of(variant).items():
        inputs = {
            "base image": base_id,
            f"{shown(dockerfile)} (up to the {step} step)": dockerfile_upto(dockerfile, marker),
        }
        inputs |= {source_name(app, spec, rel): d for rel, d in files[step].items()}
        earlier = [s for s in steps if s != "rootfs"]
        if earlier:
            before = json.dumps([steps[s] for s in earlier], sort_keys=True).encode()
            inputs["the steps before it"] = hashlib.sha256(before).hexdigest()
        steps[step] = inputs
    return steps


def lock_pins(ctx: Path, app: str) -> dict[str, dict[str, str]]:
    """{lock's repository path: {package: version}}, to name what a lock change moved."""
    parts = sorted((ctx / "deps").glob("*/lock.txt"))  # what the dependency steps install
    tools = read_lock(ctx / "tools" / "tools.txt")
    return {f"requirements/{app}.txt": {p.name: p.version for part in parts
                                        for p in read_lock(part)},
            "requirements/tools.txt": {p.name: p.version for p in tools}}  # fmt: skip


def decisions(log: str, variant: str = "uv") -> dict[str, str]:
    """{step: 'cached' | 'ran'} from BuildKit's plain progress or Podman's build log."""
    found: dict[str, str] = {}
    if re.search(r"^#\d+ \[", log, re.M):  # BuildKit: `#7 [builder 3/3] RUN ...`, `#7 CACHED`
        for step, marker in steps_of(variant).items():
            number = next((m[1] for m in re.finditer(r"^#(\d+) \[[^\]]+\] (.*)$", log, re.M)
                           if marker in m[2]), None)  # fmt: skip
            if number:
                cached = re.search(rf"^#{number} CACHED$", log, re.M)
                found[step] = "cached" if cached else "ran"
        return found
    blocks = re.split(r"^(?:\[\d+/\d+\] )?STEP \d+/\d+: ", log, flags=re.M)  # Podman
    for step, marker in steps_of(variant).items():
        block = next((b for b in blocks if b.split("\n", 1)[0].find(marker) >= 0), None)
        if block is not None:
            found[step] = "cached" if "--> Using cache" in block else "ran"
    return found


def describe(name: str, before: str | None, after: str | None,
             pins: tuple[dict, dict]) -> str:  # fmt: skip
    """One input's change, as a user thinks of it."""
    if before is None:
        return f"{name} added"
    if after is None:
        return f"{name} removed"
    if name.startswith("requirements/") and name.endswith(".txt"):
        old, new = pins[0].get(name, {}), pins[1].get(name, {})
        moved = [f"{p} {old[p]} -> {new[p]}" for p in sorted(old.keys() & new.keys())
                 if old[p] != new[p]]  # fmt: skip
        moved += [f"+{p} {new[p]}" for p in sorted(new.keys() - old.keys())]
        moved += [f"-{p} {old[p]}" for p in sorted(old.keys() - new.keys())]
        return f"{name}: {', '.join(moved[:4])}" if moved else f"{name} changed (hashes only)"
    if name == "base image":
        return "base image changed"
    if name == "the steps before it":
        return "a step before it changed"
    if name.startswith("build arg "):
        return f"{name}: {before} -> {after}"
    return f"{name} changed"


Findings = tuple[list[str], list[str], list[str]]


def analyse(label: str, previous: dict | None, current: dict, found: dict[str, str],
            recorded: dict[str, str], current_keys: dict[str, str],
            no_cache: bool = False) -> Findings:  # fmt: skip
    """(lines, errors, warnings) for one build, compared with the image's previous build.

    recorded: the step keys (TOOLS_SHA256, DEPS<n>_SHA256) the image's history holds, pip and
    uv images; current_keys: those of this build's inputs (images.step_inputs)."""
    lines, errors, warnings = [], [], []
    args = {"setup": "TOOLS_SHA256"} | {
        f"deps-{name}": f"DEPS{n}_SHA256" for n, name in enumerate(dependency_layers(), 1)
    }
    for step, inputs in current["steps"].items():
        decision = found.get(step, "unknown")
        old = (previous or {}).get("steps", {}).get(step)
        changed = [] if old is None else sorted(n for n in old.keys() | inputs.keys()
                                                if old.get(n) != inputs.get(n))  # fmt: skip
        pins = ((previous or {}).get("pins", {}), current.get("pins", {}))
        why = [describe(n, (old or {}).get(n), inputs.get(n), pins) for n in changed]
        arg = args.get(step, "")
        was, now = recorded.get(arg), current_keys.get(arg)
        if decision == "cached" and was is not None and was != now:
            errors.append(f"{label} {step}: the engine reused a layer built from other inputs "
                          f"({arg} {was[:12]}, now {str(now)[:12]})"
                          + (f" although {why[0]}" if why else "") + ": refusing it")  # fmt: skip
        elif decision == "ran" and why:
            lines.append(f"{label} {step}: re-ran, {'; '.join(why)}")
        elif decision == "ran" and no_cache:
            lines.append(f"{label} {step}: re-ran, --no-cache")
        elif decision == "ran" and old is None:
            lines.append(f"{label} {step}: ran (no earlier build of this image recorded here)")
        elif decision == "ran":
            lines.append(f"{label} {step}: re-ran with no input changed")
            warnings.append(f"{label} {step}: re-ran although no input changed: the engine no "
                            "longer had it cached (pruned, --no-cache), or an input is not "
                            "deterministic")  # fmt: skip
        elif decision == "cached" and why:
            lines.append(f"{label} {step}: cached, a layer built earlier from these same "
                         f"inputs ({'; '.join(why)})")  # fmt: skip
        else:
            lines.append(f"{label} {step}: {decision}")
    return lines, errors, warnings


def recorded_keys(history: str) -> dict[str, str]:
    """The step keys (TOOLS_SHA256, DEPS<n>_SHA256) the image's layers were built with, from
    its history (pip and uv images: the runtime stage's RUN steps)."""
    return dict(KEY.findall(history))


def record_path(cfg: Config, app: str, variant: str) -> Path:
    """The record of the last build of IMAGE_PREFIX<app>:<variant> with this engine."""
    return cfg.build_dir / "explain" / cfg.engine / f"{cfg.image_prefix}{app}-{variant}.json"


def main(cfg: Config, command: str, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"imagetools {command}")
    parser.add_argument("app")
    parser.add_argument("variant")
    parser.add_argument("--json", action="store_true", help="the whole record, as JSON")
    args = parser.parse_args(argv)
    path = record_path(cfg, args.app, check_variant(args.variant))
    if not path.is_file():
        image = f"APP={args.app} VARIANT={args.variant} ENGINE={cfg.engine}"
        raise ScriptError(f"no build of {args.app}:{args.variant} recorded in {shown(path)}: "
                          f"run `make image {image}` first")  # fmt: skip
    record = json.loads(path.read_text())
    if args.json:
        json.dump(record, sys.stdout, indent=1, sort_keys=True)
        print()
    else:
        print("\n".join(record["lines"] + [f"warning: {w}" for w in record["warnings"]]))
    return 0
