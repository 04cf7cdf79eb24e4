"""Every image (app x variant): non-root, exactly its lock, nothing left from the build."""

from __future__ import annotations

import pytest
from containers_support import APPS, IMAGES, NONROOT, VARIANTS, lock_pins

pytestmark = pytest.mark.container

EACH_IMAGE = pytest.mark.parametrize(
    ("app", "variant"), IMAGES, ids=[f"{a}-{v}" for a, v in IMAGES]
)
SHELLS = ("sh", "bash", "dash")
BUILD_TOOLS = ("pip", "pip3", "uv", "uvx", "gcc", "cc", "apt", "apt-get", "dpkg")
CACHES = ("/home/nonroot/.cache/pip", "/home/nonroot/.cache/uv", "/root/.cache", "/tmp/uv",
          "/tmp/pip")  # fmt: skip


@EACH_IMAGE
def test_runs_as_nonroot(app: str, variant: str, probe: dict) -> None:
    assert probe["config_user"].split(":")[0] == NONROOT
    assert (probe["uid"], probe["euid"], probe["gid"]) == (int(NONROOT),) * 3


@EACH_IMAGE
def test_declares_its_port_if_a_service(app: str, variant: str, probe: dict) -> None:
    """EXPOSE from apps.toml's port (`docker run -P` publishes it); a job declares none."""
    port = APPS[app].get("port")
    assert probe["exposed"] == ([f"{port}/tcp"] if port else [])


@EACH_IMAGE
def test_distributions_equal_the_lock(app: str, variant: str, probe: dict) -> None:
    installed, locked = set(probe["dists"]), lock_pins(app)
    assert installed - locked == set(), "installed but not in the lock"
    assert locked - installed == set(), "locked but not installed"


@pytest.mark.parametrize("app", list(APPS))
@pytest.mark.images(variants=list(VARIANTS))
def test_distributions_identical_across_variants(app: str, probes: dict) -> None:
    found = {}
    for variant in VARIANTS:
        result = probes[(app, variant)]
        if isinstance(result, AssertionError):
            raise result
        found[variant] = result["dists"]
    assert found["pip"] == found["uv"] == found["multistage"]


@EACH_IMAGE
def test_bytecode_is_hash_based_and_matches_every_source(app: str, variant: str,
                                                          probe: dict) -> None:  # fmt: skip
    """layer.py's work, seen in the image: each venv source but the test suites has its
    unchecked hash-based .pyc, whose recorded source hash is that of the shipped bytes."""
    found = probe["bytecode"]
    assert found["missing"] == [], f"{len(found['missing'])} source(s) without bytecode"
    assert found["not_hash_based"] == [] and found["stale"] == []
    assert found["checked"] > 100, found["checked"]


@EACH_IMAGE
def test_no_setuid_or_setgid_files(app: str, variant: str, probe: dict) -> None:
    """Nothing in an image can raise a process's privileges (su, mount, passwd, ...)."""
    assert probe["setid"] == []


@EACH_IMAGE
def test_no_gpu_packages(app: str, variant: str, probe: dict) -> None:
    gpu = [d for d in probe["dists"] if d.startswith(("nvidia-", "triton=="))]
    assert gpu == []
    assert probe["site_nvidia"] == []


@EACH_IMAGE
def test_no_caches_git_tests_or_secrets(app: str, variant: str, probe: dict) -> None:
    assert [path for path in CACHES if probe["exists"][path]] == []
    # RUN --mount leaves empty mount-point folders (/tmp/build/wheels); no file may stay.
    assert probe["tmp_files"] == [], "files left in /tmp"
    assert probe["found"]["git"] == []
    assert probe["found"]["tests"] == [], "test folders copied into /app"
    assert probe["found"]["secrets"] == [], "keys or .env files in /app"


@EACH_IMAGE
def test_no_installer_left(app: str, variant: str, probe: dict) -> None:
    """pip and uv variants: no uv binary anywhere, no pip in /opt/venv."""
    assert probe["which"]["uv"] is None
    assert probe["which"]["uvx"] is None
    assert not probe["exists"]["/opt/venv/bin/uv"]
    assert not probe["exists"]["/usr/local/bin/uv"]
    assert not probe["exists"]["/opt/venv/bin/pip"]
    assert not probe["exists"]["/opt/venv/bin/pip3"]
    assert not probe["pip_module"], "pip importable by the venv's python"


@pytest.mark.parametrize("app", list(APPS))
@pytest.mark.images(variants=["multistage"])
def test_multistage_has_no_shell_tools_or_package_manager(app: str, probes: dict) -> None:
    probe = probes[(app, "multistage")]
    if isinstance(probe, AssertionError):
        raise probe
    on_path = {name: where for name, where in probe["which"].items() if where}
    assert on_path == {}, "found on PATH"
    present = [path for path, exists in probe["exists"].items() if exists]
    assert present == [], "found in the file system"
    assert set(SHELLS + BUILD_TOOLS) <= set(probe["which"]), "the probe looked for every tool"
