"""Fixtures for the container tests: leftovers removed, image probes, running services.

The images are built by `make images` before the tests run; a missing image fails its tests
with the command to build it. Containers are named `grocery-test-...` and always removed.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType

import pytest
from containers_support import (
    ENGINE_OBJ,
    IMAGES,
    Service,
    engine,
    image_ref,
    remove_containers,
    remove_networks,
    require_image,
    run_json,
    start_service,
)

from imagetools.common import ROOT
from shared_support import chosen_images


# What a process inside the image reports about itself and its environment (default user).
def _layer_script() -> ModuleType:
    """dockerfiles/buildtime/layer.py, which compiles the images' bytecode."""
    path = ROOT / "dockerfiles" / "buildtime" / "layer.py"
    spec = importlib.util.spec_from_file_location("dockerfiles_layer_for_probe", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PROBE_USER = r"""
import importlib.metadata as md, importlib.util, json, os, re, shutil
names = ["pip", "pip3", "uv", "uvx", "gcc", "cc", "apt", "apt-get", "dpkg", "sh", "bash", "dash"]
dists = sorted({
    re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower() + "==" + d.version
    for d in md.distributions()
})
# Bytecode: every venv source but the skipped ones (layer.py's SKIP) has an unchecked
# hash-based .pyc (PEP 552) made from its current bytes.
bytecode = {"missing": [], "not_hash_based": [], "stale": [], "checked": 0, "skipped": 0}
for top, _, files in os.walk("/opt/venv/lib"):
    for name in sorted(f for f in files if f.endswith(".py")):
        source = os.path.join(top, name)
        if re.search(SKIP, source):
            bytecode["skipped"] += 1
            continue
        try:
            with open(importlib.util.cache_from_source(source), "rb") as handle:
                head = handle.read(16)
        except FileNotFoundError:
            bytecode["missing"].append(source)
            continue
        with open(source, "rb") as handle:
            digest = importlib.util.source_hash(handle.read())
        if int.from_bytes(head[4:8], "little") != 1:
            bytecode["not_hash_based"].append(source)
        elif head[8:16] != digest:
            bytecode["stale"].append(source)
        else:
            bytecode["checked"] += 1
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "euid": os.geteuid(),
    "dists": dists, "bytecode": bytecode,
    "which": {n: shutil.which(n) for n in names},
    "pip_module": importlib.util.find_spec("pip") is not None,
}))
""".replace("SKIP", repr(_layer_script().SKIP.pattern))

# What is on the file system; runs as root so that no unreadable folder hides anything.
PROBE_FS = r"""
import glob, json, os
paths = ["/bin/sh", "/bin/bash", "/bin/dash", "/usr/bin/sh", "/usr/bin/bash", "/usr/bin/dash",
         "/usr/bin/apt", "/usr/bin/apt-get", "/usr/bin/dpkg", "/usr/bin/gcc", "/usr/bin/cc",
         "/opt/venv/bin/pip", "/opt/venv/bin/pip3", "/opt/venv/bin/uv", "/usr/local/bin/uv",
         "/home/nonroot/.cache/pip", "/home/nonroot/.cache/uv", "/root/.cache", "/tmp/uv",
         "/tmp/pip"]
found = {"git": [], "tests": [], "secrets": []}
for top in ("/app", "/opt", "/home", "/root", "/tmp", "/"):
    for dirpath, dirnames, filenames in os.walk(top):
        if top == "/":
            dirnames[:] = []
        if ".git" in dirnames or ".git" in filenames:
            found["git"].append(dirpath)
for dirpath, dirnames, filenames in os.walk("/app"):
    found["tests"] += [os.path.join(dirpath, d) for d in dirnames if d == "tests"]
    found["secrets"] += [os.path.join(dirpath, f) for f in filenames
                         if f.endswith((".pem", ".key")) or f == ".env" or f.startswith(".env.")]
tmp_files = [os.path.join(d, f) for d, _, files in os.walk("/tmp") for f in files]
setid = []
for dirpath, dirnames, filenames in os.walk("/"):
    if dirpath == "/":
        dirnames[:] = [d for d in dirnames if d not in ("proc", "sys", "dev")]
    for name in filenames:
        path = os.path.join(dirpath, name)
        if not os.path.islink(path) and os.lstat(path).st_mode & 0o6000:
            setid.append(path)
print(json.dumps({
    "exists": {p: os.path.lexists(p) for p in paths},
    "tmp_files": tmp_files,
    "setid": setid,
    "found": found,
    "site_nvidia": glob.glob("/opt/venv/lib/python3*/site-packages/nvidia*")
    + glob.glob("/opt/venv/lib/python3*/site-packages/triton*"),
}))
"""


@pytest.fixture(scope="session", autouse=True)
def _no_leftovers() -> Iterator[None]:
    """Remove `grocery-test-*` containers and networks a crashed run left, before and after."""
    assert ENGINE_OBJ.command  # a clear error when no usable client exists
    remove_containers()
    remove_networks()
    yield
    remove_containers()
    remove_networks()
    # The mutation and repro tests leave build-cache records of every build they made:
    # keep BuildKit's cache bounded (BUILD_CACHE_KEEP, 20GB by default), as bench and repro do.
    ENGINE_OBJ.trim_cache()


@pytest.fixture(scope="session")
def probes() -> dict[tuple[str, str], dict]:
    """Both probes of every present image, run in parallel once per session.

    A missing image maps to an AssertionError that its tests raise.
    """

    def probe(job: tuple[str, str]) -> dict | AssertionError:
        ref = image_ref(*job)
        try:
            require_image(ref)
            result = run_json(ref, PROBE_USER)
            result.update(run_json(ref, PROBE_FS, user="0:0"))
            result["config_user"] = engine(["image", "inspect", "--format",
                                            "{{.Config.User}}", ref]).strip()  # fmt: skip
            exposed = engine(["image", "inspect", "--format", "{{json .Config.ExposedPorts}}",
                              ref]).strip()  # fmt: skip
            result["exposed"] = sorted(json.loads(exposed) or {})
        except AssertionError as exc:
            return exc
        return result

    chosen = [job for job in IMAGES if job in chosen_images()]  # APPS x VARIANTS
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(chosen, pool.map(probe, chosen), strict=True))


@pytest.fixture
def probe(probes: dict, request: pytest.FixtureRequest) -> dict:
    """The probe of the test's (app, variant) parameter."""
    result = probes[(request.node.callspec.params["app"], request.node.callspec.params["variant"])]
    if isinstance(result, AssertionError):
        raise result
    return result


@pytest.fixture(scope="session")
def services(request: pytest.FixtureRequest) -> Iterator[dict[tuple[str, str], Service]]:
    """One running container per service image the session's tests ask for, started at once."""
    wanted = sorted({
        (item.callspec.params["app"], item.callspec.params["variant"])
        for item in request.session.items
        if "service" in getattr(item, "fixturenames", ())
        and hasattr(item, "callspec") and "app" in item.callspec.params
    })  # fmt: skip
    started: dict[tuple[str, str], Service | AssertionError] = {}

    def start(job: tuple[str, str]) -> None:
        try:
            started[job] = start_service(*job)
        except AssertionError as exc:
            started[job] = exc

    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(start, wanted))
        yield started  # type: ignore[misc]
    finally:
        names = [s.name for s in started.values() if isinstance(s, Service)]
        if names:
            engine(["rm", "--force", *names], check=False)


@pytest.fixture
def service(services: dict, request: pytest.FixtureRequest) -> Service:
    """The healthy running container of the test's (app, variant)."""
    params = request.node.callspec.params
    found = services[(params["app"], params["variant"])]
    if isinstance(found, AssertionError):
        raise found
    found.wait_healthy()
    return found
