"""`python -m imagetools COMMAND` (imagetools/__main__.py): the command list, the configuration
it hands each command, and errors as readable lines with an exit status, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from imagetools import __main__ as cli
from imagetools.common import ROOT, ScriptError
from imagetools.config import Config


def imagetools(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k.upper() not in Config.__dataclass_fields__
             and k.lower() not in Config.__dataclass_fields__}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "imagetools", *args], cwd=ROOT, text=True,
                          env=dict(clean, PYTHONPATH=str(ROOT / "scripts"), **env),
                          capture_output=True, check=False)  # fmt: skip


def test_no_or_an_unknown_command_lists_the_commands() -> None:
    for args in ((), ("nope",)):
        result = imagetools(*args)
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.startswith("usage: python -m imagetools COMMAND [options]")
        for command in ("image", "wheels", "lock", "explain", "makefile"):
            assert f"\n  {command} " in result.stderr, command


def test_every_command_names_a_module_with_main() -> None:
    import importlib

    for command, (module, _) in cli.COMMANDS.items():
        loaded = importlib.import_module(f"imagetools.{module}")
        if command != "engine":  # run() asks the engine itself
            assert callable(getattr(loaded, "main", None)), command


def test_config_prints_what_the_environment_gives(tmp_path: Path) -> None:
    result = imagetools("config", ENGINE="podman", BUILD_DIR=str(tmp_path), IMAGE_PREFIX="")
    assert result.returncode == 0, result.stderr
    lines = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert lines["ENGINE"] == "podman" and lines["BUILD_DIR"] == str(tmp_path)
    assert lines["IMAGE_PREFIX"] == Config().image_prefix, "empty means the default"
    assert set(lines) == {name.upper() for name in Config.__dataclass_fields__}


def test_a_bad_variable_is_one_error_line_before_any_command() -> None:
    result = imagetools("wheels", ENGINE="lxc")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "imagetools: error: unknown ENGINE 'lxc'; choose docker or podman\n"


def entry(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> int:
    def fail(argv: list[str]) -> int:
        raise error

    monkeypatch.setattr(cli, "run", fail)
    with pytest.raises(SystemExit) as exited:
        cli.entry()
    return exited.value.code


def test_entry_prints_each_line_of_an_error(monkeypatch, capsys) -> None:
    assert entry(monkeypatch, ScriptError("first problem\nsecond problem")) == 1
    assert capsys.readouterr().err == ("imagetools: error: first problem\n"
                                       "imagetools: error: second problem\n")  # fmt: skip


def test_entry_names_a_failed_command(monkeypatch, capsys) -> None:
    error = subprocess.CalledProcessError(3, ["docker", "pull", Path("/x")])
    assert entry(monkeypatch, error) == 1
    assert capsys.readouterr().err == "imagetools: error: `docker pull /x` failed (exit 3)\n"


def test_entry_turns_ctrl_c_into_130(monkeypatch, capsys) -> None:
    assert entry(monkeypatch, KeyboardInterrupt()) == 130
    assert capsys.readouterr().err == "imagetools: interrupted\n"
