"""`python -m imagetools COMMAND [options]` (with scripts/ on PYTHONPATH, as Make runs it).

The configuration comes from the environment (Make exports its variables): see config.py.
"""

from __future__ import annotations

import importlib
import subprocess
import sys

from .common import PROG, ScriptError
from .config import Config

# command -> (module, what it does)
COMMANDS = {
    "config": ("__main__", "print the configuration Make's variables give"),
    "engine": ("engines", "make sure the engine answers (installs it on a fresh Debian)"),
    "base": ("baseimage", "resolve the base image: pull BASE_IMAGE or build LOCAL_BASE"),
    "base-official": ("officialbase", "build OFFICIAL_BASE: python:3.11-slim's layout, offline"),
    "base-digest": ("baseimage", "pin BASE_IMAGE's tag at its registry's current digest"),
    "wheels": ("wheelhouse", "fetch every locked wheel into build/wheelhouse"),
    "image": ("images", "build one image: image APP VARIANT"),
    "train": ("images", "run the trainer image into ARTIFACTS"),
    "context": ("images", "assemble one image's build context: context APP [VARIANT]"),
    "forget-missing": ("images", "drop Make's stamps of images that are gone"),
    "clean": ("images", "remove the images of apps.toml"),
    "makefile": ("makefile", "print the per-image Make rules (build/apps.mk)"),
    "lock": ("relock", "write or check requirements/*.txt"),
    "registry": ("registry", "start a local registry (docker-registry) on REGISTRY_ADDR"),
    "registry-down": ("registry", "stop it (its data stays in build/registry)"),
    "push": ("registry", "push the images to REGISTRY; record them in build/published.json"),
    "sign": ("signing", "sign the published images (GPG); write the policy that checks them"),
    "pull": ("signing", "pull the published images by digest, refusing unsigned ones"),
    "explain": ("explain", "why each step of an image's last build re-ran: explain APP VARIANT"),
    "up": ("stack", "start backend + frontend"),
    "down": ("stack", "stop the stack"),
    "sbom": ("sbom", "write a CycloneDX SBOM per image"),
    "verify-repro": ("repro", "build each image twice and compare"),
    "verify-published": ("repro", "rebuild the published images elsewhere and compare"),
    "bench-builds": ("bench_builds", "benchmark the builds"),
    "bench-report": ("bench_report", "render a bench-builds result"),
    "bench-serve": ("bench_serve", "load-test the backend"),
}


def main(cfg: Config, command: str, argv: list[str]) -> int:
    """`config`: one line per setting."""
    for key, value in vars(cfg).items():
        print(f"{key.upper()}={value}")
    return 0


def run(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        width = max(map(len, COMMANDS))
        print(f"usage: python -m {PROG} COMMAND [options]\n", file=sys.stderr)
        for name, (_, text) in COMMANDS.items():
            print(f"  {name:<{width}}  {text}", file=sys.stderr)
        return 2
    command, *rest = argv
    module = sys.modules[__name__] if COMMANDS[command][0] == "__main__" else \
        importlib.import_module(f".{COMMANDS[command][0]}", __package__)  # fmt: skip
    cfg = Config.from_env()
    if command == "engine":
        from .engines import engine_for

        engine_for(cfg).ensure()
        return 0
    return module.main(cfg, command, rest)


def entry() -> None:
    """Run a command; turn ScriptError and Ctrl-C into readable lines and an exit status."""
    try:
        sys.exit(run(sys.argv[1:]))
    except ScriptError as exc:
        for line in str(exc).splitlines():
            print(f"{PROG}: error: {line}", file=sys.stderr)
        sys.exit(1)
    except subprocess.CalledProcessError as exc:
        command = " ".join(str(part) for part in exc.cmd)
        print(f"{PROG}: error: `{command}` failed (exit {exc.returncode})", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    entry()
