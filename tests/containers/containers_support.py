"""Helpers for the container tests: the engine (imagetools.engines), images, containers.

Every engine call goes through the tooling's Engine object, so ENGINE (docker|podman),
IMAGE_PREFIX and the client choice (Debian's 20.10 client with BuildKit here) are the build
tooling's own, from the same configuration object.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from imagetools.apps import load_apps
from imagetools.common import ROOT
from imagetools.config import VARIANTS, Config
from imagetools.engines import engine_for
from imagetools.lockfile import read_lock
from shared_support import free_port as free_port  # the registry test imports it from here

CFG = Config.from_env()
ENGINE_OBJ = engine_for(CFG)
ENGINE = CFG.engine
PREFIX = "grocery-test-"
VENV_PYTHON = "/opt/venv/bin/python"
NONROOT = "65532"
APPS: dict[str, dict] = load_apps()
SERVICES = [app for app, spec in APPS.items() if "port" in spec]
IMAGES = [(app, variant) for app in APPS for variant in VARIANTS]


class EngineError(AssertionError):
    """An engine command the test needed failed."""


def engine(args: list[str], timeout: float = 300, check: bool = True) -> str:
    """Run the engine client; return stdout. check=True raises EngineError on failure."""
    result = ENGINE_OBJ.run(args, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise EngineError(
            f"`{ENGINE} {' '.join(args)}` failed ({result.returncode}): "
            f"{(result.stderr or result.stdout).strip()[-2000:]}"
        )
    return result.stdout


def engine_result(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return ENGINE_OBJ.run(args, capture_output=True, text=True, timeout=timeout)


def image_ref(app: str, variant: str) -> str:
    return CFG.tag(app, variant)


def require_image(ref: str) -> None:
    """Fail (never build, never skip) when an image is missing."""
    if not ENGINE_OBJ.exists(ref):
        app, variant = ref.removeprefix(CFG.image_prefix).split(":")
        raise AssertionError(
            f"image {ref} is missing: build it first with `make images` "
            f"(or `make image APP={app} VARIANT={variant}`)"
        )


def remove_prefixed(prefix: str, engine_name: str = ENGINE) -> None:
    """Remove every image tagged <prefix>...: a test's own images, the trainer its `make`
    built for the models included."""
    owner = engine_for(CFG.replace(engine=engine_name))
    owner.remove(*[tag for tag in owner.tags() if tag.startswith(prefix)])


def inspect(ref: str, fmt: str) -> str:
    return engine(["inspect", "--format", fmt, ref]).strip()


def unique_name(label: str) -> str:
    return f"{PREFIX}{label}-{uuid.uuid4().hex[:8]}"


def run_python(ref: str, code: str, *, user: str | None = None, timeout: float = 120) -> str:
    """Run `python -c code` in a throw-away container of the image (no network)."""
    args = ["run", "--rm", "--network=none", "--name", unique_name("py")]
    if user:
        args += ["--user", user]
    return engine([*args, "--entrypoint", VENV_PYTHON, ref, "-c", code], timeout=timeout)


def run_json(ref: str, code: str, *, user: str | None = None) -> dict:
    """Run python that prints one JSON document as its last line; return it."""
    return json.loads(run_python(ref, code, user=user).strip().splitlines()[-1])


def remove_containers(prefix: str = PREFIX) -> None:
    found = engine(["ps", "--all", "--quiet", "--filter", f"name={prefix}"], check=False).split()
    if found:
        engine(["rm", "--force", *found], check=False)


def remove_networks(prefix: str = PREFIX) -> None:
    found = engine(["network", "ls", "--quiet", "--filter", f"name={prefix}"], check=False)
    for network in found.split():
        engine(["network", "rm", network], check=False)


def lock_pins(app: str) -> set[str]:
    """`name==version` of every pin in requirements/<app>.txt (names normalised)."""
    return {f"{pin.name}=={pin.version}" for pin in read_lock(ROOT / "requirements" / f"{app}.txt")}


def multipart(field: str, filename: str, data: bytes, content_type: str) -> tuple[bytes, str]:
    """(body, Content-Type) of a multipart form with one file field."""
    boundary = uuid.uuid4().hex
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
            f'filename="{filename}"\r\nContent-Type: {content_type}\r\n\r\n')  # fmt: skip
    return head.encode() + data + f"\r\n--{boundary}--\r\n".encode(), (
        f"multipart/form-data; boundary={boundary}")  # fmt: skip


def http(url: str, data: bytes | None = None, headers: dict | None = None,
         timeout: float = 10) -> tuple[int, bytes]:  # fmt: skip
    """(status, body) of one request; HTTP errors are returned, not raised."""
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@dataclass
class Service:
    """One running service container and its published loopback URL."""

    app: str
    variant: str
    name: str
    url: str = ""

    def state(self) -> tuple[str, str]:
        """(status, health). An image without a HEALTHCHECK in its config (Podman builds OCI
        images, which have no such field) gets its own probe run: `healthy` or `starting`."""
        fmt = "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}"
        status, _, health = inspect(self.name, fmt).partition(" ")
        health = health.strip()
        if status == "running" and not health:
            probe = engine_result(["exec", self.name, VENV_PYTHON, "/app/healthcheck.py"])
            health = "healthy" if probe.returncode == 0 else "starting"
        return status, health

    def logs(self, lines: int = 30) -> str:
        result = engine_result(["logs", "--tail", str(lines), self.name])
        return f"{result.stdout}{result.stderr}".strip()

    def wait_healthy(self, timeout: float = 120) -> None:
        """Wait for the health status `healthy` (the image's HEALTHCHECK or its probe)."""
        deadline = time.monotonic() + timeout
        status, health = self.state()
        while time.monotonic() < deadline:
            status, health = self.state()
            if health == "healthy":
                return
            if status in ("exited", "dead") or health == "unhealthy":
                break
            time.sleep(1)
        raise AssertionError(
            f"{self.name} ({image_ref(self.app, self.variant)}) is {status}/{health or '-'}, "
            f"not healthy; last log lines:\n{self.logs()}"
        )


def start_service(app: str, variant: str) -> Service:
    """`run -d` one service image with its port published on a random loopback port."""
    ref = image_ref(app, variant)
    require_image(ref)
    port = APPS[app]["port"]
    name = unique_name(f"{app}-{variant}")
    engine(["run", "--detach", "--name", name, "--publish", f"127.0.0.1::{port}", ref])
    service = Service(app, variant, name)
    mapping = engine(["port", name, f"{port}/tcp"]).split()[0]  # 127.0.0.1:49153
    service.url = f"http://{mapping}"
    return service


def copy_repository(name: str) -> Path:
    """A private copy of the repository under build/ (the same file system): the tracked
    files, the trained models, and hard links to the wheelhouse and the base's root fs, so a
    test can edit anything and run `make -C COPY ...` as a user would. Remove it when done."""
    root = ROOT / "build" / f"{name}-{uuid.uuid4().hex[:8]}"
    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True,
                             check=True).stdout.decode().split("\0")  # fmt: skip
    for rel in filter(None, tracked):
        if (ROOT / rel).is_file():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, root / rel)
    if (ROOT / "artifacts").is_dir():
        shutil.copytree(ROOT / "artifacts", root / "artifacts",
                        ignore=shutil.ignore_patterns("data"))  # fmt: skip
    wheelhouse = root / "build" / "wheelhouse"
    wheelhouse.mkdir(parents=True)
    for wheel in (ROOT / "build" / "wheelhouse").glob("*.whl"):
        os.link(wheel, wheelhouse / wheel.name)
    rootfs = ROOT / "build" / "base" / "rootfs.tar"
    if rootfs.is_file():
        (root / "build" / "base").mkdir(parents=True)
        os.link(rootfs, root / "build" / "base" / "rootfs.tar")
    return root


DOCKERD = "/usr/sbin/dockerd"


def client(host: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, DOCKER_HOST=host, DOCKER_BUILDKIT="1")
    return subprocess.run(["/usr/bin/docker", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip


@contextmanager
def second_dockerd(data: Path) -> Iterator[str]:
    """A second, empty Docker engine (its own socket, data root, exec root and bridge; never
    `--bridge=none`: dockerd then deletes the first engine's docker0): yields its DOCKER_HOST."""
    assert Path(DOCKERD).exists(), "dockerd is missing: `make images` installs docker.io"
    name = f"grocery-test-{uuid.uuid4().hex[:8]}"
    run = Path("/run") / name  # short: unix socket paths are limited to 108 bytes
    run.mkdir(parents=True)
    host = f"unix://{run}/docker.sock"
    bridge = f"gt{uuid.uuid4().hex[:6]}"
    for args in (["link", "add", "name", bridge, "type", "bridge"],
                 ["addr", "add", "10.231.77.1/24", "dev", bridge],
                 ["link", "set", bridge, "up"]):  # fmt: skip
        subprocess.run(["ip", *args], check=True, capture_output=True)
    log = (run / "dockerd.log").open("wb")
    proc = subprocess.Popen(
        [DOCKERD, f"--host={host}", f"--data-root={data}", f"--exec-root={run}/exec",
         f"--pidfile={run}/dockerd.pid", f"--bridge={bridge}", "--iptables=false",
         "--ip-masq=false", f"--containerd-namespace={name}",
         f"--containerd-plugins-namespace={name}-plugins"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while client(host, "info").returncode != 0:
            assert proc.poll() is None, (run / "dockerd.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the second dockerd did not answer in 60 s"
            time.sleep(0.5)
        yield host
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        subprocess.run(["umount", "-R", str(run / "exec")], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
        shutil.rmtree(run, ignore_errors=True)
