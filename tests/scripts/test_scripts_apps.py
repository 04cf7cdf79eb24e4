"""dockerfiles/apps.toml is checked on every command that reads it: one line per problem."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from imagetools import apps as apps_module
from imagetools.common import ROOT, ScriptError

GOOD = {
    "web": {"packages": ["web"], "port": 8000, "health": "/health",
            "command": ["gunicorn", "web.wsgi:app", "--bind", "0.0.0.0:{port}"]},
    "job": {"packages": ["web"], "command": ["python", "-m", "web"]},
}  # fmt: skip


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "src" / "web").mkdir(parents=True)
    (tmp_path / "src" / "web" / "__init__.py").write_text("")
    (tmp_path / "requirements").mkdir()
    for app in GOOD:
        (tmp_path / "requirements" / f"{app}.txt").write_text("")
    return tmp_path


def problems_with(root: Path, app: str, **changes) -> list[str]:
    apps = {name: dict(spec) for name, spec in GOOD.items()}
    for key, value in changes.items():
        if value is None:
            apps[app].pop(key)
        else:
            apps[app][key] = value
    return apps_module.app_problems(apps, root)


def test_good_data_has_no_problem(root: Path) -> None:
    assert apps_module.app_problems(GOOD, root) == []


@pytest.mark.parametrize(
    ("app", "changes", "expected"),
    [
        ("web", {"prot": 8000}, "[web]: unknown key 'prot' (known: description, packages"),
        ("web", {"packages": ["nowhere"]}, "[web]: package 'nowhere' is not under src/"),
        ("web", {"packages": []}, "[web]: packages must be a non-empty list"),
        ("web", {"health": None}, "[web]: a service needs both port and health"),
        ("web", {"port": None}, "[web]: a service needs both port and health"),
        ("web", {"port": "8000"}, "[web]: port must be a whole number from 1 to 65535"),
        ("web", {"port": 70000}, "[web]: port must be a whole number from 1 to 65535"),
        ("web", {"health": "health"}, "[web]: health must be a path starting with /"),
        ("web", {"command": "gunicorn web.wsgi:app"}, "[web]: command must be a non-empty list"),
        ("job", {"command": ["python", 3]}, "[job]: command must be a non-empty list of strings"),
        ("job", {"env": {"A": 1}}, "[job]: env must be a table of strings"),
        ("job", {"prune": "x/tests"}, "[job]: prune must be a list of glob strings"),
    ],
)  # fmt: skip
def test_each_problem_is_one_clear_line(root: Path, app: str, changes: dict,
                                        expected: str) -> None:  # fmt: skip
    problems = problems_with(root, app, **changes)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems[0]


def test_two_apps_on_one_port(root: Path) -> None:
    apps = {**GOOD, "other": {**GOOD["web"]}}
    (root / "requirements" / "other.txt").write_text("")
    assert apps_module.app_problems(apps, root) == ["[other]: port 8000 is already [web]'s"]


def test_a_missing_lock_says_make_lock(root: Path) -> None:
    (root / "requirements" / "job.txt").unlink()
    assert apps_module.app_problems(GOOD, root) == [
        "no lock for job: write requirements/job.in, add `-r job.in` to requirements/dev.in, "
        "and run `make lock`"
    ]


def test_an_app_name_that_cannot_be_an_image_name(root: Path) -> None:
    apps = {"My App": GOOD["job"]}
    (root / "requirements" / "My App.txt").write_text("")
    assert apps_module.app_problems(apps, root) == [
        "[My App]: app names are lower-case letters, digits and . _ -"
    ]


def test_a_command_prints_every_problem_and_no_traceback(tmp_path: Path) -> None:
    """Through a real command, `python -m imagetools image web uv`, against a broken apps.toml:
    one `imagetools: error:` line per problem, exit 1."""
    broken = tmp_path / "apps.toml"
    broken.write_text('[web]\npackages = ["nowhere"]\ncommand = "serve"\nport = 1\n')
    code = (
        "import pathlib, sys; from imagetools import apps, __main__;"
        "apps.APPS_FILE = pathlib.Path(sys.argv.pop(1)); __main__.entry()"
    )
    result = subprocess.run([sys.executable, "-c", code, str(broken), "image", "web", "uv"],
                            capture_output=True, text=True, cwd=tmp_path, check=False,
                            env=dict(os.environ, PYTHONPATH=str(ROOT / "scripts"),
                                     BUILD_DIR=str(tmp_path / "build")))  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    prefixes = tuple(f"imagetools: error: {broken}: {what}" for what in ("[web]", "no lock"))
    assert all(line.startswith(prefixes) for line in lines), lines
    assert any("package 'nowhere' is not under src/" in ln for ln in lines), lines
    assert any("command must be" in ln for ln in lines), lines
    assert any("a service needs both port and health" in ln for ln in lines), lines
    assert any("no lock for web" in ln for ln in lines), lines
    assert not (tmp_path / "build").exists(), "something ran before the check"


@pytest.fixture
def apps_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An apps.toml that load_apps reads instead of the repository's (its cache emptied)."""
    path = tmp_path / "apps.toml"
    monkeypatch.setattr(apps_module, "APPS_FILE", path)
    apps_module.load_apps.cache_clear()
    yield path
    apps_module.load_apps.cache_clear()


def test_a_toml_syntax_error_is_one_line_naming_the_file(apps_file: Path) -> None:
    apps_file.write_text("[web\n")
    with pytest.raises(ScriptError) as caught:
        apps_module.load_apps()
    assert str(caught.value).startswith(f"{apps_file}: ")
    assert "\n" not in str(caught.value)


def test_load_apps_names_the_file_in_every_problem(apps_file: Path) -> None:
    apps_file.write_text('[web]\npackages = ["grocery"]\ncommand = ["x"]\nport = 0\n')
    with pytest.raises(ScriptError) as caught:
        apps_module.load_apps()
    lines = str(caught.value).splitlines()
    assert lines == [f"{apps_file}: [web]: a service needs both port and health (a job neither)",
                     f"{apps_file}: [web]: port must be a whole number from 1 to 65535, not 0",
                     f"{apps_file}: no lock for web: write requirements/web.in, add `-r web.in` "
                     "to requirements/dev.in, and run `make lock`"]  # fmt: skip


def test_the_repository_apps_are_valid() -> None:
    assert set(apps_module.load_apps()) >= {"backend", "frontend", "flask", "trainer"}


def test_unknown_app_and_variant_name_the_choices() -> None:
    with pytest.raises(ScriptError, match=r"unknown app 'nope'; choose from: backend"):
        apps_module.app_spec("nope")
    with pytest.raises(ScriptError, match=r"choose from: pip, uv, multistage"):
        apps_module.check_variant("alpine")
    assert apps_module.check_variant("uv") == "uv"
    assert apps_module.app_spec("flask")["port"] == 8080


STRUCTURE = ROOT / "tests" / "structure"


@pytest.mark.parametrize("app", [a for a in apps_module.load_apps()
                                 if (STRUCTURE / f"{a}.yaml").exists()])  # fmt: skip
def test_each_structure_file_matches_apps_toml(app: str) -> None:
    """The port an app's contract (tests/structure/<app>.yaml) expects is apps.toml's."""
    spec = yaml.safe_load((STRUCTURE / f"{app}.yaml").read_text())
    port = apps_module.load_apps()[app].get("port")
    exposed = spec.get("metadataTest", {}).get("exposedPorts", [])
    assert exposed == ([str(port)] if port else [])
