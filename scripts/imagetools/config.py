"""The one configuration object: built once from Make's (or the shell's) variables.

Every pinned value has its source of truth here. Copies that must exist elsewhere (the
Dockerfiles' `ARG BASE_IMAGE` default, so that `docker build -f` works by hand) are kept
equal by tests/scripts/test_scripts_config.py.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .common import ROOT, ScriptError

DEFAULT_BASE = (
    "python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7"
)
DEFAULT_LOCAL_BASE = "grocery-base:bookworm-py3.11"
# `make base-official`: python:3.11-slim's layout built offline (Debian 13, /usr/local CPython).
DEFAULT_OFFICIAL_BASE = "grocery-base-official:trixie-py3.11"
# PyTorch's CPU wheels are not on PyPI: pip finds them on this page.
TORCH_FIND_LINKS = "https://download.pytorch.org/whl/cpu/torch/"
VCS_URL = "https://github.com/grocery-ml/grocery-ml-containers"
ENGINES = ("docker", "podman")
VARIANTS = ("pip", "uv", "multistage")
# The images' platform: the locks and the wheelhouse hold CPython 3.11 wheels for Linux
# x86_64. Other hosts (Apple silicon) build and run it under emulation.
PLATFORMS = ("linux/amd64",)


def _git(*args: str) -> str:
    try:
        result = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                                check=False)  # fmt: skip
    except FileNotFoundError:  # no git: SOURCE_DATE_EPOCH and REVISION must be given
        return ""
    return result.stdout.strip()


def last_change(paths: tuple[str, ...], default: int) -> int:
    """The time of the last commit that changed any of paths (default: no git, no history)."""
    found = _git("log", "-1", "--format=%ct", "--", *paths)
    return int(found) if found.isdigit() else default


@dataclass(frozen=True)
class Config:
    """What a build needs to know, from the environment (`from_env`), never read again."""

    engine: str = "docker"
    platform: str = PLATFORMS[0]
    image_prefix: str = "grocery-"
    build_dir: Path = ROOT / "build"
    artifacts: Path = ROOT / "artifacts"
    base_image: str = DEFAULT_BASE
    local_base: str = DEFAULT_LOCAL_BASE
    official_base: str = DEFAULT_OFFICIAL_BASE
    trainer_variant: str = "uv"
    source_date_epoch: int = 0
    revision: str = "unknown"
    registry: str = ""
    sign_key: str = ""  # a GPG fingerprint (GNUPGHOME); none: a test key under build/signing
    signatures: str = ""  # where signatures are stored (a folder or a URL); none: build/
    cache_repo: str = ""  # a registry repository a fleet shares its layer cache through
    torch_find_links: str = TORCH_FIND_LINKS
    podman_format: str = "oci"  # docker keeps HEALTHCHECK, with two per-build fields
    vcs_url: str = VCS_URL

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ, **overrides) -> Config:
        """Read ENGINE, PLATFORM, IMAGE_PREFIX, BUILD_DIR, ARTIFACTS, BASE_IMAGE, LOCAL_BASE,
        OFFICIAL_BASE, TRAINER_VARIANT, SOURCE_DATE_EPOCH (else the last commit's time),
        REVISION (else HEAD), REGISTRY, SIGN_KEY, SIGNATURES, CACHE_REPO, TORCH_FIND_LINKS,
        PODMAN_FORMAT and VCS_URL; check them."""
        head = _git("log", "-1", "--format=%ct %H").split() or ["0", "unknown"]
        epoch = env.get("SOURCE_DATE_EPOCH") or head[0]
        if not epoch.isdigit():
            raise ScriptError(f"SOURCE_DATE_EPOCH must be whole seconds, not {epoch!r}")
        values = {
            "engine": env.get("ENGINE"), "platform": env.get("PLATFORM"),
            "image_prefix": env.get("IMAGE_PREFIX"), "base_image": env.get("BASE_IMAGE"),
            "local_base": env.get("LOCAL_BASE"), "official_base": env.get("OFFICIAL_BASE"),
            "trainer_variant": env.get("TRAINER_VARIANT"),
            "registry": env.get("REGISTRY"), "sign_key": env.get("SIGN_KEY"),
            "signatures": env.get("SIGNATURES"), "torch_find_links": env.get("TORCH_FIND_LINKS"),
            "cache_repo": env.get("CACHE_REPO"),
            "podman_format": env.get("PODMAN_FORMAT"), "vcs_url": env.get("VCS_URL"),
            "revision": env.get("REVISION") or head[1],
            "build_dir": Path(env["BUILD_DIR"]).resolve() if env.get("BUILD_DIR") else None,
            "artifacts": Path(env["ARTIFACTS"]).resolve() if env.get("ARTIFACTS") else None,
            "source_date_epoch": int(epoch),
        }  # fmt: skip
        values = {key: value for key, value in values.items() if value not in (None, "")}
        return cls(**(values | overrides)).checked()

    def replace(self, **changes) -> Config:
        return dataclasses.replace(self, **changes).checked()

    def checked(self) -> Config:
        if self.engine not in ENGINES:
            raise ScriptError(f"unknown ENGINE {self.engine!r}; choose docker or podman")
        if self.platform not in PLATFORMS:
            raise ScriptError(
                f"PLATFORM={self.platform} is not covered by the locks and the wheelhouse "
                f"(CPython 3.11 wheels for {', '.join(PLATFORMS)}): build {PLATFORMS[0]}, "
                "which arm64 hosts (Apple silicon) run under emulation"
            )
        if self.trainer_variant not in VARIANTS:
            raise ScriptError(f"unknown TRAINER_VARIANT {self.trainer_variant!r}; choose from: "
                              f"{', '.join(VARIANTS)}")  # fmt: skip
        return self

    def tag(self, app: str, variant: str) -> str:
        return f"{self.image_prefix}{app}:{variant}"

    @property
    def wheelhouse(self) -> Path:
        return self.build_dir / "wheelhouse"

    def stamp(self, app: str, variant: str) -> Path:
        """Make's record that an image is built: its ID (build/stamps/<engine>/<tag>)."""
        return self.build_dir / "stamps" / self.engine / f"{self.image_prefix}{app}-{variant}"

    @property
    def base_stamp(self) -> Path:
        """The base the images of IMAGE_PREFIX are built on (per prefix: another set of images
        on another base, such as `make test-official`'s, leaves this set's stamp alone)."""
        return self.build_dir / "stamps" / self.engine / f"{self.image_prefix}base"
