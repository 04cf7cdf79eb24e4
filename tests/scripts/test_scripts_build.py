"""scripts/build.py assemble_context on a fake repository: exactly what an image needs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest

import common
import explain
import wheels
from common import ROOT, ScriptError

EPOCH = 1_000_000_000
APPS = tomllib.loads((ROOT / "dockerfiles" / "apps.toml").read_text())
WHEEL_FILES = {  # name -> bytes; the lock of each app below pins a subset
    "alpha-1.0-py3-none-any.whl": b"alpha wheel",
    "beta-2.0-cp311-cp311-manylinux_2_17_x86_64.whl": b"beta wheel",
    "uv-0.9.0-py3-none-manylinux_2_17_x86_64.whl": b"uv wheel",
    "unlocked-3.0-py3-none-any.whl": b"nobody pins this",
}
LOCKED = {
    "backend": {"alpha": "alpha-1.0-py3-none-any.whl",
                "beta": "beta-2.0-cp311-cp311-manylinux_2_17_x86_64.whl"},
    "frontend": {"alpha": "alpha-1.0-py3-none-any.whl"},
    "tools": {"uv": "uv-0.9.0-py3-none-manylinux_2_17_x86_64.whl"},
}  # fmt: skip


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
def fake_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, build_module) -> Path:
    """requirements/, src/, dockerfiles/context.dockerignore and a wheelhouse under tmp."""
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
    monkeypatch.setattr(build_module, "ROOT", repo)
    monkeypatch.setattr(build_module, "BUILD", repo / "build")
    return repo


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    out = tmp_path / "artifacts"
    (out / "image" / "samples" / "apple").mkdir(parents=True)
    (out / "image" / "model.safetensors").write_bytes(b"weights")
    (out / "image" / "metadata.json").write_text('{"classes": ["apple"]}')
    (out / "image" / "samples" / "apple" / "0.png").write_bytes(b"png")
    return out


def assemble(build_module, repo: Path, app: str, artifacts: Path) -> Path:
    hashes = wheels.file_hashes(repo / "build" / "wheelhouse")
    return build_module.assemble_context(app, hashes, artifacts, EPOCH)


def files_under(path: Path) -> set[str]:
    return {p.relative_to(path).as_posix() for p in path.rglob("*") if not p.is_dir()}


def test_context_holds_the_locks_and_exactly_the_locked_wheels(
    build_module, fake_repo: Path, artifacts: Path
) -> None:
    ctx = assemble(build_module, fake_repo, "backend", artifacts)
    assert ctx == fake_repo / "build" / "context" / "backend"
    assert sorted(p.name for p in ctx.iterdir()) == [
        ".dockerignore", "app", "lock.txt", "prune.txt", "prune_rootfs.py", "prune_venv.py",
        "scrub_venv.py", "tools.txt", "wheels",
    ]  # fmt: skip
    assert (ctx / "prune.txt").read_text().splitlines() == APPS["backend"].get("prune", [])
    req = fake_repo / "requirements"
    assert (ctx / "lock.txt").read_bytes() == (req / "backend.txt").read_bytes()
    assert (ctx / "tools.txt").read_bytes() == (req / "tools.txt").read_bytes()
    expected = {*LOCKED["backend"].values(), *LOCKED["tools"].values()}
    assert {p.name for p in (ctx / "wheels").iterdir()} == expected
    for name in expected:  # hard links into the wheelhouse, not copies
        linked = (ctx / "wheels" / name).stat()
        assert linked.st_ino == (fake_repo / "build" / "wheelhouse" / name).stat().st_ino
        assert linked.st_nlink >= 2


def test_app_dir_has_the_packages_launcher_and_launch_json(
    build_module, fake_repo: Path, artifacts: Path
) -> None:
    ctx = assemble(build_module, fake_repo, "backend", artifacts)
    app = ctx / "app"
    expected = {"launch.py", "healthcheck.py", "launch.json"}
    for package in APPS["backend"]["packages"]:
        expected |= {f"{package}/__init__.py", f"{package}/sub/mod.py", f"{package}/run.sh"}
    expected |= {f"model/{f}" for f in files_under(artifacts / "image")}
    assert files_under(app) == expected
    launch = json.loads((app / "launch.json").read_text())
    spec = APPS["backend"]
    assert launch == {k: spec[k] for k in ("command", "env", "port", "health")}
    runtime = ROOT / "dockerfiles" / "runtime"
    assert (app / "launch.py").read_bytes() == (runtime / "launch.py").read_bytes()
    for name in ("prune_rootfs.py", "prune_venv.py", "scrub_venv.py"):
        assert (ctx / name).read_bytes() == (runtime / name).read_bytes()
    assert (app / "model" / "model.safetensors").read_bytes() == b"weights"


def test_a_service_without_model_gets_no_model_dir(
    build_module, fake_repo: Path, tmp_path: Path
) -> None:
    ctx = assemble(build_module, fake_repo, "frontend", tmp_path / "no-artifacts")
    assert not (ctx / "app" / "model").exists()
    assert {p.name for p in (ctx / "wheels").iterdir()} == {
        *LOCKED["frontend"].values(), *LOCKED["tools"].values(),
    }  # fmt: skip
    launch = json.loads((ctx / "app" / "launch.json").read_text())
    assert launch["port"] == APPS["frontend"]["port"] and "model" not in launch
    assert (ctx / "prune.txt").read_text().splitlines() == APPS["frontend"].get("prune", [])


def test_no_caches_tests_or_hidden_files(build_module, fake_repo: Path, artifacts: Path) -> None:
    ctx = assemble(build_module, fake_repo, "backend", artifacts)
    for path in ctx.rglob("*"):
        rel = path.relative_to(ctx).as_posix()
        assert "__pycache__" not in path.parts and "tests" not in path.parts, rel
        assert path.suffix != ".pyc", rel
        assert not path.name.startswith(".") or rel == ".dockerignore", rel


def test_every_mtime_is_the_epoch_and_modes_are_fixed(
    build_module, fake_repo: Path, artifacts: Path
) -> None:
    """Whole seconds: SOURCE_DATE_EPOCH (wheels: a fixed time); nanoseconds: the content's."""
    ctx = assemble(build_module, fake_repo, "backend", artifacts)
    for path in [ctx, *ctx.rglob("*")]:
        info = path.lstat()
        expected = 0o755 if stat.S_ISDIR(info.st_mode) else 0o644
        assert stat.S_IMODE(info.st_mode) == expected, f"{path}: {oct(info.st_mode)}"
        if path.is_dir():
            assert info.st_mtime_ns == EPOCH * 10**9, path
            continue
        seconds = wheels.WHEEL_MTIME if path.parent.name == "wheels" else EPOCH
        digest = sha(path.read_bytes())
        assert info.st_mtime_ns == common.content_mtime_ns(seconds, digest), path


def test_a_same_size_edit_changes_the_mtime_that_buildkit_compares(
    build_module, fake_repo: Path, artifacts: Path
) -> None:
    """BuildKit resends a context file only if its size, mode or mtime changed."""
    ctx = assemble(build_module, fake_repo, "backend", artifacts)
    model = ctx / "app" / "model" / "model.safetensors"
    before = model.stat()
    artifacts.joinpath("image", "model.safetensors").write_bytes(b"weightz")  # same size
    assemble(build_module, fake_repo, "backend", artifacts)
    after = model.stat()
    assert after.st_size == before.st_size
    assert after.st_mtime_ns != before.st_mtime_ns


def test_step_inputs_cover_every_file_outside_app(
    build_module, fake_repo: Path, artifacts: Path
) -> None:
    """DEPS_SHA256 changes with any lock, wheel or helper byte, never with app/ files."""
    ctx = assemble(build_module, fake_repo, "backend", artifacts)
    (ctx / "prune_rootfs.py").write_text("# stand-in\n")
    first = build_module.step_inputs(build_module._normalize(ctx, EPOCH))
    assert first["ROOTFS_SHA256"] == sha(b"# stand-in\n")
    (ctx / "app" / "backend" / "__init__.py").write_text('"""edited"""\n')
    same = build_module.step_inputs(build_module._normalize(ctx, EPOCH))
    assert same == first, "an app/ file (copied, not mounted) changed the dependency key"
    for name in ("lock.txt", "prune.txt", f"wheels/{LOCKED['backend']['alpha']}"):
        path = ctx / name
        original = path.read_bytes()
        path.write_bytes(original[:-1] + b"#")  # same size, in place
        changed = build_module.step_inputs(build_module._normalize(ctx, EPOCH))
        assert changed["DEPS_SHA256"] != first["DEPS_SHA256"], name
        path.write_bytes(original)


def test_reassembly_starts_from_an_empty_context(
    build_module, fake_repo: Path, artifacts: Path
) -> None:
    ctx = assemble(build_module, fake_repo, "backend", artifacts)
    (ctx / "app" / "leftover.py").write_text("")
    os.unlink(ctx / "wheels" / LOCKED["backend"]["alpha"])
    again = assemble(build_module, fake_repo, "backend", artifacts)
    assert not (again / "app" / "leftover.py").exists()
    assert (again / "wheels" / LOCKED["backend"]["alpha"]).is_file()


@pytest.mark.parametrize("where", ["model", "package"])
def test_a_symlink_in_a_copied_tree_is_refused(build_module, fake_repo: Path, artifacts: Path,
                                               tmp_path: Path, where: str) -> None:  # fmt: skip
    secret = tmp_path / "secret.key"
    secret.write_text("not for the image")
    folder = artifacts / "image" / "samples" / "apple" if where == "model" else (
        fake_repo / "src" / "backend")  # fmt: skip
    if where == "package":  # an editor's lock-file link is ignored like other hidden files
        (folder / ".#editor-lock").symlink_to("nowhere")
        assert assemble(build_module, fake_repo, "backend", artifacts).is_dir()
    (folder / "link.png").symlink_to(secret)
    with pytest.raises(ScriptError, match=r"link\.png is a symlink: the build copies regular"):
        assemble(build_module, fake_repo, "backend", artifacts)


def test_missing_model_says_make_train(build_module, fake_repo: Path, tmp_path: Path) -> None:
    with pytest.raises(ScriptError, match=r"make train"):
        assemble(build_module, fake_repo, "backend", tmp_path / "no-artifacts")


def test_a_locked_wheel_missing_from_the_wheelhouse_is_an_error(
    build_module, fake_repo: Path, artifacts: Path
) -> None:
    (fake_repo / "build" / "wheelhouse" / LOCKED["backend"]["beta"]).unlink()
    with pytest.raises(ScriptError, match=r"beta==2\.0 is not in the wheelhouse"):
        assemble(build_module, fake_repo, "backend", artifacts)


def test_unknown_app_is_a_clear_error(build_module, fake_repo: Path, artifacts: Path) -> None:
    with pytest.raises(ScriptError, match=r"unknown app 'nope'; choose from: backend"):
        build_module.assemble_context("nope", {}, artifacts, EPOCH)


BUILDKIT_LOG = """\
#5 [job 2/3] RUN --mount=type=bind,source=lock.txt,target=/tmp/build/lock.txt echo "dependency inputs"
#5 CACHED

#6 [job 3/3] COPY app/ /app/
#6 DONE 0.1s
"""  # noqa: E501


# The shape of `make explain EXPLAIN_ARGS=--json` (what CI and the bench read).
SCHEMA = {"image": str, "engine": str, "image_id": str, "decisions": dict, "extra_args": list,
          "steps": dict, "pins": dict, "lines": list, "warnings": list}  # fmt: skip


class FakeEngine:
    """An engine that says what the test tells it: the build log, the layer's history."""

    def __init__(self, log: str, history: str) -> None:
        self.log, self.history = log, history
        self.removed: list[str] = []

    def __call__(self, engine: str, args: list[str], **kwargs) -> subprocess.CompletedProcess:
        out = ""
        if args[0] == "build":
            kwargs["stdout"].write(self.log)
            Path(args[args.index("--iidfile") + 1]).write_text("sha256:" + "f" * 64)
        elif args[0] == "history":
            out = self.history
        elif args[:2] == ["image", "inspect"]:
            out = "[]" if "RepoTags" in args[3] else "sha256:" + "b" * 64
        elif args[0] == "rmi":
            self.removed.append(args[1])
        return subprocess.CompletedProcess(args, 0, out, "")


def test_a_stale_reuse_fails_the_build_with_one_line(
    build_module, fake_repo: Path, artifacts: Path, monkeypatch
) -> None:
    """An engine that reports the dependency step cached, from a layer whose recorded
    DEPS_SHA256 is not the current one, after the lock changed: refused, not tagged."""
    monkeypatch.setattr(build_module, "check_image", lambda *args: None)
    ctx = build_module.assemble_context("backend", wheels.file_hashes(
        fake_repo / "build" / "wheelhouse"), artifacts, 1_000_000_000)  # fmt: skip
    honest_log = BUILDKIT_LOG.replace("#5 CACHED", "#5 DONE 9.0s")
    key = build_module.step_inputs(build_module._normalize(ctx, 1_000_000_000))["DEPS_SHA256"]
    monkeypatch.setattr(build_module, "engine_run",
                        FakeEngine(honest_log, f"RUN |1 DEPS_SHA256={key} /bin/sh"))  # fmt: skip
    build_module.build_image("docker", "backend", "uv", ctx, "base", 1_000_000_000, [])
    saved = json.loads(explain.record_path("docker", "backend", "uv",
                                           fake_repo / "build").read_text())  # fmt: skip
    assert {key: type(saved[key]) for key in SCHEMA} == SCHEMA
    assert saved["decisions"] == {"deps": "ran", "app": "ran"}

    lock = ctx / "lock.txt"
    lock.write_text(lock.read_text().replace("alpha==1.0", "alpha==1.1"))
    stale = FakeEngine(BUILDKIT_LOG, f"RUN |1 DEPS_SHA256={key} /bin/sh")
    monkeypatch.setattr(build_module, "engine_run", stale)
    with pytest.raises(ScriptError) as error:
        build_module.build_image("docker", "backend", "uv", ctx, "base", 1_000_000_000, [])
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"backend:uv deps: the engine reused a layer built from other "
                              f"inputs (DEPS_SHA256 {key[:12]}, now ")  # fmt: skip
    assert message.endswith("although requirements/backend.txt: alpha 1.0 -> 1.1: refusing it")
    assert stale.removed == ["sha256:" + "f" * 64], "the refused image was not removed"
