"""Evaluate the project's flake.nix offline with `nix eval`, nixpkgs replaced by a stand-in.

Nix cannot fetch nixpkgs here, so `--override-input nixpkgs path:tests/nix/stub-nixpkgs`
swaps in a tiny flake whose packages are plain attribute sets and whose `mkShell` returns
its own arguments. The flake is copied alone into a temporary directory (its git tree would
hide untracked files and `path:.` would copy .venv), and Nix gets a temporary store and
cache, so nothing outside the test's temporary directory is written.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STUB = Path(__file__).resolve().parent / "stub-nixpkgs"
SYSTEMS = {"x86_64-linux", "aarch64-linux", "x86_64-darwin", "aarch64-darwin"}
NIX_MISSING = (
    "nix is not installed: the flake tests need Debian's nix-bin "
    "(`scripts/ensure-apt.sh nix-bin`, or `apt-get install nix-bin`)"
)


class FlakeEval:
    """Runs `nix eval --json` on one output of the copied flake, stub nixpkgs in place."""

    def __init__(self, nix: str, workdir: Path) -> None:
        self.nix = nix
        self.flake = workdir / "flake"
        self.flake.mkdir()
        for name in ("flake.nix", "flake.lock"):
            shutil.copy(ROOT / name, self.flake / name)
        home = workdir / "home"
        home.mkdir()
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "XDG_CACHE_HOME": str(workdir / "cache"),
            "NIX_CONFIG": "",
        }
        self.store = workdir / "store"

    def __call__(self, output: str, apply: str) -> object:
        command = [
            self.nix, "--extra-experimental-features", "nix-command flakes",
            "--store", str(self.store), "--option", "build-users-group", "",
            "eval", "--json", "--no-write-lock-file",
            "--override-input", "nixpkgs", f"path:{STUB}",
            f"path:{self.flake}#{output}", "--apply", apply,
        ]  # fmt: skip
        result = subprocess.run(
            command, env=self.env, capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            pytest.fail(f"nix eval {output} failed ({result.returncode}):\n{result.stderr[-3000:]}")
        return json.loads(result.stdout)
