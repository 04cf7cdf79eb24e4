"""A team adds its own service by data alone, in a copy of the repository.

A throwaway two-route Flask app (a random name that appears nowhere in the repository) gets
a package under src/, requirements/<name>.in, a line in dev.in and one [<name>] table in
apps.toml; then `make lock LOCKS=<name>` (resolved against the wheelhouse: it uses only
packages already locked, so no index is needed) and `make image` for each variant, exactly
as the README's "Add your own service" says. Each image must declare its port (EXPOSE),
turn healthy, answer on the port `run -P` published, and hold exactly the new lock.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from containers_support import (
    CFG,
    ENGINE,
    ROOT,
    VARIANTS,
    Service,
    copy_repository,
    engine,
    http,
    read_lock,
    run_json,
    unique_name,
)

pytestmark = pytest.mark.container

NAME = f"svc{uuid.uuid4().hex[:6]}"
PORT = 8097
WSGI = f'''"""A throwaway service: two routes."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return {{"app": "{NAME}"}}


@app.get("/health")
def health():
    return {{"status": "ok"}}
'''
TABLE = f"""
[{NAME}]
description = "A throwaway service added by a test"
packages = ["{NAME}", "serving"]
port = {PORT}
health = "/health"
command = ["python", "-m", "serving", "{NAME}.wsgi:app", "--interface", "wsgi",
           "--port", "{{port}}"]
"""
DISTS = """
import importlib.metadata as md, json, re
print(json.dumps(sorted({re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower() + "==" + d.version
                         for d in md.distributions()})))
"""


# The venv running these tests when make made it (make test's), else the repository's.
VENV = sys.prefix if Path(sys.prefix, ".installed").is_file() else ROOT / ".venv"


def make(copy: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-C", str(copy), *args, f"ENGINE={ENGINE}", f"VENV={VENV}"],
        env=dict(os.environ, SOURCE_DATE_EPOCH=str(CFG.source_date_epoch), **(env or {})),
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def repo() -> Iterator[Path]:
    """The copy with the new app written, locked and its three images built."""
    assert NAME not in (ROOT / "dockerfiles" / "apps.toml").read_text()
    copy = copy_repository("new-app")
    try:
        (copy / "src" / NAME).mkdir()
        (copy / "src" / NAME / "__init__.py").write_text('"""A throwaway service."""\n')
        (copy / "src" / NAME / "wsgi.py").write_text(WSGI)
        (copy / "requirements" / f"{NAME}.in").write_text("flask\nuvicorn\n")
        with (copy / "requirements" / "dev.in").open("a") as handle:
            handle.write(f"-r {NAME}.in\n")
        with (copy / "dockerfiles" / "apps.toml").open("a") as handle:
            handle.write(TABLE)
        wheelhouse = copy / "build" / "wheelhouse"
        locked = make(copy, "lock", f"LOCKS={NAME}",
                      env={"LOCK_PIP_ARGS": f"--no-index --find-links {wheelhouse}"})  # fmt: skip
        assert locked.returncode == 0, locked.stdout[-2000:] + locked.stderr
        for variant in VARIANTS:
            built = make(copy, "image", f"APP={NAME}", f"VARIANT={variant}")
            assert built.returncode == 0, built.stdout[-3000:] + built.stderr
        yield copy
    finally:
        for variant in VARIANTS:
            engine(["rmi", CFG.tag(NAME, variant)], check=False)
        shutil.rmtree(copy, ignore_errors=True)


@pytest.mark.parametrize("variant", VARIANTS)
def test_new_service_is_healthy_on_its_declared_port_with_its_lock(
    repo: Path, variant: str
) -> None:
    tag = CFG.tag(NAME, variant)
    exposed = json.loads(engine(["image", "inspect", "--format",
                                 "{{json .Config.ExposedPorts}}", tag]))  # fmt: skip
    assert list(exposed) == [f"{PORT}/tcp"]
    locked = sorted(f"{p.name}=={p.version}" for p in read_lock(repo / "requirements" /
                                                                  f"{NAME}.txt"))  # fmt: skip
    assert "flask" in {entry.split("==")[0] for entry in locked}
    assert run_json(tag, DISTS) == locked
    name = unique_name(f"{NAME}-{variant}")
    try:
        engine(["run", "--detach", "--name", name, "--publish-all", tag])  # -P: what EXPOSE says
        service = Service(NAME, variant, name)
        service.wait_healthy()
        port = engine(["port", name, f"{PORT}/tcp"]).split()[0].rpartition(":")[2]
        status, body = http(f"http://127.0.0.1:{port}/")
        assert (status, json.loads(body)) == (200, {"app": NAME})
    finally:
        engine(["rm", "--force", name], check=False)


def test_a_broken_table_is_one_clear_line_per_problem(repo: Path) -> None:
    apps = repo / "dockerfiles" / "apps.toml"
    good = apps.read_text()
    try:
        apps.write_text(good.replace(f"port = {PORT}", 'port = "8097"').replace(
            f'packages = ["{NAME}", "serving"]', 'packages = ["nowhere", "serving"]'))  # fmt: skip
        result = make(repo, "image", f"APP={NAME}", "VARIANT=uv")
    finally:
        apps.write_text(good)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    prefix = "imagetools: error: dockerfiles/apps.toml: "
    errors = [ln.removeprefix(prefix) for ln in result.stderr.splitlines()
              if ln.startswith(prefix)]  # fmt: skip
    assert errors == [
        f"[{NAME}]: package 'nowhere' is not under src/ (no src/nowhere/__init__.py)",
        f"[{NAME}]: port must be a whole number from 1 to 65535, not '8097'",
    ]
