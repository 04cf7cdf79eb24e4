"""dockerfiles/apps.toml: what differs between the images is data, and the data must hold."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from imagetools.apps import app_problems

ROOT = Path(__file__).resolve().parents[2]
with (ROOT / "dockerfiles" / "apps.toml").open("rb") as _handle:
    APPS: dict[str, dict] = tomllib.load(_handle)
LAYERS = APPS.pop("layer")  # [[layer]]: the dependency layers, not an app
MODEL_APPS = {"backend": "image", "flask": "tabular"}  # docs/architecture.md


def module_file(module: str) -> Path:
    """src/ path of a dotted module: a module file or a package's __init__.py."""
    base = ROOT / "src" / module.replace(".", "/")
    return base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"


def entry_module(command: list[str]) -> str:
    """The module a command runs: `python -m pkg`, or uvicorn/gunicorn's `pkg.mod:attr`."""
    if command[0] == "python":
        assert command[1] == "-m", command
        return command[2] + ".__main__"
    target = next(word for word in command[1:] if ":" in word and not word.startswith("0.0"))
    return target.split(":")[0]


def test_apps_toml_passes_the_tools_own_check() -> None:
    """The same check every command makes (imagetools.apps.app_problems)."""
    assert app_problems(APPS) == []


@pytest.mark.parametrize("app", sorted(APPS))
def test_packages_exist_under_src(app: str) -> None:
    packages = APPS[app]["packages"]
    assert packages and len(set(packages)) == len(packages)
    for package in packages:
        assert (ROOT / "src" / package / "__init__.py").is_file(), f"src/{package} is missing"


@pytest.mark.parametrize("app", sorted(APPS))
def test_command_runs_a_module_the_image_carries(app: str) -> None:
    command = APPS[app]["command"]
    assert isinstance(command, list) and command and all(isinstance(w, str) for w in command)
    module = entry_module(command)
    assert module.split(".")[0] in APPS[app]["packages"], f"{module} is not copied into {app}"
    assert module_file(module).is_file(), f"{app}: {module} does not exist under src/"


@pytest.mark.parametrize("app", sorted(APPS))
def test_services_have_port_health_and_use_the_port(app: str) -> None:
    spec = APPS[app]
    if "port" not in spec:
        assert "health" not in spec, f"{app}: a health path without a port"
        assert not any("{port}" in word for word in spec["command"])
        return
    assert isinstance(spec["port"], int) and 1024 <= spec["port"] < 65536, spec["port"]
    assert isinstance(spec["health"], str) and spec["health"].startswith("/")
    assert any("{port}" in word for word in spec["command"]), "the command must bind {port}"
    assert not any("127.0.0.1" in word for word in spec["command"]), "bind 0.0.0.0 in a container"


def test_ports_are_distinct() -> None:
    ports = {app: spec["port"] for app, spec in APPS.items() if "port" in spec}
    assert ports and len(set(ports.values())) == len(ports)


@pytest.mark.parametrize("app", sorted(APPS))
def test_every_app_has_a_lock_and_its_input(app: str) -> None:
    assert (ROOT / "requirements" / f"{app}.txt").is_file()
    assert (ROOT / "requirements" / f"{app}.in").is_file()


def test_models_are_ones_the_trainer_writes() -> None:
    models = {app: spec["model"] for app, spec in APPS.items() if "model" in spec}
    assert set(models.values()) <= set(MODEL_APPS.values())
    assert {app: models.get(app) for app in MODEL_APPS if app in APPS} == MODEL_APPS


@pytest.mark.parametrize("app", sorted(APPS))
def test_env_is_strings_and_model_dir_matches_the_model(app: str) -> None:
    env = APPS[app].get("env", {})
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()), env
    if "model" in APPS[app]:
        assert env.get("MODEL_DIR") == "/app/model", "imagetools copies the model to /app/model"
    else:
        assert "MODEL_DIR" not in env
