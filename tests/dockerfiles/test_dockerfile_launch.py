"""dockerfiles/runtime/launch.py: the image's entry point execs launch.json's command."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

SPEC = {
    "command": ["gunicorn", "pkg.wsgi:app", "--bind", "0.0.0.0:{port}", "--workers", "{port}"],
    "env": {"MODEL_DIR": "/app/model", "TORCH_THREADS": "1"},
    "port": 8080,
    "health": "/health",
}


class Exec(Exception):
    """Raised by the fake os.execvp so main() stops where the real one would not return."""


@pytest.fixture
def launch(runtime_module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """launch.py reading tmp_path/app/launch.json; returns run(spec, argv) -> (file, argv, env)."""
    module = runtime_module("launch")
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    monkeypatch.setattr(module, "SPEC", app_dir / "launch.json")
    for key in ("PORT", "PYTHONPATH", "MODEL_DIR", "TORCH_THREADS", "TRAINER_OUT"):
        # setenv first so teardown removes what main() sets directly in os.environ
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)
    calls = []

    def fake_execvp(file: str, args: list[str]) -> None:
        calls.append((file, list(args), dict(os.environ)))
        raise Exec

    monkeypatch.setattr(module.os, "execvp", fake_execvp)

    def run(spec: dict, argv: list[str] | None = None):
        (app_dir / "launch.json").write_text(json.dumps(spec))
        monkeypatch.setattr(sys, "argv", ["/app/launch.py", *(argv or [])])
        with pytest.raises(Exec):
            module.main()
        assert len(calls) == 1
        return calls.pop()

    run.app_dir = app_dir
    return run


def test_port_placeholder_is_replaced_by_the_spec_port(launch) -> None:
    file, argv, env = launch(SPEC)
    assert file == "gunicorn"
    assert argv == ["gunicorn", "pkg.wsgi:app", "--bind", "0.0.0.0:8080", "--workers", "8080"]
    assert env["PORT"] == "8080"


def test_port_comes_from_the_environment_when_set(launch, monkeypatch) -> None:
    monkeypatch.setenv("PORT", "9123")
    _, argv, _ = launch(SPEC)
    assert argv[3] == "0.0.0.0:9123"


def test_run_arguments_are_appended(launch) -> None:
    _, argv, _ = launch(SPEC, ["--timeout", "30"])
    assert argv[-2:] == ["--timeout", "30"]
    assert argv[: len(SPEC["command"])][0] == "gunicorn"


def test_env_defaults_do_not_override_the_environment(launch, monkeypatch) -> None:
    monkeypatch.setenv("MODEL_DIR", "/mnt/other-model")
    _, _, env = launch(SPEC)
    assert env["MODEL_DIR"] == "/mnt/other-model"
    assert env["TORCH_THREADS"] == "1"


def test_pythonpath_gets_the_app_dir_first(launch, monkeypatch) -> None:
    _, _, env = launch(SPEC)
    assert env["PYTHONPATH"] == str(launch.app_dir)
    monkeypatch.setenv("PYTHONPATH", "/extra")
    _, _, env = launch(SPEC)
    assert env["PYTHONPATH"].split(os.pathsep) == [str(launch.app_dir), "/extra"]


def test_python_means_this_interpreter_and_no_port_is_fine(launch) -> None:
    spec = {"command": ["python", "-m", "trainer"], "env": {"TRAINER_OUT": "/artifacts"}}
    file, argv, env = launch(spec, ["all", "--out", "/artifacts"])
    assert file == sys.executable
    assert argv == [sys.executable, "-m", "trainer", "all", "--out", "/artifacts"]
    assert env["TRAINER_OUT"] == "/artifacts"
