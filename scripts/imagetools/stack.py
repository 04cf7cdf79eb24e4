"""`make up` / `make down`: the backend and the frontend of dockerfiles/compose.yaml.

    python -m imagetools up [--variant uv] [--project grocery] [--timeout 90]
    python -m imagetools down [--project grocery]

Both engines run compose.yaml (which holds the hardening) with their compose command
(engines.py). The network is `<project>-net`, the frontend reaches the backend as
http://backend:8000, every container carries the label grocery.stack=<project>. `up` waits
until each service answers on its published port. Environment: BACKEND_PORT and
FRONTEND_PORT (apps.toml's ports), IMAGE_PREFIX, STACK_TIMEOUT (90 seconds).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import time
import urllib.request

from .apps import app_spec, check_variant
from .common import ROOT, ScriptError, note, step
from .config import Config
from .engines import Engine, engine_for

COMPOSE_FILE = ROOT / "dockerfiles" / "compose.yaml"
SERVICES = ("backend", "frontend")
LABEL = "grocery.stack"
PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
LOG_LINES = 20
ERROR_RE = re.compile(r"rror[: ]")


def host_port(service: str) -> int:
    variable = f"{service.upper()}_PORT"
    value = os.environ.get(variable) or str(app_spec(service)["port"])
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ScriptError(f"{variable} must be a port number (1-65535), got {value!r}")
    return int(value)


def compose(engine: Engine, project: str, variant: str, *args: str) -> subprocess.CompletedProcess:
    """Run the engine's compose command on compose.yaml with the variables it reads."""
    command = engine.compose()
    step(f"{' '.join(command)} {args[0]}: {project} (network {project}-net)")
    cfg, (_, client_env) = engine.cfg, engine.command
    env = dict(os.environ, **client_env, VARIANT=variant, PLATFORM=cfg.platform,
               IMAGE_PREFIX=cfg.image_prefix, STACK_PROJECT=project,
               STACK_NETWORK=f"{project}-net",
               **{f"{s.upper()}_PORT": str(host_port(s)) for s in SERVICES})  # fmt: skip
    full = [*command, "--project-name", project, "--file", str(COMPOSE_FILE), *args]
    return subprocess.run(full, env=env, capture_output=True, text=True, check=False)


def _last_error(result: subprocess.CompletedProcess) -> str:
    lines = [ln.strip() for ln in f"{result.stdout}\n{result.stderr}".splitlines() if ln.strip()]
    # "Error: x", "ERROR: for backend x", "Error response from daemon: x" (not "errors while")
    reason = next((ln for ln in reversed(lines) if ERROR_RE.search(ln)), lines[-1] if lines else "")
    return reason[:300] or f"exit status {result.returncode}"


def containers(engine: Engine, project: str, service: str | None = None) -> list[str]:
    """IDs of the stack's containers (running or not), optionally of one service."""
    args = ["ps", "--all", "--quiet", "--filter", f"label={LABEL}={project}"]
    if service:
        args += ["--filter", f"label={LABEL}.service={service}"]
    return engine.output(args).split()


def _state(engine: Engine, container: str) -> str:
    result = engine.run(["inspect", "--format", "{{.State.Status}}", container],
                        capture_output=True, text=True)  # fmt: skip
    return result.stdout.strip() or "missing"


def _logs(engine: Engine, container: str) -> str:
    result = engine.run(["logs", "--tail", str(LOG_LINES), container],
                        capture_output=True, text=True)  # fmt: skip
    lines = f"{result.stdout}{result.stderr}".strip().splitlines()[-LOG_LINES:]
    return " | ".join(ln.strip() for ln in lines if ln.strip()) or "(no output)"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - loopback URL
            return response.status == 200
    except OSError:
        return False


def wait_healthy(engine: Engine, ids: dict[str, str], timeout: float) -> None:
    """Poll every service's health URL on its published port until all answer 200."""
    urls = {s: f"http://127.0.0.1:{host_port(s)}{app_spec(s)['health']}" for s in SERVICES}
    step(f"waiting for {', '.join(urls)} to answer (at most {timeout:.0f} s)")
    deadline = time.monotonic() + timeout
    while True:
        for service, url in list(urls.items()):
            state = _state(engine, ids[service])
            if state in ("exited", "dead", "missing"):
                raise ScriptError(f"{service} stopped ({state}); last log lines: "
                                  f"{_logs(engine, ids[service])}")  # fmt: skip
            if _answers(url):
                note(f"{service} answers on {url}")
                del urls[service]
        if not urls:
            return
        if time.monotonic() > deadline:
            service, url = next(iter(urls.items()))
            raise ScriptError(
                f"{service} is not healthy after {timeout:.0f} s ({url} does not answer, state "
                f"{_state(engine, ids[service])}); last log lines: {_logs(engine, ids[service])}"
            )
        time.sleep(1)


def up(engine: Engine, project: str, variant: str, timeout: float) -> None:
    for service in SERVICES:
        ref = engine.cfg.tag(service, variant)
        if not engine.exists(ref):
            raise ScriptError(
                f"image {ref} does not exist: run `make image APP={service} VARIANT={variant}`"
            )
    ports = {service: host_port(service) for service in SERVICES}
    if len(set(ports.values())) != len(ports):
        raise ScriptError(f"BACKEND_PORT and FRONTEND_PORT must differ: {ports}")
    result = compose(engine, project, variant, "up", "--detach", "--no-build", "--force-recreate")
    # podman-compose 1.0.3 exits 0 whatever happened: look at what it left.
    ids = {service: (containers(engine, project, service) or [""])[0] for service in SERVICES}
    if result.returncode or any(_state(engine, c) in ("missing", "created") for c in ids.values()):
        raise ScriptError(f"compose up failed: {_last_error(result)}")
    wait_healthy(engine, ids, timeout)
    step(f"stack {project} is up (`make down` stops it)")
    note(f"frontend: http://127.0.0.1:{ports['frontend']}/")
    note(f"backend:  http://127.0.0.1:{ports['backend']}/docs")


def down(engine: Engine, project: str) -> None:
    """compose down, then remove what it left (podman-compose 1.0.3 leaves the network)."""
    network = f"{project}-net"

    def has_network() -> bool:
        return engine.run(["network", "inspect", network], capture_output=True).returncode == 0

    if containers(engine, project) or has_network():  # else no compose (nor its install)
        result = compose(engine, project, "uv", "down", "--timeout", "10")
        if result.returncode:
            note(f"compose down said: {_last_error(result)}")
        found = containers(engine, project)
        if found:
            step(f"removing {len(found)} container(s) of {project}")
            engine.output(["rm", "--force", *found])
        if has_network():
            step(f"removing network {network}")
            engine.output(["network", "rm", network])
    step(f"stack {project} is down: no container or network left")


def main(cfg: Config, command: str, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"imagetools {command}")
    parser.add_argument("--project", default=os.environ.get("COMPOSE_PROJECT", "grocery"))
    if command == "up":
        parser.add_argument("--variant", default=os.environ.get("VARIANT", "uv"))
        timeout = os.environ.get("STACK_TIMEOUT", "90")
        parser.add_argument("--timeout", type=float, default=timeout, help="seconds to wait")
    args = parser.parse_args(argv)
    if not PROJECT_RE.match(args.project):
        raise ScriptError(f"bad project name {args.project!r}: use a-z, 0-9, '-' and '_'")
    engine = engine_for(cfg)
    if command == "down":
        down(engine, args.project)
    elif not 0 < args.timeout <= 3600:
        raise ScriptError(f"--timeout must be seconds between 0 and 3600, not {args.timeout}")
    else:
        up(engine, args.project, check_variant(args.variant), args.timeout)
    return 0
