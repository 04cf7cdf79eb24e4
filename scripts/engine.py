#!/usr/bin/env python3
"""Make sure a container engine answers: `python scripts/engine.py [--engine docker|podman]`.

An engine that already answers (local, DOCKER_HOST or a docker context) is used as it is and
never touched. With none, on Debian/Ubuntu as root, it installs Debian's docker.io (Engine
20.10 with BuildKit) and starts dockerd, saying so; elsewhere it explains what to do.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import (
    ROOT,
    ScriptError,
    engine_command,
    engine_run,
    main_wrapper,
    note,
    step,
    target_platform,
)  # fmt: skip

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


# Rootful Podman raises every container's open-files and process limits to these values
# unless containers.conf sets others; where this process may not raise its own limits that
# far (some VMs and CI sandboxes), every `podman run` fails with "error setting rlimit".
PODMAN_RLIMITS = {"nofile": (resource.RLIMIT_NOFILE, 1_048_576),
                  "nproc": (resource.RLIMIT_NPROC, 4_194_304)}  # fmt: skip
PODMAN_ULIMITS_CONF = Path("/etc/containers/containers.conf.d/50-grocery-ulimits.conf")


def _can_raise(limit: int, value: int) -> bool:
    code = f"import resource; resource.setrlimit({limit}, ({value}, {value}))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def ensure_podman_ulimits() -> None:
    """Where Podman's default limits cannot be set, give containers ones that can."""
    if all(_can_raise(*limit) for limit in PODMAN_RLIMITS.values()):
        return
    if PODMAN_ULIMITS_CONF.exists() or os.geteuid() != 0:
        return
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    PODMAN_ULIMITS_CONF.parent.mkdir(parents=True, exist_ok=True)
    PODMAN_ULIMITS_CONF.write_text(
        "# Written by grocery-ml-containers (scripts/engine.py): this machine does not let\n"
        "# Podman raise containers' limits to its defaults (1048576 files, 4194304 processes).\n"
        f'[containers]\ndefault_ulimits = ["nofile={nofile}:{nofile}", "nproc=4096:4096"]\n'
    )
    note(f"this machine caps resource limits below Podman's defaults: wrote {PODMAN_ULIMITS_CONF}")


def ensure_podman() -> None:
    if not shutil.which("podman"):
        step("podman is missing: installing Debian's podman")
        install(["podman"])
        engine_command.cache_clear()
    if not answers("podman"):
        raise ScriptError("podman is installed but `podman info` fails")
    ensure_podman_ulimits()
    note("podman answers")


# What engines call their architecture, as a platform's architecture.
ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
INFO_ARCH = {"docker": "{{.Architecture}}", "podman": "{{.Host.Arch}}"}


def note_emulation(engine: str, platform: str) -> None:
    """One line when the engine's own architecture is not the images' platform."""
    result = engine_run(engine, ["info", "--format", INFO_ARCH[engine]], capture_output=True,
                        text=True, timeout=30)  # fmt: skip
    native = result.stdout.strip()
    wanted = platform.split("/")[1]
    if native and ARCHES.get(native, native) != wanted:
        note(
            f"this {engine} engine runs on {native}: the images are built and run for "
            f"{platform} under emulation (several times slower). If a step fails with "
            "'exec format error', turn emulation on: Docker Desktop has it built in (Apple "
            "silicon: Settings > General > Rosetta); on Linux install qemu-user-static"
        )


def ensure(engine: str) -> None:
    """Make sure ENGINE answers, installing and starting it on a fresh Debian machine."""
    platform = target_platform()  # an unsupported PLATFORM stops here, before anything runs
    step(f"checking the container engine ({engine})")
    if engine == "podman":
        ensure_podman()
    elif engine == "docker":
        ensure_docker()
    else:
        raise ScriptError(f"unknown ENGINE {engine!r}; choose docker or podman")
    note_emulation(engine, platform)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", default=os.environ.get("ENGINE", "docker"))
    ensure(parser.parse_args().engine)
    return 0


if __name__ == "__main__":
    main_wrapper(main)
