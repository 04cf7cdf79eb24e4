"""imagetools.images on a fake repository: each image's build context holds exactly what the
image needs, and a build is checked against its inputs before it is tagged (fake engines)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from imagetools import common, explain, images
from imagetools import wheelhouse as wheels
from imagetools.apps import load_apps
from imagetools.common import ROOT, ScriptError
from imagetools.config import VARIANTS, Config
from imagetools.engines import Docker, Podman
from imagetools.lockfile import read_lock

EPOCH = 1_000_000_000
BASE_CREATED = 1_500_000_000  # when the fake engines' base image was made
APPS = load_apps()
WHEEL_FILES = {  # name -> bytes; the lock of each app below pins a subset
    "alpha-1.0-py3-none-any.whl": b"alpha wheel",
    "numpy-2.0-cp311-cp311-manylinux_2_17_x86_64.whl": b"numpy wheel",
    "uv-0.9.0-py3-none-manylinux_2_17_x86_64.whl": b"uv wheel",
    "pip-9.0-py3-none-any.whl": b"pip wheel",
    "unlocked-3.0-py3-none-any.whl": b"nobody pins this",
}
LOCKED = {
    "backend": {"alpha": "alpha-1.0-py3-none-any.whl",
                "numpy": "numpy-2.0-cp311-cp311-manylinux_2_17_x86_64.whl"},
    "frontend": {"alpha": "alpha-1.0-py3-none-any.whl"},
    "tools": {"pip": "pip-9.0-py3-none-any.whl",
              "uv": "uv-0.9.0-py3-none-manylinux_2_17_x86_64.whl"},
}  # fmt: skip
# Where apps.toml's [[layer]] puts them: numpy in `numeric` (deps/2), alpha in `rest` (deps/3).
LAYER_OF = {"numpy": 2, "alpha": 3}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def lock_text(pins: dict[str, str]) -> str:
    out = ["# input-sha256: " + "0" * 64]
    for name, filename in pins.items():
        version = filename.split("-")[1]
        other_platform = sha(filename.encode())  # a hash no file in the wheelhouse has
        out += [f"{name}=={version} \\", f"    --hash=sha256:{other_platform} \\",
                f"    --hash=sha256:{sha(WHEEL_FILES[filename])}", "    # via -r x.in"]  # fmt: skip
    return "\n".join(out) + "\n"


@pytest.fixture
def fake_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """requirements/, src/, dockerfiles/context.dockerignore and a wheelhouse under tmp (the
    runtime and build-time helpers, apps.toml and the Dockerfiles stay the repository's)."""
    repo = tmp_path / "repo"
    (repo / "requirements").mkdir(parents=True)
    for name, pins in LOCKED.items():
        (repo / "requirements" / f"{name}.txt").write_text(lock_text(pins))
    for package in {p for app in ("backend", "frontend") for p in APPS[app]["packages"]}:
        pkg = repo / "src" / package
        (pkg / "sub" / "__pycache__").mkdir(parents=True)
        (pkg / "tests").mkdir()
        (pkg / "__init__.py").write_text(f'"""{package}"""\n')
        (pkg / "sub" / "mod.py").write_text("X = 1\n")
        (pkg / "sub" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0")
        (pkg / "stray.pyc").write_bytes(b"\0")
        (pkg / "tests" / "test_x.py").write_text("")
        (pkg / ".env").write_text("SECRET=1\n")
        (pkg / "run.sh").write_text("#!/bin/sh\n")
        (pkg / "run.sh").chmod(0o700)
    (repo / "dockerfiles").mkdir()
    shutil.copy(ROOT / "dockerfiles" / "context.dockerignore", repo / "dockerfiles")
    wheelhouse = repo / "build" / "wheelhouse"
    wheelhouse.mkdir(parents=True)
    for name, data in WHEEL_FILES.items():
        (wheelhouse / name).write_bytes(data)
    monkeypatch.setattr(images, "ROOT", repo)
    return repo


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    out = tmp_path / "artifacts"
    (out / "image" / "samples" / "apple").mkdir(parents=True)
    (out / "image" / "model.safetensors").write_bytes(b"weights")
    (out / "image" / "metadata.json").write_text('{"classes": ["apple"]}')
    (out / "image" / "samples" / "apple" / "0.png").write_bytes(b"png")
    return out


def config(repo: Path, artifacts: Path, **changes) -> Config:
    return Config(build_dir=repo / "build", artifacts=artifacts, source_date_epoch=EPOCH,
                  revision="0123abc", **changes)  # fmt: skip


def assemble(repo: Path, app: str, artifacts: Path, variant: str = "uv", **changes) -> Path:
    cfg = config(repo, artifacts, **changes)
    return images.assemble_context(cfg, app, variant, wheels.file_hashes(cfg.wheelhouse))


def files_under(path: Path) -> set[str]:
    return {p.relative_to(path).as_posix() for p in path.rglob("*") if not p.is_dir()}


def test_context_holds_the_locks_and_exactly_the_locked_wheels(
    fake_repo: Path, artifacts: Path
) -> None:
    ctx = assemble(fake_repo, "backend", artifacts)
    assert ctx == fake_repo / "build" / "context" / "docker" / "grocery-backend-uv"
    assert sorted(p.name for p in ctx.iterdir()) == [
        ".dockerignore", "app", "buildtime", "deps", "lock.txt", "prune.txt", "tools",
    ]  # fmt: skip
    assert sorted(p.name for p in (ctx / "buildtime").iterdir()) == sorted(
        p.name for p in (ROOT / "dockerfiles" / "buildtime").glob("*.py"))  # fmt: skip
    assert (ctx / "prune.txt").read_text().splitlines() == APPS["backend"].get("prune", [])
    # One folder per dependency layer: its part of the lock and exactly its wheels.
    assert sorted(p.name for p in (ctx / "deps").iterdir()) == ["1", "2", "3"]
    for number in (1, 2, 3):
        names = [n for n, layer in LAYER_OF.items() if layer == number]
        part = ctx / "deps" / str(number)
        assert [p.name for p in read_lock(part / "lock.txt")] == names
        assert {p.name for p in part.glob("*.whl")} == {LOCKED["backend"][n] for n in names}
    assert {p.name for p in (ctx / "tools").iterdir()} == {
        "tools.txt", "pip.whl", LOCKED["tools"]["uv"]}  # fmt: skip
    linked = [(ctx / "deps" / str(LAYER_OF[n]) / w, w) for n, w in LOCKED["backend"].items()]
    linked += [(ctx / "tools" / "pip.whl", LOCKED["tools"]["pip"])]
    for path, name in linked:  # hard links into the wheelhouse, not copies
        assert path.stat().st_ino == (fake_repo / "build" / "wheelhouse" / name).stat().st_ino
        assert path.stat().st_nlink >= 2


def test_the_locks_are_copied_without_their_input_digest(fake_repo: Path, artifacts: Path) -> None:
    """The `# input-sha256:` line covers dev.txt too: a change to the test venv's lock must
    not change any image's inputs. Every other byte is the lock's; its parts hold its pins."""
    ctx = assemble(fake_repo, "backend", artifacts)
    req = fake_repo / "requirements"
    for copied, lock in (("lock.txt", "backend.txt"), ("tools/tools.txt", "tools.txt")):
        original = (req / lock).read_text().splitlines(keepends=True)
        assert original[0].startswith("# input-sha256: ")
        assert (ctx / copied).read_text() == "".join(original[1:])
        assert read_lock(ctx / copied) == read_lock(req / lock)
    parts = [pin for n in (1, 2, 3) for pin in read_lock(ctx / "deps" / str(n) / "lock.txt")]
    assert sorted(parts, key=str) == sorted(read_lock(req / "backend.txt"), key=str)
    before = (ctx / "lock.txt").read_bytes()
    (req / "backend.txt").write_text("# input-sha256: " + "9" * 64 + "\n" + "".join(
        (req / "backend.txt").read_text().splitlines(keepends=True)[1:]))  # fmt: skip
    assert (assemble(fake_repo, "backend", artifacts) / "lock.txt").read_bytes() == before


def test_each_engine_prefix_and_variant_has_its_own_context(
    fake_repo: Path, artifacts: Path
) -> None:
    """Builds with the other engine, prefix or variant (make -j) never share a folder."""
    contexts = {assemble(fake_repo, "frontend", artifacts, variant, engine=engine,
                         image_prefix=prefix)
                for engine in ("docker", "podman") for prefix in ("grocery-", "ci-")
                for variant in ("pip", "uv")}  # fmt: skip
    assert len(contexts) == 8
    assert fake_repo / "build/context/podman/ci-frontend-pip" in contexts


def test_app_dir_has_the_packages_launcher_and_launch_json(
    fake_repo: Path, artifacts: Path
) -> None:
    ctx = assemble(fake_repo, "backend", artifacts)
    app = ctx / "app"
    expected = {"launch.py", "healthcheck.py", "launch.json"}
    for package in APPS["backend"]["packages"]:
        expected |= {f"{package}/__init__.py", f"{package}/sub/mod.py", f"{package}/run.sh"}
    expected |= {f"model/{f}" for f in files_under(artifacts / "image")}
    assert files_under(app) == expected
    launch = json.loads((app / "launch.json").read_text())
    spec = APPS["backend"]
    assert launch == {k: spec[k] for k in ("command", "env", "port", "health")}
    runtime, buildtime = ROOT / "dockerfiles" / "runtime", ROOT / "dockerfiles" / "buildtime"
    for name in ("launch.py", "healthcheck.py"):  # shipped in the image
        assert (app / name).read_bytes() == (runtime / name).read_bytes()
    for name in ("layer.py", "prune_rootfs.py", "prune_venv.py", "scrub_venv.py"):  # build only
        assert (ctx / "buildtime" / name).read_bytes() == (buildtime / name).read_bytes()
        assert not (app / name).exists()
    assert (app / "model" / "model.safetensors").read_bytes() == b"weights"


def test_a_service_without_model_gets_no_model_dir(fake_repo: Path, tmp_path: Path) -> None:
    ctx = assemble(fake_repo, "frontend", tmp_path / "no-artifacts")
    assert not (ctx / "app" / "model").exists()
    assert {p.name for p in (ctx / "deps").rglob("*.whl")} == {*LOCKED["frontend"].values()}
    launch = json.loads((ctx / "app" / "launch.json").read_text())
    assert launch["port"] == APPS["frontend"]["port"] and "model" not in launch
    assert (ctx / "prune.txt").read_text().splitlines() == APPS["frontend"].get("prune", [])


def test_no_caches_tests_or_hidden_files(fake_repo: Path, artifacts: Path) -> None:
    ctx = assemble(fake_repo, "backend", artifacts)
    for path in ctx.rglob("*"):
        rel = path.relative_to(ctx).as_posix()
        assert "__pycache__" not in path.parts and "tests" not in path.parts, rel
        assert path.suffix != ".pyc", rel
        assert not path.name.startswith(".") or rel == ".dockerignore", rel


def test_every_mtime_is_the_epoch_and_modes_are_fixed(fake_repo: Path, artifacts: Path) -> None:
    """Whole seconds: SOURCE_DATE_EPOCH (wheels: a fixed time); nanoseconds: the content's."""
    ctx = assemble(fake_repo, "backend", artifacts)
    for path in [ctx, *ctx.rglob("*")]:
        info = path.lstat()
        expected = 0o755 if stat.S_ISDIR(info.st_mode) else 0o644
        assert stat.S_IMODE(info.st_mode) == expected, f"{path}: {oct(info.st_mode)}"
        if path.is_dir():
            assert info.st_mtime_ns == EPOCH * 10**9, path
            continue
        seconds = wheels.WHEEL_MTIME if path.suffix == ".whl" else EPOCH
        digest = sha(path.read_bytes())
        assert info.st_mtime_ns == common.content_mtime_ns(seconds, digest), path


def test_a_same_size_edit_changes_the_mtime_that_buildkit_compares(
    fake_repo: Path, artifacts: Path
) -> None:
    """BuildKit resends a context file only if its size, mode or mtime changed."""
    ctx = assemble(fake_repo, "backend", artifacts)
    model = ctx / "app" / "model" / "model.safetensors"
    before = model.stat()
    artifacts.joinpath("image", "model.safetensors").write_bytes(b"weightz")  # same size
    assemble(fake_repo, "backend", artifacts)
    after = model.stat()
    assert after.st_size == before.st_size
    assert after.st_mtime_ns != before.st_mtime_ns


def test_step_inputs_cover_every_file_outside_app(fake_repo: Path, artifacts: Path) -> None:
    """Each layer's key changes with a byte of its lock part or wheels, of the tools or of
    a helper, never with app/ files or the whole lock (neither is mounted)."""
    ctx = assemble(fake_repo, "backend", artifacts)
    (ctx / "buildtime" / "prune_rootfs.py").write_text("# stand-in\n")
    first = images.step_inputs(images._normalize(ctx, EPOCH))
    assert first["ROOTFS_SHA256"] == sha(b"# stand-in\n")
    (ctx / "app" / "backend" / "__init__.py").write_text('"""edited"""\n')
    (ctx / "lock.txt").write_text((ctx / "lock.txt").read_text() + "# edited\n")
    same = images.step_inputs(images._normalize(ctx, EPOCH))
    assert same == first, "app/ (copied) or the whole lock (not mounted) changed a key"
    every_layer = {"DEPS1_SHA256", "DEPS2_SHA256", "DEPS3_SHA256"}
    cases = {"prune.txt": every_layer, "buildtime/scrub_venv.py": set(first) - {"ROOTFS_SHA256"},
             "tools/tools.txt": set(first) - {"ROOTFS_SHA256"},
             "deps/3/lock.txt": {"DEPS3_SHA256"},
             f"deps/2/{LOCKED['backend']['numpy']}": {"DEPS2_SHA256"}}  # fmt: skip
    for name, keys in cases.items():
        path = ctx / name
        original = path.read_bytes()
        os.unlink(path)  # wheels are hard links into the wheelhouse: leave that one alone
        path.write_bytes(original[:-1] + b"#")  # same size
        changed = images.step_inputs(images._normalize(ctx, EPOCH))
        assert {k for k in first if changed[k] != first[k]} == keys, name
        path.write_bytes(original)


def test_reassembly_starts_from_an_empty_context(fake_repo: Path, artifacts: Path) -> None:
    ctx = assemble(fake_repo, "backend", artifacts)
    layer = ctx / "deps" / "3"
    (ctx / "app" / "leftover.py").write_text("")
    os.unlink(layer / LOCKED["backend"]["alpha"])
    (layer / "stale-1.0-py3-none-any.whl").write_bytes(b"not locked any more")
    (ctx / "deps" / "7").mkdir()
    again = assemble(fake_repo, "backend", artifacts)
    assert not (again / "app" / "leftover.py").exists()
    assert (layer / LOCKED["backend"]["alpha"]).is_file()
    assert not (layer / "stale-1.0-py3-none-any.whl").exists()
    assert not (ctx / "deps" / "7").exists()


def test_a_copy_in_place_of_a_wheel_link_is_replaced_by_the_link(
    fake_repo: Path, artifacts: Path
) -> None:
    ctx = assemble(fake_repo, "backend", artifacts)
    wheel = ctx / "deps" / "3" / LOCKED["backend"]["alpha"]
    data = wheel.read_bytes()
    wheel.unlink()
    wheel.write_bytes(data)  # same bytes, another inode
    assemble(fake_repo, "backend", artifacts)
    assert wheel.samefile(fake_repo / "build" / "wheelhouse" / wheel.name)


def test_a_bumped_pin_moves_only_its_layer(fake_repo: Path, artifacts: Path) -> None:
    """write_layers after a lock change (the bench's bump): the other layers stay as they
    were, links and keys alike."""
    ctx = assemble(fake_repo, "backend", artifacts)
    first = images.step_inputs(images._normalize(ctx, EPOCH))
    newer = fake_repo / "alpha-1.1-py3-none-any.whl"
    newer.write_bytes(b"alpha 1.1")
    lock = ctx / "lock.txt"
    lock.write_text(lock.read_text().replace("alpha==1.0", "alpha==1.1").replace(
        sha(WHEEL_FILES[LOCKED["backend"]["alpha"]]), sha(b"alpha 1.1")))  # fmt: skip
    by_hash = {sha(data): fake_repo / "build" / "wheelhouse" / name
               for name, data in WHEEL_FILES.items()} | {sha(b"alpha 1.1"): newer}  # fmt: skip
    images.write_layers(ctx, by_hash)
    assert {p.name for p in (ctx / "deps" / "3").glob("*.whl")} == {newer.name}
    changed = images.step_inputs(images._normalize(ctx, EPOCH))
    assert {k for k in first if changed[k] != first[k]} == {"DEPS3_SHA256"}


@pytest.mark.parametrize("where", ["model", "package"])
def test_a_symlink_in_a_copied_tree_is_refused(fake_repo: Path, artifacts: Path, tmp_path: Path,
                                               where: str) -> None:  # fmt: skip
    secret = tmp_path / "secret.key"
    secret.write_text("not for the image")
    folder = artifacts / "image" / "samples" / "apple" if where == "model" else (
        fake_repo / "src" / "backend")  # fmt: skip
    if where == "package":  # an editor's lock-file link is ignored like other hidden files
        (folder / ".#editor-lock").symlink_to("nowhere")
        assert assemble(fake_repo, "backend", artifacts).is_dir()
    (folder / "link.png").symlink_to(secret)
    with pytest.raises(ScriptError, match=r"link\.png is a symlink: the build copies regular"):
        assemble(fake_repo, "backend", artifacts)


def test_missing_model_says_make_train(fake_repo: Path, tmp_path: Path) -> None:
    with pytest.raises(ScriptError, match=r"make train"):
        assemble(fake_repo, "backend", tmp_path / "no-artifacts")


def test_a_locked_wheel_missing_from_the_wheelhouse_is_an_error(
    fake_repo: Path, artifacts: Path
) -> None:
    (fake_repo / "build" / "wheelhouse" / LOCKED["backend"]["numpy"]).unlink()
    with pytest.raises(ScriptError, match=r"numpy==2\.0 is not in the wheelhouse"):
        assemble(fake_repo, "backend", artifacts)


def test_unknown_app_is_a_clear_error(fake_repo: Path, artifacts: Path) -> None:
    with pytest.raises(ScriptError, match=r"unknown app 'nope'; choose from: backend"):
        images.assemble_context(config(fake_repo, artifacts), "nope", "uv", {})


# ---- building, checking and tagging, with a fake engine ---------------------------------------
BUILDKIT_LOG = """\
#5 [job 2/3] RUN --mount=type=bind,source=deps/3,target=/tmp/build/deps echo "dependency layer 3 inputs"
#5 CACHED

#6 [job 3/3] COPY app/ /app/
#6 DONE 0.1s
"""  # noqa: E501
IMAGE = "sha256:" + "f" * 64

# The shape of `make explain EXPLAIN_ARGS=--json` (what CI and the bench read).
SCHEMA = {"image": str, "engine": str, "image_id": str, "decisions": dict, "extra_args": list,
          "steps": dict, "pins": dict, "lines": list, "warnings": list}  # fmt: skip


def probe_answer(ctx: Path) -> str:
    """What images.PROBE prints in an image built right from ctx."""
    dists = sorted(f"{pin.name}=={pin.version}" for pin in read_lock(ctx / "lock.txt"))
    app = {p.relative_to(ctx / "app").as_posix(): sha(p.read_bytes())
           for p in (ctx / "app").rglob("*") if p.is_file()}  # fmt: skip
    return json.dumps({"dists": dists, "app": app}) + "\n"


def fake(base: type):
    """An engine of kind `base` that runs nothing: it records each command line (as the
    client would get it) and answers as the test says: the build log, the layers' history,
    the image's contents (by default: exactly its context's)."""

    class Fake(base):
        def __init__(self, cfg: Config, log: str = BUILDKIT_LOG, history: str = "") -> None:
            super().__init__(cfg)
            self.log, self.history = log, history
            self.calls: list[list[str]] = []
            self.removed: list[str] = []
            self.contents: str | None = None

        def client(self) -> tuple[list[str], dict[str, str]]:
            return [self.name], {}

        def run(self, args: list[str], **kwargs) -> subprocess.CompletedProcess:
            self.calls.append(self.argv(args)[1:])
            out = ""
            if args[0] == "build":
                kwargs["stdout"].write(self.log)
                Path(args[args.index("--iidfile") + 1]).write_text(IMAGE)
                self.ctx = Path(args[-1])
            elif args[0] == "history":
                out = self.history
            elif args[:2] == ["image", "inspect"] and "Created.Unix" in args[3]:
                out = str(BASE_CREATED)
            elif args[:2] == ["image", "inspect"]:
                out = "[]" if "RepoTags" in args[3] else "sha256:" + "b" * 64
            elif args[0] == "run":
                out = self.contents if self.contents is not None else probe_answer(self.ctx)
            elif args[0] == "rmi":
                self.removed += args[2:]
            elif args[0] == "push":
                out = f"uv: digest: sha256:{'c' * 64} size: 1234"
            return subprocess.CompletedProcess(args, 0, out, "")

    return Fake


FakeDocker, FakePodman = fake(Docker), fake(Podman)


def build(engine, ctx: Path, flags: list[str] | None = None) -> float:
    return images.build_image(engine, "backend", "uv", ctx, "base:1", flags or [])


def test_a_build_is_checked_tagged_and_explained(fake_repo: Path, artifacts: Path) -> None:
    cfg = config(fake_repo, artifacts)
    ctx = assemble(fake_repo, "backend", artifacts)
    engine = FakeDocker(cfg, BUILDKIT_LOG.replace("#5 CACHED", "#5 DONE 9.0s"))
    build(engine, ctx, ["--no-cache"])
    (command,) = [c for c in engine.calls if c[0] == "build"]
    iidfile = str(cfg.build_dir / "logs" / "docker" / "grocery-backend-uv.iid")
    assert command[:5] == [
        "build",
        "--platform=linux/amd64",
        "--iidfile",
        iidfile,
        "--network=none",
    ]
    assert "--build-arg=BASE_IMAGE=base:1" in command and "--progress=plain" in command
    assert "--build-arg=VCS_REF=0123abc" in command and "--build-arg=PORT=8000" in command
    assert "--build-arg=KIND=service" in command and "--target" not in command
    assert command[-2:] == ["--no-cache", str(ctx)]
    passed = {a.removeprefix("--build-arg=").split("=")[0] for a in command
              if a.startswith("--build-arg=")}  # fmt: skip
    for variant in VARIANTS:  # every ARG a label of an image's Dockerfile names
        dockerfile = ROOT / "dockerfiles" / f"{variant}.Dockerfile"
        labels = [i["value"] for i in DockerfileParser(str(dockerfile)).structure
                  if i["instruction"] == "LABEL"]  # fmt: skip
        named = set(re.findall(r"\$\{(\w+)\}", " ".join(labels)))
        assert named and named <= passed, f"{dockerfile.name}: {named - passed} not passed"
    assert any(c[:2] == ["run", "--platform=linux/amd64"] for c in engine.calls), "not checked"
    assert engine.calls[-1] == ["tag", IMAGE, "grocery-backend:uv"]
    log = fake_repo / "build" / "logs" / "docker" / "grocery-backend-uv.log"
    assert log.read_text() == engine.log
    saved = json.loads(explain.record_path(cfg, "backend", "uv").read_text())
    assert {key: type(saved[key]) for key in SCHEMA} == SCHEMA
    assert saved["decisions"] == {"deps-rest": "ran", "app": "ran"}
    assert saved["extra_args"] == ["--no-cache"] and saved["engine"] == "docker"
    assert not [name for name in saved["steps"]["app"] if name.startswith("build arg")]


def test_podman_builds_with_its_own_flags(fake_repo: Path, artifacts: Path) -> None:
    cfg = config(fake_repo, artifacts, engine="podman")
    ctx = images.assemble_context(cfg, "backend", "uv", wheels.file_hashes(cfg.wheelhouse))
    engine = FakePodman(cfg)
    build(engine, ctx)
    (command,) = [c for c in engine.calls if c[0] == "build"]
    start = command.index("--timestamp")
    # The base's time, not the commit's (EPOCH): see engines.Podman.build_flags.
    assert command[start : start + 5] == ["--timestamp", str(BASE_CREATED), "--layers", "--format",
                                          "oci"]  # fmt: skip
    assert "--build-arg=CREATED=2001-09-09T01:46:40Z" in command  # the commit's, in the label
    assert command[-1] == str(ctx)
    assert "--progress=plain" not in command
    (check,) = [c for c in engine.calls if c[0] == "run"]
    assert check[:3] == ["run", "--platform=linux/amd64", "--pull=never"]
    assert (fake_repo / "build" / "logs" / "podman" / "grocery-backend-uv.log").is_file()
    saved = json.loads(explain.record_path(cfg, "backend", "uv").read_text())
    assert saved["engine"] == "podman"
    assert not [name for name in saved["steps"]["app"] if name.startswith("build arg")]


@pytest.mark.parametrize(("change", "problem"), [
    ("app", "/app differs from "),
    ("dists", "distributions differ from backend's lock (not locked: extra==1; "
     "missing: alpha==1.0)"),
])  # fmt: skip
def test_an_image_that_does_not_match_its_inputs_is_never_tagged(
    fake_repo: Path, artifacts: Path, change: str, problem: str
) -> None:
    ctx = assemble(fake_repo, "backend", artifacts)
    engine = FakeDocker(config(fake_repo, artifacts))
    engine.ctx = ctx
    found = json.loads(probe_answer(ctx))
    if change == "app":
        found["app"]["backend/__init__.py"] = "0" * 64
    else:
        found["dists"] = sorted({*found["dists"], "extra==1"} - {"alpha==1.0"})
    engine.contents = json.dumps(found)
    with pytest.raises(ScriptError) as error:
        build(engine, ctx)
    message = str(error.value)
    assert message.startswith(f"refusing to tag grocery-backend:uv: the built image {IMAGE[:19]} "
                              "does not match its inputs: ")  # fmt: skip
    assert problem in message and "\n" not in message
    if change == "app":
        assert message.endswith("/app in: backend/__init__.py")
    assert engine.removed == [IMAGE], "the refused image was not removed"
    assert not any(c[0] == "tag" for c in engine.calls)


def test_an_image_checked_once_is_not_run_again(fake_repo: Path, artifacts: Path) -> None:
    cfg = config(fake_repo, artifacts)
    ctx = assemble(fake_repo, "backend", artifacts)
    build(FakeDocker(cfg), ctx)
    again = FakeDocker(cfg)
    build(again, ctx)
    assert not any(c[0] == "run" for c in again.calls)
    (ctx / "app" / "backend" / "__init__.py").write_text('"""edited"""\n')
    edited = FakeDocker(cfg)
    build(edited, ctx)
    assert any(c[0] == "run" for c in edited.calls), "new app/ files, not checked again"


def test_a_stale_reuse_fails_the_build_with_one_line(fake_repo: Path, artifacts: Path) -> None:
    """An engine that reports a dependency step cached, from a layer whose recorded
    DEPS3_SHA256 is not the current one, after that layer's lock changed: refused, not
    tagged."""
    cfg = config(fake_repo, artifacts)
    ctx = assemble(fake_repo, "backend", artifacts)
    honest_log = BUILDKIT_LOG.replace("#5 CACHED", "#5 DONE 9.0s")
    key = images.step_inputs(images._normalize(ctx, EPOCH))["DEPS3_SHA256"]
    build(FakeDocker(cfg, honest_log, f"RUN |1 DEPS3_SHA256={key} /bin/sh"), ctx)

    lock = ctx / "deps" / "3" / "lock.txt"
    lock.write_text(lock.read_text().replace("alpha==1.0", "alpha==1.1"))
    stale = FakeDocker(cfg, BUILDKIT_LOG, f"RUN |1 DEPS3_SHA256={key} /bin/sh")
    with pytest.raises(ScriptError) as error:
        build(stale, ctx)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"backend:uv deps-rest: the engine reused a layer built from "
                              f"other inputs (DEPS3_SHA256 {key[:12]}, now ")  # fmt: skip
    assert message.endswith("although requirements/backend.txt: alpha 1.0 -> 1.1: refusing it")
    assert stale.removed == [IMAGE], "the refused image was not removed"
    assert not any(c[0] == "tag" for c in stale.calls)


FAILED_BUILDS = [
    ('#7 [job 2/3] RUN false\n#7 ERROR: process "/bin/sh -c false" did not complete\n------\n'
     ' > [job 2/3] RUN false:\n------\nERROR: failed to solve: process "/bin/sh -c false" did '
     "not complete successfully: exit code: 1\n",
     'ERROR: failed to solve: process "/bin/sh -c false" did not complete successfully: exit '
     "code: 1"),
    ('STEP 2/5: RUN false\nError: building at STEP "RUN false": while running runtime: exit '
     "status 1\n\n", 'Error: building at STEP "RUN false": while running runtime: exit status 1'),
    ("step 2\nerror: no space left on device\ncleaning up\n", "error: no space left on device"),
]  # fmt: skip


@pytest.mark.parametrize(("output", "reason"), FAILED_BUILDS)
def test_a_failed_build_names_the_error_and_the_log(fake_repo: Path, artifacts: Path,
                                                    output: str, reason: str) -> None:  # fmt: skip
    cfg = config(fake_repo, artifacts)
    ctx = assemble(fake_repo, "backend", artifacts)

    class Failing(FakeDocker):
        def run(self, args, **kwargs):
            if args[0] == "build":
                self.calls.append(args)
                kwargs["stdout"].write(output)
                return subprocess.CompletedProcess(args, 1)
            return super().run(args, **kwargs)

    engine = Failing(cfg)
    log = fake_repo / "build" / "logs" / "docker" / "grocery-backend-uv.log"
    with pytest.raises(ScriptError) as error:
        build(engine, ctx)
    assert str(error.value) == f"building grocery-backend:uv failed: {reason} (full log: {log})"
    assert [c[0] for c in engine.calls] == ["build"], "nothing runs after a failed build"


def test_forget_missing_drops_the_stamps_of_gone_or_replaced_images(tmp_path: Path) -> None:
    cfg = Config(build_dir=tmp_path)

    class Tagged(Docker):
        def tags(self) -> dict[str, str]:
            return {"grocery-backend:uv": "sha256:1", "grocery-flask:pip": "sha256:other"}

    stamps = tmp_path / "stamps" / "docker"
    stamps.mkdir(parents=True)
    for name, image in (("grocery-backend-uv", "sha256:1"), ("grocery-flask-pip", "sha256:2"),
                        ("grocery-frontend-uv", "sha256:3"), ("grocery-base", "python sha256:4"),
                        ("ci-flask-uv", "sha256:5")):  # fmt: skip
        (stamps / name).write_text(f"{image}\n")
    gone = images.forget_missing(Tagged(cfg))
    assert gone == [stamps / "grocery-flask-pip", stamps / "grocery-frontend-uv"]
    # The base's stamp (no variant in its name) and another prefix's stamps stay.
    assert sorted(p.name for p in stamps.iterdir()) == ["ci-flask-uv", "grocery-backend-uv",
                                                        "grocery-base"]  # fmt: skip


def test_forget_missing_keeps_a_stamp_whatever_the_id_spelling(tmp_path: Path) -> None:
    """Podman lists `sha256:<hex>` and inspects `<hex>`: the same image, kept."""

    class Listed(Podman):
        def tags(self) -> dict[str, str]:
            return {"grocery-flask:uv": "sha256:abc", "grocery-flask:pip": "sha256:new"}

    stamps = tmp_path / "stamps" / "podman"
    stamps.mkdir(parents=True)
    (stamps / "grocery-flask-uv").write_text("abc\n")
    (stamps / "grocery-flask-pip").write_text("old\n")
    gone = images.forget_missing(Listed(Config(build_dir=tmp_path, engine="podman")))
    assert gone == [stamps / "grocery-flask-pip"]


def test_forget_missing_asks_nothing_without_stamps(tmp_path: Path) -> None:
    class NoEngine(Podman):
        def tags(self) -> dict[str, str]:
            raise AssertionError("the engine was asked")

    assert images.forget_missing(NoEngine(Config(build_dir=tmp_path, engine="podman"))) == []


@pytest.mark.parametrize("kind", [FakeDocker, FakePodman])
def test_cache_repo_gives_each_engine_its_cache_flags(fake_repo: Path, artifacts: Path,
                                                      kind: type) -> None:  # fmt: skip
    """Docker: the image carries its inline cache, builds --cache-from its name in CACHE_REPO
    and is pushed there; Podman: CACHE_REPO is the --cache-from/--cache-to repository."""
    cfg = config(fake_repo, artifacts, engine=kind.name, cache_repo="127.0.0.1:5000/c")
    ctx = images.assemble_context(cfg, "backend", "uv", wheels.file_hashes(cfg.wheelhouse))
    engine = kind(cfg)
    build(engine, ctx)
    (command,) = [c for c in engine.calls if c[0] == "build"]
    ref = "127.0.0.1:5000/c/grocery-backend:uv"
    if kind is FakeDocker:
        assert {"--build-arg=BUILDKIT_INLINE_CACHE=1", f"--cache-from={ref}"} <= set(command)
        assert ["tag", IMAGE, ref] in engine.calls and ["push", ref] in engine.calls
    else:
        assert {"--cache-from=127.0.0.1:5000/c", "--cache-to=127.0.0.1:5000/c"} <= set(command)
        assert not [c for c in engine.calls if c[0] == "push"]
    without = kind(config(fake_repo, artifacts, engine=kind.name))
    build(without, ctx)
    assert not [
        a for c in without.calls for a in c if a.startswith(("--cache", "--build-arg=BUILDKIT"))
    ]
