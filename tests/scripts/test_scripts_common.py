"""scripts/common.py: choosing a docker client that can drive BuildKit, with fake clients."""

from __future__ import annotations

from pathlib import Path

import pytest

import common
from common import ScriptError, engine_command, engine_run

FAKE = """#!/bin/sh
case "$1" in
  version) printf '%s\\n' "{version}" ;;
  buildx) exit {buildx_status} ;;
  show-env) printf 'DOCKER_BUILDKIT=%s\\n' "$DOCKER_BUILDKIT" ;;
esac
"""


@pytest.fixture
def clients(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """make(name, version, buildx) writes a fake client; PATH holds only tmp_path/bin.

    /usr/bin/docker is always a candidate in engine_command; a real one on this machine is
    made to look absent (it answers no version), so only the fake clients decide.
    """
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("DOCKER", raising=False)
    real_version = common._client_version
    asked: list[str] = []

    def fakes_only(client: str) -> str:
        asked.append(client)
        return real_version(client) if Path(client).is_relative_to(tmp_path) else ""

    monkeypatch.setattr(common, "_client_version", fakes_only)

    def make(name: str, version: str, buildx: bool = False, where: Path = bin_dir) -> str:
        path = where / name
        path.write_text(FAKE.format(version=version, buildx_status=0 if buildx else 1))
        path.chmod(0o755)
        return str(path)

    make.asked = asked
    make.tmp = tmp_path
    return make


def test_pre_23_client_is_used_with_docker_buildkit(clients, monkeypatch) -> None:
    old = clients("docker", "20.10.24+dfsg1")
    assert engine_command("docker") == ([old], {"DOCKER_BUILDKIT": "1"})


def test_docker_env_var_names_the_client(clients, monkeypatch) -> None:
    other = clients("my-docker", "20.10.5", where=clients.tmp)
    monkeypatch.setenv("DOCKER", other)
    assert engine_command("docker")[0] == [other]


def test_28_client_without_buildx_is_refused_clearly(clients, monkeypatch) -> None:
    monkeypatch.setenv("DOCKER", clients("docker", "28.2.2"))
    with pytest.raises(ScriptError) as caught:
        engine_command("docker")
    message = str(caught.value)
    for hint in ("BuildKit", "buildx", "docker.io", "DOCKER_BUILDKIT=1", "ENGINE=podman"):
        assert hint in message, message
    assert "/usr/bin/docker" in clients.asked, "the fallback client was not considered"


def test_28_client_without_buildx_is_skipped_for_an_older_one(clients, monkeypatch) -> None:
    new = clients("docker-28", "28.2.2", where=clients.tmp)
    old = clients("docker", "20.10.24+dfsg1")
    monkeypatch.setenv("DOCKER", new)
    assert engine_command("docker") == ([old], {"DOCKER_BUILDKIT": "1"})
    assert clients.asked[:2] == [new, old]


def test_28_client_with_buildx_is_used(clients) -> None:
    new = clients("docker", "28.2.2", buildx=True)
    assert engine_command("docker") == ([new], {"DOCKER_BUILDKIT": "1"})


def test_a_client_that_answers_no_version_is_skipped(clients, monkeypatch) -> None:
    monkeypatch.setenv("DOCKER", clients("broken", "", where=clients.tmp))
    old = clients("docker", "19.03.15")
    assert engine_command("docker")[0] == [old]


def test_engine_run_passes_the_buildkit_environment(clients) -> None:
    clients("docker", "20.10.24")
    result = engine_run("docker", ["show-env"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "DOCKER_BUILDKIT=1"


def test_unknown_engine_and_missing_podman(clients) -> None:
    with pytest.raises(ScriptError, match=r"unknown ENGINE 'dockr'; choose docker or podman"):
        engine_command("dockr")
    with pytest.raises(ScriptError, match=r"podman is not installed"):
        engine_command("podman")


def test_unknown_app_and_variant_name_the_choices() -> None:
    with pytest.raises(ScriptError, match=r"unknown app 'nope'; choose from: backend"):
        common.app_spec("nope")
    with pytest.raises(ScriptError, match=r"choose from: pip, uv, multistage"):
        common.check_variant("alpine")
    assert common.check_variant("uv") == "uv"


def test_source_date_epoch_prefers_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1234567890")
    assert common.source_date_epoch() == 1234567890
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    assert common.source_date_epoch() >= 0
