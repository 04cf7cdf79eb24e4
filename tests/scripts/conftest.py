"""Fixtures of the build tooling's tests. The tooling is one package, scripts/imagetools, which
the tests import as `imagetools` (pyproject's pytest `pythonpath` holds scripts/).

Nothing here starts a real engine: `fake_client` is an executable that records its command
lines and answers what a test tells it, and `make_engine` gives each test fresh Docker or
Podman objects talking to it (a fresh object has no cached client).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from imagetools.config import Config
from imagetools.engines import Docker, Engine, Podman

EPOCH = 1_000_000_000

FAKE_CLIENT = """#!{python}
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
args = sys.argv[1:]
with open(os.path.join(here, "calls.jsonl"), "a") as log:
    env = {{key: os.environ.get(key) for key in ("DOCKER_BUILDKIT",)}}
    log.write(json.dumps({{"args": args, "env": env}}) + "\\n")
with open(os.path.join(here, "answers.json")) as handle:
    answers = json.load(handle)
words = " ".join(args)
for prefix, (out, err, code) in answers:
    if words.startswith(prefix):
        sys.stdout.write(out)
        sys.stderr.write(err)
        sys.exit(code)
"""


class FakeClient:
    """An engine client: records each command line and answers the first matching prefix
    (with nothing and exit 0 when none matches)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "fake-engine"
        self.path.write_text(FAKE_CLIENT.format(python=sys.executable))
        self.path.chmod(0o755)
        self._answers: list[tuple[str, tuple[str, str, int]]] = []
        self._save()

    def _save(self) -> None:
        (self.path.parent / "answers.json").write_text(json.dumps(self._answers))

    def answer(self, prefix: str, out: str = "", err: str = "", code: int = 0,
               first: bool = False) -> None:  # fmt: skip
        """Commands starting with prefix (their words joined by spaces) print out and err and
        exit with code; answers given first win (first=True: this one before all others)."""
        self._answers.insert(0 if first else len(self._answers), (prefix, (out, err, code)))
        self._save()

    @property
    def calls(self) -> list[list[str]]:
        return [entry["args"] for entry in self._entries()]

    @property
    def envs(self) -> list[dict[str, str | None]]:
        return [entry["env"] for entry in self._entries()]

    def _entries(self) -> list[dict]:
        log = self.path.parent / "calls.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    """The default configuration, with build/ and artifacts/ under tmp_path."""
    return Config(build_dir=tmp_path / "build", artifacts=tmp_path / "artifacts",
                  source_date_epoch=EPOCH, revision="0123abc")  # fmt: skip


@pytest.fixture
def fake_client(tmp_path: Path) -> FakeClient:
    return FakeClient(tmp_path / "fake-client")


MakeEngine = Callable[..., Engine]


@pytest.fixture
def make_engine(cfg: Config, fake_client: FakeClient) -> MakeEngine:
    """make_engine("docker" | "podman", **config changes): a new engine object each call,
    whose client is fake_client (Docker's with DOCKER_BUILDKIT=1, as the real one)."""

    def make(kind: str = "docker", **changes) -> Engine:
        base = {"docker": Docker, "podman": Podman}[kind]
        env = {"DOCKER_BUILDKIT": "1"} if kind == "docker" else {}

        class Fake(base):
            def client(self) -> tuple[list[str], dict[str, str]]:
                return [str(fake_client.path)], env

        return Fake(cfg.replace(engine=kind, **changes))

    return make


OnPath = Callable[[str, str], None]


@pytest.fixture
def on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> OnPath:
    """on_path(name, script): an executable shell script named name, first on PATH."""
    folder = tmp_path / "bin"

    def put(name: str, script: str) -> None:
        folder.mkdir(exist_ok=True)
        (folder / name).write_text("#!/bin/sh\n" + script)
        (folder / name).chmod(0o755)
        if not os.environ["PATH"].startswith(f"{folder}{os.pathsep}"):
            monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")

    return put


@pytest.fixture
def fake_mmdebstrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, on_path: OnPath) -> Path:
    """mmdebstrap on PATH: records its argv and SOURCE_DATE_EPOCH, writes a tar to its last
    argument (FAIL: writes part of one, then fails with that line); ensure-apt.sh is skipped
    (what it would install is "installed"). As the real one, it makes a directory of a target
    whose name does not end in a tar extension."""
    record = tmp_path / "mmdebstrap.calls"
    on_path("mmdebstrap",
            f'echo "$SOURCE_DATE_EPOCH $*" >> {record}\n'
            'for last; do :; done\n'
            'case "$last" in *.tar|*.tar.*) ;; *) mkdir -p "$last"; exit 0;; esac\n'
            'if [ -n "$FAIL" ]; then printf part > "$last"; echo "E: $FAIL" >&2; exit 1; fi\n'
            'printf rootfs > "$last"\n')  # fmt: skip
    real_run = subprocess.run

    def run(cmd, *args, **kwargs):
        if str(cmd[0]).endswith("ensure-apt.sh"):
            return subprocess.CompletedProcess(cmd, 0)
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", run)
    return record
