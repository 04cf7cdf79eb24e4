"""Fixtures for the flake tests: the nix binary and the flake's evaluated outputs."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from nix_support import NIX_MISSING, FlakeEval


@pytest.fixture(scope="session")
def nix() -> str:
    """The nix binary; the tests fail (never skip) when it is missing or does not run."""
    binary = shutil.which("nix")
    if binary is None:
        pytest.fail(NIX_MISSING)
    result = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"`nix --version` failed: {result.stderr.strip()} ({NIX_MISSING})")
    return binary


@pytest.fixture(scope="session")
def flake(nix: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """devShells, formatter and checks of flake.nix, summarised per system as JSON."""
    evaluate = FlakeEval(nix, tmp_path_factory.mktemp("nix"))
    return {
        "devShells": evaluate(
            "devShells",
            "ds: builtins.mapAttrs (system: s: builtins.mapAttrs (name: shell: "
            "let a = shell.stubMkShellArgs; in a // { packages = map (p: p.pname) a.packages; })"
            " s) ds",
        ),
        "formatter": evaluate("formatter", "builtins.mapAttrs (system: f: f.pname)"),
        "checks": evaluate(
            "checks", "builtins.mapAttrs (system: c: builtins.mapAttrs (n: v: v.name) c)"
        ),
    }
