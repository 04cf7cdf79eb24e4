"""Incremental builds match their inputs: every kind of input edited in place reaches the image.

For each engine and each variant, `make image APP=flask VARIANT=...` runs in a private copy of
the repository (under build/, so wheels are hard links) as a user runs it, with the layer
cache on. Then, one round at a time, inputs are edited in place and the image rebuilt:

1. app layer: a same-size source edit, one byte of the model, an apps.toml value (same size),
   the health probe (same size); each must be in the image;
2. dependency step, helpers: a same-size edit of a helper the step mounts, and a new prune
   glob; the step must run again (multistage: the pruned folder is gone);
3. dependency step, lock: one pin removed; the image must not have that distribution.

On one engine and variant a locked wheel is also altered in place (same size): the build must
say so and fetch it again. At the end every edit is undone and the image must be the original
again: the same image ID with Podman (bit-identical), the same layers with Docker.

Flask is the app: it has a model, a prune list, env in apps.toml, and small dependencies.
Images are tagged `mut<hex>-flask:<variant>` and removed afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from containers_support import CFG, ROOT, VENV_PYTHON, copy_repository, read_lock, remove_prefixed

from imagetools import images
from imagetools.config import VARIANTS
from imagetools.engines import engine_for

pytestmark = pytest.mark.container

APP = "flask"
ENGINES = ("docker", "podman")
SOURCE = "src/flask_api/views.py"
PROBE = "dockerfiles/runtime/healthcheck.py"
HELPER = "dockerfiles/buildtime/scrub_venv.py"
MODEL = "artifacts/tabular/model.skops"
ENV_BEFORE = 'env = { MODEL_DIR = "/app/model", MAX_CONTENT_LENGTH'
MODEL_DIR = f"/app/{uuid.uuid4().hex[:5]}"  # as long as /app/model
ENV_AFTER = f'env = {{ MODEL_DIR = "{MODEL_DIR}", MAX_CONTENT_LENGTH'  # same size
PRUNED = "sklearn/datasets/descr"
DROPPED_PIN = "threadpoolctl"
ALTERED_WHEEL = "itsdangerous-2.2.0-py3-none-any.whl"
DEPS_STEPS = ("setup", "deps-torch", "deps-numeric", "deps-rest")  # apps.toml [[layer]]
# One file under each mounted source, for the names of images.step_inputs's keys.
CONTEXT = {"tools/tools.txt": "1", "buildtime/prune_rootfs.py": "2", "deps/1/lock.txt": "3",
           "deps/2/lock.txt": "4", "deps/3/lock.txt": "5"}  # fmt: skip
SITE = "/opt/venv/lib/python3.11/site-packages"

# Runs in the image: sha256 of the named files, launch.json, distributions, a pruned folder.
IMAGE_PROBE = """
import hashlib, importlib.metadata as md, json, os, sys
files = {}
for path in sys.argv[1:]:
    with open(path, "rb") as handle:
        files[path] = hashlib.sha256(handle.read()).hexdigest()
print(json.dumps({
    "files": files,
    "launch": json.load(open("/app/launch.json")),
    "dists": sorted(d.metadata["Name"].lower() for d in md.distributions()),
    "pruned_present": os.path.isdir(PRUNED),
}))
""".replace("PRUNED", repr(f"{SITE}/{PRUNED}"))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def scramble_docstring(path: Path) -> None:
    """Replace 8 letters of the module's docstring with random ones, in place: same size,
    bytes no earlier run made (so no engine can hold them in its cache)."""
    data = bytearray(path.read_bytes())
    start = data.index(b'"""') + 3
    letters = [i for i in range(start, data.index(b'"""', start)) if chr(data[i]).isalpha()]
    for index, char in zip(letters[:8], uuid.uuid4().hex, strict=False):
        data[index] = ord("g") + int(char, 16)  # g..v: letters
    with path.open("r+b") as handle:  # in place: same inode, same size
        handle.write(bytes(data))


def scramble_bytes(path: Path) -> None:
    """Overwrite 16 bytes in the middle of the file with random ones, in place."""
    with path.open("r+b") as handle:
        handle.seek(path.stat().st_size // 2)
        handle.write(uuid.uuid4().bytes)


@dataclass
class Copy:
    """A private copy of the repository and the edits made to it (to undo)."""

    root: Path
    engine: str
    variant: str
    prefix: str
    saved: dict[Path, bytes] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        return f"{self.prefix}{APP}:{self.variant}"

    def path(self, rel: str) -> Path:
        return self.root / rel

    def edit(self, rel: str, change) -> None:
        path = self.path(rel)
        self.saved.setdefault(path, path.read_bytes())
        change(path)

    def undo(self) -> None:
        for path, data in self.saved.items():
            with path.open("r+b") as handle:
                handle.truncate(0)
                handle.write(data)
        self.saved.clear()

    def make_image(self) -> subprocess.CompletedProcess:
        env = dict(os.environ, IMAGE_PREFIX=self.prefix,
                   SOURCE_DATE_EPOCH=str(CFG.source_date_epoch))  # fmt: skip
        return subprocess.run(
            ["make", "-C", str(self.root), "image", f"APP={APP}", f"VARIANT={self.variant}",
             f"ENGINE={self.engine}"],
            env=env, capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip

    def build(self) -> str:
        result = self.make_image()
        assert result.returncode == 0, f"make image failed:\n{result.stdout[-3000:]}{result.stderr}"
        return result.stdout

    def build_with_tool(self) -> None:
        """The image's build command itself, as Make's recipe runs it (no Make in between)."""
        result = subprocess.run(
            [sys.executable, "-m", "imagetools", "image", APP, self.variant],
            cwd=self.root, capture_output=True, text=True, timeout=900, check=False,
            env=dict(os.environ, IMAGE_PREFIX=self.prefix, ENGINE=self.engine,
                     PYTHONPATH=str(self.root / "scripts")),
        )  # fmt: skip
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr

    def explain(self) -> dict[str, str]:
        """{step: its line} from `make explain` (the record of the last build)."""
        result = subprocess.run(
            ["make", "-s", "-C", str(self.root), "explain", f"APP={APP}",
             f"VARIANT={self.variant}", f"ENGINE={self.engine}"],
            env=dict(os.environ, IMAGE_PREFIX=self.prefix),
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        lines = [ln for ln in result.stdout.splitlines() if ln.startswith(f"{APP}:")]
        return {ln.split(" ", 2)[1].rstrip(":"): ln.split(" ", 2)[2] for ln in lines}

    def build_log(self) -> str:
        log = f"build/logs/{self.engine}/{self.prefix}{APP}-{self.variant}.log"
        return self.path(log).read_text()

    def run_engine(self, args: list[str]) -> str:
        result = engine_for(CFG.replace(engine=self.engine)).run(
            args, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def image_id(self) -> str:
        return self.run_engine(["image", "inspect", "--format", "{{.Id}}", self.tag]).strip()

    def layers(self) -> list[str]:
        return json.loads(
            self.run_engine(["image", "inspect", "--format", "{{json .RootFS.Layers}}", self.tag])
        )

    def probe(self, *paths: str) -> dict:
        out = self.run_engine(["run", "--rm", "--network=none", "--entrypoint", VENV_PYTHON,
                           self.tag, "-c", IMAGE_PROBE, *paths])  # fmt: skip
        return json.loads(out.strip().splitlines()[-1])


def make_copy(engine: str, variant: str) -> Copy:
    return Copy(copy_repository("mutation"), engine, variant, f"mut{uuid.uuid4().hex[:6]}-")


# `make test` edits two images (Docker's pip image, which also gets an altered wheel, and
# Podman's multistage image); `make test-incremental` edits every engine x variant.
CASES = ([(e, v) for e in ENGINES for v in VARIANTS]
         if os.environ.get("INCREMENTAL_MATRIX") == "all"
         else [("docker", "pip"), ("podman", "multistage")])  # fmt: skip


@pytest.fixture(params=CASES, ids=[f"{e}-{v}" for e, v in CASES])
def copy(request: pytest.FixtureRequest) -> Iterator[Copy]:
    engine, variant = request.param
    assert (ROOT / "artifacts" / "tabular").is_dir(), "run `make images` first (it trains)"
    work = make_copy(engine, variant)
    try:
        yield work
    finally:
        remove_prefixed(work.prefix, engine)
        shutil.rmtree(work.root, ignore_errors=True)


def test_every_input_edited_in_place_reaches_the_image(copy: Copy) -> None:
    copy.build()
    original_id, original_layers = copy.image_id(), copy.layers()
    assert ">> building" not in copy.build()  # Make: no input is newer than the image
    copy.build_with_tool()  # the engine's no-op: every step cached, nothing unexplained
    assert set(copy.explain().values()) == {"cached"}
    before = copy.probe(f"/app/{SOURCE.removeprefix('src/')}", "/app/healthcheck.py")

    # 1. app layer: source, model, apps.toml value, health probe; all same size, in place.
    copy.edit(SOURCE, scramble_docstring)
    copy.edit(MODEL, scramble_bytes)
    copy.edit("dockerfiles/apps.toml",
              lambda p: p.write_text(p.read_text().replace(ENV_BEFORE, ENV_AFTER)))  # fmt: skip
    copy.edit(PROBE, scramble_docstring)
    altered = copy.engine == "docker" and copy.variant == "pip"
    if altered:  # a locked wheel changed in place: its hard link broken first (a copy)
        wheel = copy.path(f"build/wheelhouse/{ALTERED_WHEEL}")
        locked = sha(wheel.read_bytes())
        shutil.copy2(wheel, wheel.with_suffix(".tmp"))
        wheel.with_suffix(".tmp").replace(wheel)
        scramble_bytes(wheel)
    output = copy.build()
    after = copy.probe(f"/app/{SOURCE.removeprefix('src/')}", "/app/healthcheck.py",
                       "/app/model/model.skops")  # fmt: skip
    files = after["files"]
    assert files[f"/app/{SOURCE.removeprefix('src/')}"] == sha(copy.path(SOURCE).read_bytes())
    assert files["/app/healthcheck.py"] == sha(copy.path(PROBE).read_bytes())
    assert files["/app/model/model.skops"] == sha(copy.path(MODEL).read_bytes())
    assert files != before["files"]
    assert after["launch"]["env"]["MODEL_DIR"] == MODEL_DIR
    explained = copy.explain()
    assert {explained[step] for step in DEPS_STEPS} == {"cached"}, explained
    assert explained["app"].startswith("re-ran, "), explained
    for name in (SOURCE, MODEL, PROBE, f"dockerfiles/apps.toml [{APP}] command/env/port/health"):
        assert f"{name} changed" in explained["app"], (name, explained["app"])
    if altered:
        assert f"{ALTERED_WHEEL} does not match its locked sha256" in output
        assert sha(copy.path(f"build/wheelhouse/{ALTERED_WHEEL}").read_bytes()) == locked

    # 2. dependency steps: a mounted helper (same size) and a new prune glob.
    copy.edit(HELPER, scramble_docstring)
    copy.edit("dockerfiles/apps.toml", lambda p: p.write_text(p.read_text().replace(
        'prune = ["scipy/**/tests"', f'prune = ["{PRUNED}", "scipy/**/tests"')))  # fmt: skip
    copy.build()
    assert "layer.py: installed @" in copy.build_log(), "the dependency step came from the cache"
    explained = copy.explain()
    for step in ("deps-numeric", "deps-rest"):  # every layer mounts both
        assert explained[step].startswith("re-ran, "), explained
        assert f"dockerfiles/apps.toml [{APP}].prune changed" in explained[step]
        assert f"{HELPER} changed" in explained[step]
    assert "a step before it changed" in explained["app"], explained
    assert copy.probe()["pruned_present"] == (copy.variant != "multistage")

    # 3. dependency step: one pin removed from the lock.
    def drop_pin(path: Path) -> None:
        lines = path.read_text().splitlines(keepends=True)
        start = next(i for i, ln in enumerate(lines) if ln.startswith(f"{DROPPED_PIN}=="))
        end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith(" "))
        path.write_text("".join(lines[:start] + lines[end:]))

    copy.edit(f"requirements/{APP}.txt", drop_pin)
    copy.build()
    dists = copy.probe()["dists"]
    assert DROPPED_PIN not in dists and "scikit-learn" in dists
    version = next(p.version for p in read_lock(ROOT / "requirements" / f"{APP}.txt")
                   if p.name == DROPPED_PIN)  # fmt: skip
    explained = copy.explain()  # threadpoolctl is in `numeric`; `rest` follows it
    assert explained["setup"] == explained["deps-torch"] == "cached", explained
    assert explained["deps-numeric"].startswith("re-ran, ")
    assert f"requirements/{APP}.txt: -{DROPPED_PIN} {version}" in explained["deps-numeric"]
    assert explained["deps-rest"] == "re-ran, a step before it changed", explained

    # Every edit undone: the original image again.
    copy.undo()
    copy.build()
    assert copy.probe()["launch"]["env"]["MODEL_DIR"] == "/app/model"
    explained = copy.explain()
    assert all(line.startswith("cached") for line in explained.values()), explained
    earlier = "cached, a layer built earlier from these same inputs"
    assert explained["deps-numeric"].startswith(earlier), explained
    if copy.engine == "podman":
        assert copy.image_id() == original_id, "not bit-identical to the first build"
    else:
        assert copy.layers() == original_layers, "not the same layers as the first build"


@pytest.mark.parametrize("engine", ENGINES)
def test_an_image_that_misses_its_inputs_is_refused_and_not_tagged(engine: str) -> None:
    """The check after each build: give two apps the same dependency key (the old Podman
    fault) and the second one's image is refused, with one line naming it."""
    work = make_copy(engine, "uv")
    try:
        same = " ".join(f"--build-arg={key}=same" for key in images.step_inputs(CONTEXT))
        env = dict(os.environ, IMAGE_PREFIX=work.prefix, BUILD_FLAGS=same)
        for app in ("flask", "frontend"):
            result = subprocess.run(
                ["make", "-C", str(work.root), "image", f"APP={app}", "VARIANT=uv",
                 f"ENGINE={engine}"], env=env, capture_output=True, text=True, timeout=900,
            )  # fmt: skip
        if engine == "docker":  # BuildKit keys the step on mounted content: built right
            assert result.returncode == 0, result.stderr
            return
        assert result.returncode != 0
        last = result.stderr.strip().splitlines()[-2]  # the last line is make's own
        assert last.startswith(f"imagetools: error: refusing to tag {work.prefix}frontend:uv"), last
        assert "distributions differ from frontend's lock" in last
        assert not engine_for(CFG.replace(engine=engine)).exists(f"{work.prefix}frontend:uv")
    finally:
        remove_prefixed(work.prefix, engine)
        shutil.rmtree(work.root, ignore_errors=True)
