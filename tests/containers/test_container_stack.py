"""`make up` / `make down` (imagetools.stack): frontend -> backend by name on the network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
from containers_support import (
    ENGINE,
    ENGINE_OBJ,
    PREFIX,
    ROOT,
    VENV_PYTHON,
    engine,
    http,
    image_ref,
    require_image,
)

from imagetools import stack
from shared_support import free_port

pytestmark = pytest.mark.container

VARIANT = "uv"
READ_STATUS = "print(open('/proc/1/status').read())"
FETCH_BACKEND = (
    "import urllib.request; "
    "print(urllib.request.urlopen('http://backend:8000/health', timeout=5).read().decode())"
)


def stack_py(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`python -m imagetools up|down ...`, as `make up` / `make down` run it."""
    env = dict(os.environ, ENGINE=ENGINE, PYTHONPATH=str(ROOT / "scripts"), **env)
    return subprocess.run([sys.executable, "-m", "imagetools", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip


def service_container(project: str, service: str) -> str:
    found = stack.containers(ENGINE_OBJ, project, service)
    assert len(found) == 1, f"{service} containers of {project}: {found}"
    return found[0]


def leftovers(project: str) -> tuple[list[str], list[str]]:
    containers = engine(["ps", "--all", "--format", "{{.Names}}"]).split()
    networks = engine(["network", "ls", "--format", "{{.Name}}"]).split()
    return [c for c in containers if project in c], [n for n in networks if project in n]


def test_up_serves_frontend_to_backend_by_name_and_down_removes_all() -> None:
    for service in ("backend", "frontend"):
        require_image(image_ref(service, VARIANT))
    project = f"{PREFIX}stack-{uuid.uuid4().hex[:6]}"
    env = {"BACKEND_PORT": str(free_port()), "FRONTEND_PORT": str(free_port())}
    up = stack_py("up", "--variant", VARIANT, "--project", project, env=env)
    try:
        assert up.returncode == 0, f"imagetools up failed:\n{up.stdout}\n{up.stderr}"
        assert f"http://127.0.0.1:{env['FRONTEND_PORT']}/" in up.stdout
        frontend = service_container(project, "frontend")
        networks = engine(["inspect", "--format", "{{json .NetworkSettings.Networks}}", frontend])
        assert list(json.loads(networks)) == [f"{project}-net"]
        # The frontend container resolves `backend` on the user-defined network.
        fetched = engine(["exec", frontend, VENV_PYTHON, "-c", FETCH_BACKEND])
        assert json.loads(fetched)["status"] == "ok"
        status, page = http(f"http://127.0.0.1:{env['FRONTEND_PORT']}/")
        assert status == 200 and b"_dash-config" in page
        status, body = http(f"http://127.0.0.1:{env['BACKEND_PORT']}/health")
        assert status == 200 and json.loads(body)["model_loaded"] is True
        for service, memory in (("backend", 1 << 30), ("frontend", 512 << 20)):
            ident = service_container(project, service)
            host = json.loads(engine(["inspect", "--format", "{{json .HostConfig}}", ident]))
            assert host["ReadonlyRootfs"] is True
            assert (host["Memory"], host["PidsLimit"]) == (memory, 256)
            # Podman adds its own options to the tmpfs (and mounts /run, /var/tmp too).
            assert host["Tmpfs"]["/tmp"].split(",")[0] == "size=64m"
            # cap_drop ALL and no-new-privileges, as the kernel applies them (engines report
            # them differently): nothing left in the bounding set, setuid cannot gain any.
            status = engine(["exec", ident, VENV_PYTHON, "-c", READ_STATUS])
            assert "CapBnd:\t0000000000000000" in status and "NoNewPrivs:\t1" in status
    finally:
        down = stack_py("down", "--project", project, env=env)
    assert down.returncode == 0, down.stderr
    assert all(line.startswith((">> ", "   ")) for line in down.stdout.splitlines())
    assert leftovers(project) == ([], [])
    again = stack_py("down", "--project", project, env=env)
    assert again.returncode == 0, again.stderr
    assert leftovers(project) == ([], [])


def test_up_with_a_missing_image_is_one_clear_line() -> None:
    env = {"IMAGE_PREFIX": "grocery-no-such-image-"}
    result = stack_py("up", "--variant", VARIANT, "--project", f"{PREFIX}missing", env=env)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "grocery-no-such-image-backend:uv does not exist" in result.stderr


def test_up_timeout_names_the_service_and_its_last_log_lines() -> None:
    """A `backend` that never answers on 8000 (the frontend image under the backend's name)."""
    require_image(image_ref("frontend", VARIANT))
    fake = f"{PREFIX}fake-"
    for service in ("backend", "frontend"):
        engine(["tag", image_ref("frontend", VARIANT), f"{fake}{service}:{VARIANT}"])
    project = f"{PREFIX}stack-{uuid.uuid4().hex[:6]}"
    env = {
        "BACKEND_PORT": str(free_port()),
        "FRONTEND_PORT": str(free_port()),
        "IMAGE_PREFIX": fake,
    }
    try:
        up = stack_py("up", "--variant", VARIANT, "--project", project, "--timeout", "8", env=env)
    finally:
        down = stack_py("down", "--project", project, env=env)
        engine(["rmi", f"{fake}backend:{VARIANT}", f"{fake}frontend:{VARIANT}"], check=False)
    assert up.returncode == 1
    assert up.stderr.count("\n") == 1, up.stderr
    assert "imagetools: error: backend is not healthy after 8 s" in up.stderr
    assert "last log lines:" in up.stderr and "Uvicorn running on" in up.stderr  # its log
    assert down.returncode == 0 and leftovers(project) == ([], [])
