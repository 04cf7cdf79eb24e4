#!/usr/bin/env python3
"""Benchmark the pip, uv and multi-stage builds fairly and repeatably: `make bench-builds`.

    python3 scripts/bench_builds.py [--apps ...] [--variants ...] [--scenarios ...]
                                    [--repeat N] [--quick] [--keep] [--out build/bench]

Scenarios, for each app x variant: cold (--no-cache), warm (no-op rebuild), code (a comment
appended to one .py of the app) and dep (one lock pin moved to another version of a small
pure-Python wheel, fetched once into build/bench/wheels). Each is repeated; variants are
interleaved in a rotated order so drift favours none. Builds go through scripts/build.py's
own functions (same Dockerfiles, base, wheelhouse and engine command as `make images`) on a
private copy of the build folder, tagged `bench-<app>:<variant>`; those tags are removed at
the end unless --keep. Results: build/bench/<timestamp>/ and build/bench/latest/
(results.json, report.md, charts; see scripts/bench_report.py).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

SCRIPTS = Path(__file__).resolve().parent
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

import bench_report  # noqa: E402 - scripts/ must be on sys.path first
import common  # noqa: E402
from common import (  # noqa: E402
    ROOT,
    VARIANTS,
    ScriptError,
    engine_run,
    load_script,
    main_wrapper,
    note,
    step,
    trim_build_cache,
)
from locks import normalize, read_lock  # noqa: E402

SCENARIOS = ("cold", "warm", "code", "dep")
ALIASES = {"deps": "dep", "deps-change": "dep", "no-op": "warm"}
PREFIX = "bench-"
HEALTH_TIMEOUT = 120.0
POLL = 0.05
# Small pure-Python packages to move to another version for the `dep` scenario, first found
# in the app's lock wins.
DEP_CANDIDATES = ("packaging", "typing-extensions", "click", "idna", "blinker", "itsdangerous")
MARK = re.compile(r"bench-mark (begin|install|compile|end) (\d+(?:\.\d+)?)\s*$")
STEP_TITLE = re.compile(r"^#(\d+) \[([^\]]+)\] (.*)$", re.M)


# ---- pure helpers (unit-tested) ------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """One measured build."""

    repeat: int
    app: str
    variant: str
    scenario: str


def rotated(items: list[str] | tuple[str, ...], shift: int) -> list[str]:
    items = list(items)
    if not items:
        return []
    shift %= len(items)
    return items[shift:] + items[:shift]


def plan(apps: list[str], variants: list[str], scenarios: list[str], repeat: int) -> list[Job]:
    """Measured builds in order: repeat > app > scenario > variants rotated per repeat and app."""
    ordered = [s for s in SCENARIOS if s in scenarios]
    jobs = []
    for r in range(1, repeat + 1):
        for a, app in enumerate(apps):
            for scenario in ordered:
                for variant in rotated(variants, r - 1 + a):
                    jobs.append(Job(r, app, variant, scenario))
    return jobs


def parse_marks(log: str) -> dict[str, float]:
    """Install segments (seconds) from the `bench-mark` timestamps in a plain BuildKit log."""
    marks: dict[str, float] = {}
    for line in log.splitlines():
        match = MARK.search(line)
        if match:
            marks[match[1]] = float(match[2])
    out: dict[str, float] = {}
    for name, start, end in (
        ("setup_s", "begin", "install"),
        ("install_s", "install", "compile"),
        ("compile_s", "compile", "end"),
        ("install_step_s", "begin", "end"),
    ):
        if start in marks and end in marks:
            out[name] = round(marks[end] - marks[start], 3)
    return out


def step_cache(log: str) -> dict[str, int]:
    """Build steps (FROM and [internal] excluded) and how many of them were CACHED."""
    steps = cached = 0
    for number, where, title in STEP_TITLE.findall(log):
        if where == "internal" or title.startswith("FROM "):
            continue
        steps += 1
        if re.search(rf"^#{number} CACHED$", log, re.M):
            cached += 1
    return {"steps": steps, "cached_steps": cached}


def swap_pin(lock: str, name: str, version: str, sha256: str) -> str:
    """lock with `name==...` and its hashes replaced by `name==version` and one hash."""
    pattern = re.compile(
        r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)((?: \\\n\s+--hash=sha256:[0-9a-f]{64})+)", re.M
    )
    found = [m for m in pattern.finditer(lock) if normalize(m[1]) == normalize(name)]
    if len(found) != 1:
        raise ScriptError(f"{name} is pinned {len(found)} times in the lock, expected once")
    match = found[0]
    new = f"{match[1]}=={version} \\\n    --hash=sha256:{sha256}"
    return lock[: match.start()] + new + lock[match.end() :]


def gzip_size(stream: IO[bytes], level: int = 6) -> int:
    """Bytes of `gzip -<level>` of a stream, read in chunks."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    total = 0
    while chunk := stream.read(1 << 20):
        total += len(compressor.compress(chunk))
    return total + len(compressor.flush())


def saved_layer_sizes(archive: IO[bytes]) -> list[int]:
    """gzip -6 size of each layer tar in a `docker save` stream, in archive order."""
    sizes = []
    with tarfile.open(fileobj=archive, mode="r|") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith("layer.tar"):
                handle = tar.extractfile(member)
                assert handle is not None
                sizes.append(gzip_size(handle))
    return sizes


# ---- engine side ---------------------------------------------------------------------------
class Bench:
    """One benchmark run: private build folder, bench tags, results."""

    def __init__(self, args: argparse.Namespace, out: Path) -> None:
        self.args = args
        self.engine = args.engine
        self.out = out
        self.prefix = args.prefix
        # Beside the wheelhouse (contexts hard-link its wheels), private to this run.
        self.work = ROOT / "build" / "bench-work" / uuid.uuid4().hex[:8]
        self.build = load_script("build")
        self.base = load_script("base")
        self.wheels = load_script("wheels")
        self.commands: list[list[str]] = []
        self.image_ids: set[str] = set()
        self.log_number = 0
        self.results: dict = {"schema": 1, "builds": [], "images": [], "health": []}
        self._wrap_engine_run()

    def _wrap_engine_run(self) -> None:
        """Record every engine command build.py runs (the exact build command lines)."""
        client, extra_env = common.engine_command(self.engine)
        prefix = [*(f"{k}={v}" for k, v in extra_env.items()), *client]

        def recording(engine: str, args: list[str], **kwargs) -> subprocess.CompletedProcess:
            self.commands.append([*prefix, *args])
            return engine_run(engine, args, **kwargs)

        self.build.engine_run = recording

    # -- setup ---------------------------------------------------------------------------
    def prepare(self) -> None:
        if self.work.exists():
            shutil.rmtree(self.work)
        self.work.mkdir(parents=True)
        (self.work / "wheelhouse").symlink_to(ROOT / "build" / "wheelhouse")
        self.build.BUILD = self.work  # contexts and logs go here, not to build/context
        os.environ["IMAGE_PREFIX"] = self.prefix
        self.epoch = common.source_date_epoch()
        # One revision for the whole run: VCS_REF is a build arg of the dependency step, so a
        # commit made meanwhile would turn every later build into a full rebuild.
        self.revision = common.git_revision()
        self.build.git_revision = lambda: self.revision
        self.base_image = self.base.resolve(
            self.engine, self.args.base, self.args.local_base, self.epoch
        )
        self.wheel_hashes = self.wheels.ensure_wheelhouse(
            ROOT / "build" / "wheelhouse", list(common.load_apps())
        )
        self.base_layers = len(self.layers(self.base_image))
        self.dep_changes = (
            {app: self.dep_change(app) for app in self.args.apps}
            if "dep" in self.args.scenarios
            else {}
        )

    def dep_change(self, app: str) -> dict:
        """The pin moved in the `dep` scenario and its other wheel, fetched once and reused."""
        pins = {p.name: p for p in read_lock(ROOT / "requirements" / f"{app}.txt")}
        name = next((n for n in DEP_CANDIDATES if n in pins), None)
        if name is None:
            raise ScriptError(f"none of {', '.join(DEP_CANDIDATES)} is in {app}'s lock")
        pin = pins[name]
        cache_dir = self.args.out / "wheels"
        cache_dir.mkdir(parents=True, exist_ok=True)
        manifest = cache_dir / "dep-change.json"
        known = json.loads(manifest.read_text()) if manifest.exists() else {}
        key = f"{name}=={pin.version}"
        entry = known.get(key)
        if not entry or not (cache_dir / entry["wheel"]).is_file():
            step(f"fetching another version of {name} (below {pin.version}) for the dep scenario")
            before = set(cache_dir.glob("*.whl"))
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary",
                ":all:",
                "--platform",
                "manylinux2014_x86_64",
                "--python-version",
                "3.11",
                "--implementation",
                "cp",
                "--disable-pip-version-check",
                "--progress-bar",
                "off",
                "-d",
                str(cache_dir),
                f"{name}<{pin.version}",
            ]
            result = subprocess.run(cmd, capture_output=True, text=True, check=False)
            fetched = sorted(set(cache_dir.glob("*.whl")) - before) or sorted(
                w
                for w in cache_dir.glob("*.whl")
                if normalize(w.name.split("-")[0]) == normalize(name)
                and w.name.split("-")[1] != pin.version
            )
            if result.returncode != 0 or not fetched:
                last = (result.stderr.strip().splitlines() or ["no output"])[-1]
                raise ScriptError(f"cannot fetch another {name} wheel: {last}")
            wheel = fetched[-1]
            with wheel.open("rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
            entry = {
                "package": name,
                "from": pin.version,
                "to": wheel.name.split("-")[1],
                "wheel": wheel.name,
                "sha256": digest,
            }
            known[key] = entry
            manifest.write_text(json.dumps(known, indent=1, sort_keys=True) + "\n")
        note(f"{app}: dep scenario moves {name} {entry['from']} -> {entry['to']}")
        return entry

    # -- engine probes -----------------------------------------------------------------------
    def inspect(self, ref: str, fmt: str) -> str:
        result = engine_run(
            self.engine, ["image", "inspect", "--format", fmt, ref], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise ScriptError(f"cannot inspect {ref}: {result.stderr.strip()}")
        return result.stdout.strip()

    def layers(self, ref: str) -> list[str]:
        return json.loads(self.inspect(ref, "{{json .RootFS.Layers}}"))

    def compressed_sizes(self, ref: str) -> list[int]:
        command, extra_env = common.engine_command(self.engine)
        proc = subprocess.Popen(
            [*command, "save", ref], stdout=subprocess.PIPE, env=dict(os.environ, **extra_env)
        )
        assert proc.stdout is not None
        try:
            sizes = saved_layer_sizes(proc.stdout)
        finally:
            proc.stdout.close()
            proc.wait()
        if proc.returncode != 0:
            raise ScriptError(f"`save {ref}` failed (exit {proc.returncode})")
        return sizes

    def time_to_healthy(self, app: str, variant: str) -> dict | None:
        """Seconds from `run` to the first 200 on the health path, polled every 50 ms."""
        spec = common.app_spec(app)
        if "port" not in spec:
            return None
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            host_port = sock.getsockname()[1]
        name = f"{self.prefix}health-{app}-{variant}-{uuid.uuid4().hex[:8]}"
        path = spec.get("health", "/")
        url = f"http://127.0.0.1:{host_port}{path}"
        command, extra_env = common.engine_command(self.engine)
        run = [
            *command,
            "run",
            "--detach",
            "--name",
            name,
            "--publish",
            f"127.0.0.1:{host_port}:{spec['port']}",
            self.build.image_name(app, variant),
        ]
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        start = time.monotonic()
        proc = subprocess.Popen(
            run,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=dict(os.environ, **extra_env),
        )
        seconds, error, polls = None, "", 0
        try:
            while time.monotonic() - start < HEALTH_TIMEOUT:
                try:
                    with opener.open(url, timeout=1) as response:
                        if response.status == 200:
                            seconds = time.monotonic() - start
                            break
                except (OSError, urllib.error.URLError):
                    pass
                polls += 1
                if proc.poll() not in (None, 0):
                    error = (proc.stderr.read().decode() if proc.stderr else "").strip()
                    break
                if proc.returncode == 0 and polls % 20 == 0 and not self.running(name):
                    error = "the container exited before answering"
                    break
                time.sleep(POLL)
            else:
                error = f"no 200 on {path} within {HEALTH_TIMEOUT:.0f} s"
        finally:
            proc.wait()
            engine_run(self.engine, ["rm", "--force", name], capture_output=True)
        return {
            "app": app,
            "variant": variant,
            "path": path,
            "ok": seconds is not None,
            "seconds": round(seconds, 3) if seconds is not None else None,
            "command": run,
            "error": error[:300],
        }

    def running(self, name: str) -> bool:
        result = engine_run(
            self.engine,
            ["inspect", "--format", "{{.State.Running}}", name],
            capture_output=True,
            text=True,
        )
        return result.stdout.strip() == "true"

    # -- builds ------------------------------------------------------------------------------
    def context(self, app: str) -> Path:
        return self.build.assemble_context(app, self.wheel_hashes, self.args.artifacts, self.epoch)

    def run_build(self, ctx: Path, app: str, variant: str, scenario: str) -> dict:
        """Build with the scenario's change applied to ctx (undone afterwards)."""
        undo: list[tuple[Path, bytes | None]] = []
        if scenario == "code":
            package = common.app_spec(app)["packages"][0]
            source = sorted((ctx / "app" / package).glob("*.py"))[0]
            undo.append((source, source.read_bytes()))
            with source.open("a") as handle:
                handle.write(f"# bench code change {uuid.uuid4().hex}\n")
        elif scenario == "dep":
            change = self.dep_changes[app]
            lock = ctx / "lock.txt"
            undo.append((lock, lock.read_bytes()))
            text = swap_pin(lock.read_text(), change["package"], change["to"], change["sha256"])
            # A fresh comment too: each repeat's change must miss the cache like the first.
            lock.write_text(f"{text}# bench dependency change {uuid.uuid4().hex}\n")
            wheel = ctx / "wheels" / change["wheel"]
            undo.append((wheel, None))
            shutil.copy(self.args.out / "wheels" / change["wheel"], wheel)
        if undo:
            self.build._normalize(ctx, self.epoch)
        extra = ["--no-cache"] if scenario == "cold" else []
        first_command = len(self.commands)
        try:
            wall = self.build.build_image(
                self.engine, app, variant, ctx, self.base_image, self.epoch, extra
            )
        finally:
            for path, content in undo:
                if content is None:
                    path.unlink(missing_ok=True)
                else:
                    path.write_bytes(content)
            if undo:
                self.build._normalize(ctx, self.epoch)
        log = (self.work / "logs" / f"{app}-{variant}.log").read_text()
        self.log_number += 1
        kept = self.out / "logs" / f"{self.log_number:03d}-{app}-{variant}-{scenario}.log"
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_text(log)
        tag = self.build.image_name(app, variant)
        image_id = self.inspect(tag, "{{.Id}}")
        self.image_ids.add(image_id)
        record = {
            "app": app,
            "variant": variant,
            "scenario": scenario,
            "wall_s": round(wall, 3),
            "command": self.commands[first_command],
            "tag": tag,
            "image_id": image_id,
            "log": str(kept.relative_to(self.out)),
            "size_bytes": int(self.inspect(tag, "{{.Size}}")),
            "layers": len(self.layers(tag)),
            **step_cache(log),
            **parse_marks(log),
            "explain": self.explained(app, variant),
        }
        if scenario == "cold" and record["cached_steps"]:
            note(f"warning: {record['cached_steps']} step(s) came from the cache in a cold build")
        return record

    def explained(self, app: str, variant: str) -> list[str]:
        """Why each step of the last build re-ran or was reused (scripts/explain.py)."""
        path = self.build.explain.record_path(self.engine, app, variant, self.work)
        return json.loads(path.read_text())["lines"] if path.is_file() else []

    def measure_image(self, app: str, variant: str) -> None:
        tag = self.build.image_name(app, variant)
        started = time.monotonic()
        layer_sizes = self.compressed_sizes(tag)
        self.results["images"].append(
            {
                "app": app,
                "variant": variant,
                "tag": tag,
                "size_bytes": int(self.inspect(tag, "{{.Size}}")),
                "compressed_bytes": sum(layer_sizes),
                "layer_compressed_bytes": layer_sizes,
                "layers": len(self.layers(tag)),
                "base_layers": self.base_layers,
            }
        )
        note(f"{tag}: {sum(layer_sizes) / 1e6:.0f} MB gzip -6 ({time.monotonic() - started:.1f} s)")

    def run(self) -> dict:
        args = self.args
        jobs = plan(args.apps, args.variants, args.scenarios, args.repeat)
        contexts: dict[str, Path] = {}
        measured: set[tuple[str, str]] = set()
        ready: set[tuple[int, str, str]] = set()  # (repeat, app, variant) with a base build
        for number, job in enumerate(jobs, 1):
            key = (job.repeat, job.app, job.variant)
            if job.app not in contexts:
                contexts[job.app] = self.context(job.app)
            ctx = contexts[job.app]
            if job.scenario != "cold" and key not in ready:
                started = time.monotonic()
                self.run_build(ctx, job.app, job.variant, "prime")
                print(
                    f"[prime] {job.app} {job.variant} #{job.repeat} ... "
                    f"{time.monotonic() - started:.1f} s",
                    flush=True,
                )
                self.after_base_build(job, measured)
                ready.add(key)
            record = self.run_build(ctx, job.app, job.variant, job.scenario)
            record.update(index=number, repeat=job.repeat)
            self.results["builds"].append(record)
            if job.scenario in ("cold", "dep"):
                trim_build_cache(self.engine)
            install = f", install {record['install_s']:.1f} s" if "install_s" in record else ""
            print(
                f"[{number}/{len(jobs)}] {job.app} {job.variant} {job.scenario} #{job.repeat}"
                f" ... {record['wall_s']:.1f} s{install}",
                flush=True,
            )
            if key not in ready:
                self.after_base_build(job, measured)
                ready.add(key)
        return self.results

    def after_base_build(self, job: Job, measured: set[tuple[str, str]]) -> None:
        """On the unchanged image: sizes once per run, time to healthy once per repeat."""
        if (job.app, job.variant) not in measured:
            self.measure_image(job.app, job.variant)
            measured.add((job.app, job.variant))
        health = self.time_to_healthy(job.app, job.variant)
        if health is not None:
            health["repeat"] = job.repeat
            self.results["health"].append(health)
            shown = f"{health['seconds']:.2f} s" if health["ok"] else f"failed: {health['error']}"
            note(f"{job.app} {job.variant} healthy after {shown}")

    def cleanup(self) -> None:
        """Remove the bench tags, then the untagged images they left (never by --force)."""
        listed = engine_run(
            self.engine,
            [
                "images",
                "--format",
                "{{.Repository}}:{{.Tag}}",
                "--filter",
                f"reference={self.prefix}*",
            ],
            capture_output=True,
            text=True,
        )
        tags = sorted(set(listed.stdout.split()))
        if tags:
            step(f"removing {len(tags)} bench image tag(s) (--keep keeps them)")
            engine_run(self.engine, ["rmi", *tags], capture_output=True)
        # Earlier builds of a bench tag are left untagged: remove those, and only those (an
        # image with the same content as a grocery-* image keeps that tag and stays).
        for image_id in sorted(self.image_ids):
            found = engine_run(
                self.engine,
                ["image", "inspect", "--format", "{{len .RepoTags}}", image_id],
                capture_output=True,
                text=True,
            )
            if found.returncode == 0 and found.stdout.strip() == "0":
                engine_run(self.engine, ["rmi", image_id], capture_output=True)
        shutil.rmtree(self.work, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.work.parent.rmdir()  # only when no other run is using it


# ---- machine -------------------------------------------------------------------------------
def machine_info(engine: str) -> dict:
    memory = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        match = re.search(r"^MemTotal:\s+(\d+) kB", meminfo.read_text(), re.M)
        memory = int(match[1]) * 1024 if match else 0
    client, _ = common.engine_command(engine)
    version = engine_run(
        engine, ["version", "--format", "{{.Server.Version}}"], capture_output=True, text=True
    )
    cpu = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M)
        cpu = match[1].strip() if match else ""
    return {
        "cores": os.cpu_count() or 0,
        "cpu": cpu or platform.processor(),
        "memory_bytes": memory,
        "kernel": platform.release(),
        "os": platform.platform(),
        "engine": engine,
        "engine_client": " ".join(client),
        "engine_server_version": version.stdout.strip() or "unknown",
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else [],
    }


def _list(value: str | None) -> list[str]:
    return value.replace(",", " ").split() if value else []


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    base = load_script("base")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", default=os.environ.get("ENGINE", "docker"))
    parser.add_argument("--apps", nargs="+", default=_list(os.environ.get("BENCH_APPS")))
    parser.add_argument("--variants", nargs="+", default=_list(os.environ.get("BENCH_VARIANTS")))
    parser.add_argument("--scenarios", nargs="+", default=_list(os.environ.get("BENCH_SCENARIOS")))
    parser.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_REPEAT") or 0))
    parser.add_argument(
        "--quick",
        action="store_true",
        help="flask, pip+uv, cold+code, repeat 1 (flags given still win)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the bench-* images")
    parser.add_argument(
        "--prefix",
        default=os.environ.get("BENCH_PREFIX") or PREFIX,
        help="image tag prefix of this run (bench-)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench")
    parser.add_argument("--artifacts", type=Path, default=ROOT / "artifacts")
    parser.add_argument("--base", default=os.environ.get("BASE_IMAGE") or base.DEFAULT_BASE)
    parser.add_argument(
        "--local-base", default=os.environ.get("LOCAL_BASE") or base.DEFAULT_LOCAL_BASE
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.apps = args.apps or ["flask"]
        args.variants = args.variants or ["pip", "uv"]
        args.scenarios = args.scenarios or ["cold", "code"]
        args.repeat = args.repeat or 1
    args.apps = args.apps or list(common.load_apps())
    args.variants = args.variants or list(VARIANTS)
    args.scenarios = [ALIASES.get(s, s) for s in args.scenarios or SCENARIOS]
    args.repeat = args.repeat or 3
    for app in args.apps:
        common.app_spec(app)
    for variant in args.variants:
        common.check_variant(variant)
    for scenario in args.scenarios:
        if scenario not in SCENARIOS:
            raise ScriptError(f"unknown scenario {scenario!r}; choose from: {', '.join(SCENARIOS)}")
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*-", args.prefix):
        raise ScriptError(
            f"--prefix {args.prefix!r}: lower-case letters, digits, . _ -, ending in -"
        )
    if args.repeat < 1:
        raise ScriptError("--repeat must be at least 1")
    args.out = args.out.resolve()
    args.artifacts = args.artifacts.resolve()
    return args


def check_models(apps: list[str], artifacts: Path) -> None:
    for app in apps:
        model = common.app_spec(app).get("model")
        if model and not (artifacts / model).is_dir():
            raise ScriptError(
                f"{app} needs a trained model in {artifacts / model}: run `make train` "
                f"(or `make images`) first, or pass --artifacts DIR"
            )


def publish(results: dict, out: Path, latest: Path) -> None:
    bench_report.write_outputs(results, out)
    if latest.is_symlink() or latest.is_file():
        latest.unlink()
    elif latest.exists():
        shutil.rmtree(latest)
    shutil.copytree(out, latest)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if importlib.util.find_spec("matplotlib") is None:
        raise ScriptError(f"matplotlib is missing for {sys.executable}: run with .venv/bin/python")
    check_models(args.apps, args.artifacts)
    common.engine_command(args.engine)  # a clear error when no usable client exists
    load_script("engine").ensure(args.engine)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out / stamp
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    bench = Bench(args, out)
    total = len(plan(args.apps, args.variants, args.scenarios, args.repeat))
    step(
        f"benchmarking {total} builds: apps {' '.join(args.apps)}; variants "
        f"{' '.join(args.variants)}; scenarios {' '.join(args.scenarios)}; repeat {args.repeat}"
    )
    try:
        bench.prepare()
        results = bench.results
        results.update(
            started=datetime.now(UTC).isoformat(timespec="seconds"),
            machine=machine_info(args.engine),
            config={
                "apps": args.apps,
                "variants": args.variants,
                "scenarios": args.scenarios,
                "repeat": args.repeat,
                "quick": args.quick,
                "base_image": bench.base_image,
                "base_layers": bench.base_layers,
                "epoch": bench.epoch,
                "git_revision": bench.revision,
                "image_prefix": args.prefix,
                "wheelhouse": str(ROOT / "build" / "wheelhouse"),
                "fairness": "same base, same wheelhouse, same engine command; pip --no-compile "
                "and uv (no compile) both followed by the same `python3 -m compileall "
                "--invalidation-mode unchecked-hash`; no pip/uv cache in any build",
            },
            dep_change=bench.dep_changes,
        )
        bench.run()
    except BaseException as exc:
        bench.results["error"] = f"{type(exc).__name__}: {exc}"
        (out / "results.json").write_text(json.dumps(bench.results, indent=1) + "\n")
        note(f"partial results: {out / 'results.json'}")
        raise
    finally:
        if not args.keep:
            bench.cleanup()
    results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["duration_s"] = round(time.monotonic() - started, 1)
    publish(results, out, args.out / "latest")
    step(f"done in {results['duration_s']:.0f} s: {out / 'report.md'} (and {args.out / 'latest'})")
    for goal in bench_report.evaluate_goals(results):
        note(f"{goal['status']:<12} {goal['goal']}: {goal['detail']}")
    return 0


if __name__ == "__main__":
    main_wrapper(main)
