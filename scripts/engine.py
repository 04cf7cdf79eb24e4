#!/usr/bin/env python3
"""Make sure a container engine answers: `python scripts/engine.py [--engine docker|podman]`.

An engine that already answers (local, DOCKER_HOST or a docker context) is used as it is and
never touched. With none, on Debian/Ubuntu as root, it installs Debian's docker.io (Engine
20.10 with BuildKit) and starts dockerd, saying so; elsewhere it explains what to do.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import time
from pathlib import Path

from common import ROOT, ScriptError, engine_command, engine_run, main_wrapper, note, step

DOCKERD_LOG = Path(os.environ.get("DOCKERD_LOG", "/var/log/grocery-dockerd.log"))


def answers(engine: str) -> bool:
    try:
        result = engine_run(engine, ["info"], capture_output=True, timeout=30)
    except (ScriptError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def install(packages: list[str]) -> None:
    subprocess.run([str(ROOT / "scripts" / "ensure-apt.sh"), *packages], check=True)


def ensure_docker() -> None:
    try:
        engine_command.cache_clear()
        engine_command("docker")
        has_client = True
    except ScriptError:
        has_client = False
    if has_client and answers("docker"):
        where = os.environ.get("DOCKER_HOST") or "the local socket or current docker context"
        note(f"docker engine answers at {where}; using it as it is")
        return
    if os.environ.get("DOCKER_HOST"):
        raise ScriptError(f"DOCKER_HOST={os.environ['DOCKER_HOST']} does not answer")
    if os.geteuid() != 0 or not Path("/usr/bin/apt-get").exists():
        raise ScriptError(
            "no docker engine answers; start one (or set DOCKER_HOST), or run as root on "
            "Debian/Ubuntu so `make images` can install docker.io, or use ENGINE=podman"
        )
    step("no docker engine answers: installing Debian's docker.io and starting dockerd")
    install(["docker.io"])
    engine_command.cache_clear()
    if not answers("docker"):
        log = DOCKERD_LOG.open("ab")
        subprocess.Popen(["/usr/sbin/dockerd"], stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 90
        while not answers("docker"):
            if time.monotonic() > deadline:
                raise ScriptError(f"dockerd did not answer within 90 s; see {DOCKERD_LOG}")
            time.sleep(1)
    note(f"dockerd started (log: {DOCKERD_LOG}); it stops with this machine's session")


def ensure_podman() -> None:
    if not shutil.which("podman"):
        step("podman is missing: installing Debian's podman")
        install(["podman"])
        engine_command.cache_clear()
    if not answers("podman"):
        raise ScriptError("podman is installed but `podman info` fails")
    note("podman answers")


def ensure(engine: str) -> None:
    """Make sure ENGINE answers, installing and starting it on a fresh Debian machine."""
    step(f"checking the container engine ({engine})")
    if engine == "podman":
        ensure_podman()
    elif engine == "docker":
        ensure_docker()
    else:
        raise ScriptError(f"unknown ENGINE {engine!r}; choose docker or podman")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", default=os.environ.get("ENGINE", "docker"))
    ensure(parser.parse_args().engine)
    return 0


if __name__ == "__main__":
    main_wrapper(main)
