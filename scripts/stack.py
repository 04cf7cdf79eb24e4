#!/usr/bin/env python3
"""`make up` / `make down`: the backend and the frontend on a user-defined network.

    python scripts/stack.py up [--variant uv] [--project grocery]  # start, wait until healthy
    python scripts/stack.py down [--project grocery]               # remove containers + network

Docker: dockerfiles/compose.yaml with `docker compose` (v2 plugin) or `docker-compose`
(Debian's 1.29, installed when missing and running as root). Podman (ENGINE=podman) has no
packaged compose, so the same stack is made with plain engine commands. Either way the
network is `<project>-net`, the frontend reaches the backend as `http://backend:8000`, and
every container carries the label `grocery.stack=<project>`.

Environment: ENGINE (docker|podman), BACKEND_PORT (8000), FRONTEND_PORT (8050),
IMAGE_PREFIX (grocery-), STACK_TIMEOUT (90 seconds to become healthy).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from functools import cache
from typing import NoReturn

from common import (
    ROOT,
    ScriptError,
    check_variant,
    engine_command,
    engine_run,
    image_exists,
    main_wrapper,
    note,
    step,
    target_platform,
)  # fmt: skip

COMPOSE_FILE = ROOT / "dockerfiles" / "compose.yaml"
# What compose.yaml sets for every service, as engine flags (the Podman stack).
HARDENING = ["--read-only", "--tmpfs", "/tmp:size=64m", "--cap-drop", "ALL",  # noqa: S108
             "--security-opt", "no-new-privileges", "--pids-limit", "256"]  # fmt: skip
MEMORY = {"backend": "1g", "frontend": "512m"}
LABEL = "grocery.stack"
PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# service -> (container port, health path, port variable, default host port)
SERVICES = {
    "backend": (8000, "/health", "BACKEND_PORT", 8000),
    "frontend": (8050, "/", "FRONTEND_PORT", 8050),
}
LOG_LINES = 20


def network_name(project: str) -> str:
    return f"{project}-net"


def host_port(service: str) -> int:
    _, _, variable, default = SERVICES[service]
    value = os.environ.get(variable) or str(default)
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ScriptError(f"{variable} must be a port number (1-65535), got {value!r}")
    return int(value)


def image_prefix() -> str:
    return os.environ.get("IMAGE_PREFIX", "grocery-")


def check_project(project: str) -> str:
    if not PROJECT_RE.match(project):
        raise ScriptError(
            f"bad project name {project!r}: use lower-case letters, digits, '-' and '_'"
        )
    return project


def stack_env(project: str, variant: str) -> dict[str, str]:
    """The variables dockerfiles/compose.yaml reads."""
    return {
        "VARIANT": variant,
        "PLATFORM": target_platform(),
        "IMAGE_PREFIX": image_prefix(),
        "BACKEND_PORT": str(host_port("backend")),
        "FRONTEND_PORT": str(host_port("frontend")),
        "STACK_PROJECT": project,
        "STACK_NETWORK": network_name(project),
    }


# ---- compose ---------------------------------------------------------------------------------
@cache
def compose_command(engine: str, install: bool = True) -> list[str] | None:
    """`docker compose` when the client has the v2 plugin, else `docker-compose`.

    With neither, Debian's docker-compose is installed when running as root (install=True).
    """
    client, extra_env = engine_command(engine)
    env = dict(os.environ, **extra_env)
    plugin = subprocess.run([*client, "compose", "version"], capture_output=True, env=env,
                            check=False)  # fmt: skip
    if plugin.returncode == 0:
        return [*client, "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if not install:
        return None
    step("installing docker-compose (the docker client has no compose plugin)")
    result = subprocess.run([str(ROOT / "scripts" / "ensure-apt.sh"), "docker-compose"],
                            check=False)  # fmt: skip
    if result.returncode != 0 or not shutil.which("docker-compose"):
        raise ScriptError(
            "no compose here: install the docker compose plugin or Debian's docker-compose "
            "(apt-get install docker-compose)"
        )
    return ["docker-compose"]


def compose(engine: str, project: str, variant: str, args: list[str],
            install: bool = True) -> subprocess.CompletedProcess | None:  # fmt: skip
    command = compose_command(engine, install)
    if command is None:
        return None
    _, extra_env = engine_command(engine)
    env = dict(os.environ, **extra_env, **stack_env(project, variant))
    full = [*command, "--project-name", project, "--file", str(COMPOSE_FILE), *args]
    return subprocess.run(full, env=env, capture_output=True, text=True, check=False)


def _last_error(result: subprocess.CompletedProcess) -> str:
    lines = [ln.strip() for ln in f"{result.stdout}\n{result.stderr}".splitlines() if ln.strip()]
    reason = next((ln for ln in reversed(lines) if "rror" in ln), lines[-1] if lines else "")
    return reason[:300] or f"exit status {result.returncode}"


# ---- plain engine commands (podman) ----------------------------------------------------------
def plain_up(engine: str, project: str, variant: str) -> None:
    net = network_name(project)
    exists = engine_run(engine, ["network", "inspect", net], capture_output=True)
    if exists.returncode != 0:
        step(f"creating network {net}")
        _engine_checked(engine, ["network", "create", net])
    for service, (port, _, _, _) in SERVICES.items():
        name = f"{project}-{service}"
        _engine_checked(engine, ["rm", "--force", name])
        step(f"starting {name} ({image_prefix()}{service}:{variant})")
        args = [
            "run", "--detach", "--name", name, "--network", net, "--network-alias", service,
            "--label", f"{LABEL}={project}", "--label", f"{LABEL}.service={service}",
            "--publish", f"127.0.0.1:{host_port(service)}:{port}",
            *HARDENING, "--memory", MEMORY[service],
        ]  # fmt: skip
        if service == "frontend":
            args += ["--env", "API_URL=http://backend:8000"]
        _engine_checked(engine, [*args, f"{image_prefix()}{service}:{variant}"])


def _engine_checked(engine: str, args: list[str]) -> str:
    result = engine_run(engine, args, capture_output=True, text=True)
    if result.returncode != 0:
        raise ScriptError(f"`{engine} {' '.join(args[:2])}` failed: {_last_error(result)}")
    return result.stdout


# ---- shared ------------------------------------------------------------------------------------
def containers(engine: str, project: str, service: str | None = None) -> list[str]:
    """IDs of the stack's containers (running or not), optionally of one service."""
    args = ["ps", "--all", "--quiet", "--filter", f"label={LABEL}={project}"]
    if service:
        args += ["--filter", f"label={LABEL}.service={service}"]
    result = engine_run(engine, args, capture_output=True, text=True)
    return result.stdout.split()


def container_id(engine: str, project: str, service: str) -> str:
    """The one container of a service of the stack; ScriptError when there is none."""
    found = containers(engine, project, service)
    if not found:
        raise ScriptError(f"no {service} container in stack {project!r}: run `make up`")
    return found[0]


def _state(engine: str, container: str) -> str:
    fmt = "{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{end}}"
    result = engine_run(engine, ["inspect", "--format", fmt, container],
                        capture_output=True, text=True)  # fmt: skip
    return result.stdout.strip() or "missing/"


def _logs(engine: str, container: str) -> str:
    result = engine_run(engine, ["logs", "--tail", str(LOG_LINES), container],
                        capture_output=True, text=True)  # fmt: skip
    lines = f"{result.stdout}{result.stderr}".strip().splitlines()[-LOG_LINES:]
    return " | ".join(ln.strip() for ln in lines if ln.strip()) or "(no output)"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - loopback URL
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def wait_healthy(engine: str, project: str, timeout: float) -> None:
    """Poll every service's health URL on its published port until all answer 200."""
    pending = {
        service: f"http://127.0.0.1:{host_port(service)}{path}"
        for service, (_, path, _, _) in SERVICES.items()
    }
    step(f"waiting for {', '.join(pending)} to answer (at most {timeout:.0f} s)")
    deadline = time.monotonic() + timeout
    while pending:
        for service, url in list(pending.items()):
            container = container_id(engine, project, service)
            status = _state(engine, container)
            if status.startswith(("exited", "dead", "missing")):
                raise ScriptError(
                    f"{service} stopped ({status.rstrip('/')}); last log lines: "
                    f"{_logs(engine, container)}"
                )
            if _answers(url):
                note(f"{service} answers on {url}")
                del pending[service]
        if not pending:
            break
        if time.monotonic() > deadline:
            service = next(iter(pending))
            container = container_id(engine, project, service)
            raise ScriptError(
                f"{service} is not healthy after {timeout:.0f} s (state "
                f"{_state(engine, container).rstrip('/')}, {pending[service]} does not answer); "
                f"last log lines: {_logs(engine, container)}"
            )
        time.sleep(1)


def remove_leftovers(engine: str, project: str) -> None:
    """Remove the stack's containers and network with plain engine commands."""
    found = containers(engine, project)
    if found:
        step(f"removing {len(found)} container(s) of {project}")
        _engine_checked(engine, ["rm", "--force", *found])
    net = network_name(project)
    if engine_run(engine, ["network", "inspect", net], capture_output=True).returncode == 0:
        step(f"removing network {net}")
        _engine_checked(engine, ["network", "rm", net])


# ---- commands ----------------------------------------------------------------------------------
def cmd_up(engine: str, project: str, variant: str, timeout: float) -> int:
    for service in SERVICES:
        ref = f"{image_prefix()}{service}:{variant}"
        if not image_exists(engine, ref):
            raise ScriptError(
                f"image {ref} does not exist: run `make image APP={service} VARIANT={variant}`"
            )
    ports = {service: host_port(service) for service in SERVICES}
    if len(set(ports.values())) != len(ports):
        raise ScriptError(f"BACKEND_PORT and FRONTEND_PORT must differ: {ports}")
    if engine == "podman":
        plain_up(engine, project, variant)
    else:
        command = " ".join(compose_command(engine) or [])
        step(f"{command} up: {project} ({variant} images, network {network_name(project)})")
        result = compose(engine, project, variant, ["up", "--detach", "--no-build"])
        assert result is not None  # install=True raises instead of returning None
        if result.returncode != 0:
            raise ScriptError(f"{command} up failed: {_last_error(result)}")
    wait_healthy(engine, project, timeout)
    step(f"stack {project} is up (`make down` stops it)")
    note(f"frontend: http://127.0.0.1:{ports['frontend']}/")
    note(f"backend:  http://127.0.0.1:{ports['backend']}/docs")
    return 0


def cmd_down(engine: str, project: str) -> int:
    command = None if engine == "podman" else compose_command(engine, install=False)
    if command:
        step(f"{' '.join(command)} down: {project}")
        args = ["down", "--remove-orphans", "--timeout", "10"]
        result = compose(engine, project, "uv", args, install=False)
        if result is not None and result.returncode != 0:
            note(f"compose down said: {_last_error(result)}")
    remove_leftovers(engine, project)
    step(f"stack {project} is down: no container or network left")
    return 0


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"expected seconds between 0 and 3600, got {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line and exit status 1, like every other error."""

    def error(self, message: str) -> NoReturn:
        raise ScriptError(message)


def main() -> int:
    parser = _Parser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", default=os.environ.get("ENGINE", "docker"))
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the stack and wait until it is healthy")
    up.add_argument("--variant", default=os.environ.get("VARIANT", "uv"))
    up.add_argument("--project", default=os.environ.get("COMPOSE_PROJECT", "grocery"))
    up.add_argument("--timeout", type=_seconds, default=os.environ.get("STACK_TIMEOUT", "90"),
                    help="seconds to wait for health (STACK_TIMEOUT, default 90)")  # fmt: skip
    down = sub.add_parser("down", help="remove the stack's containers and network")
    down.add_argument("--project", default=os.environ.get("COMPOSE_PROJECT", "grocery"))
    args = parser.parse_args()
    engine_command(args.engine)  # a clear error for an unknown or missing engine
    project = check_project(args.project)
    if args.command == "up":
        return cmd_up(args.engine, project, check_variant(args.variant), args.timeout)
    return cmd_down(args.engine, project)


if __name__ == "__main__":
    main_wrapper(main)
