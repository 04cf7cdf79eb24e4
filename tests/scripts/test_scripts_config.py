"""imagetools.config: the one configuration object, read from Make's variables, and the copies
of its pinned values that must live elsewhere (the Dockerfiles, Make's apps.mk)."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from imagetools import config
from imagetools.apps import load_apps
from imagetools.common import ROOT, ScriptError
from imagetools.config import Config


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip


# One value per field, none of them the default: each variable is read into its field.
VALUES = {
    "engine": ("ENGINE", "podman", "podman"),
    "platform": ("PLATFORM", "linux/amd64", "linux/amd64"),  # the only one the locks cover
    "image_prefix": ("IMAGE_PREFIX", "ci-", "ci-"),
    "build_dir": ("BUILD_DIR", "elsewhere/build", Path("elsewhere/build").resolve()),
    "artifacts": ("ARTIFACTS", "/tmp/models", Path("/tmp/models").resolve()),
    "base_image": ("BASE_IMAGE", "debian:bookworm-slim", "debian:bookworm-slim"),
    "local_base": ("LOCAL_BASE", "my-base:1", "my-base:1"),
    "official_base": ("OFFICIAL_BASE", "my-official:2", "my-official:2"),
    "trainer_variant": ("TRAINER_VARIANT", "multistage", "multistage"),
    "source_date_epoch": ("SOURCE_DATE_EPOCH", "1234567890", 1_234_567_890),
    "revision": ("REVISION", "deadbeef", "deadbeef"),
    "registry": ("REGISTRY", "ghcr.io/someone", "ghcr.io/someone"),
    "sign_key": ("SIGN_KEY", "0123456789ABCDEF", "0123456789ABCDEF"),
    "signatures": ("SIGNATURES", "https://example.invalid/sigs", "https://example.invalid/sigs"),
    "cache_repo": ("CACHE_REPO", "reg.example/team/cache", "reg.example/team/cache"),
    "torch_find_links": ("TORCH_FIND_LINKS", "/srv/wheels", "/srv/wheels"),
    "podman_format": ("PODMAN_FORMAT", "docker", "docker"),
    "vcs_url": ("VCS_URL", "https://example.invalid/repo", "https://example.invalid/repo"),
}


def test_every_field_has_a_test_value() -> None:
    assert set(VALUES) == {field.name for field in dataclasses.fields(Config)}


@pytest.mark.parametrize("field", VALUES)
def test_from_env_reads_each_variable(field: str) -> None:
    variable, value, expected = VALUES[field]
    assert getattr(Config.from_env({variable: value}), field) == expected
    others = {f: getattr(Config(), f) for f in VALUES if f not in (field, "source_date_epoch",
                                                                     "revision")}  # fmt: skip
    read = Config.from_env({variable: value})
    assert {f: getattr(read, f) for f in others} == others, "another field moved"


def test_from_env_reads_all_of_them_at_once() -> None:
    env = {variable: value for variable, value, _ in VALUES.values()}
    assert Config.from_env(env) == Config(**{f: expected for f, (_, _, expected) in VALUES.items()})


def test_empty_variables_mean_the_default() -> None:
    """Make exports every variable it names, set or not: "" is not a value."""
    empty = Config.from_env({variable: "" for variable, _, _ in VALUES.values()})
    expected = Config(source_date_epoch=int(git("log", "-1", "--format=%ct")),
                      revision=git("rev-parse", "HEAD"))  # fmt: skip
    assert empty == expected
    assert Config.from_env({}) == expected


def test_the_epoch_and_revision_default_to_the_last_commit() -> None:
    cfg = Config.from_env({})
    assert cfg.source_date_epoch == int(git("log", "-1", "--format=%ct"))
    assert cfg.revision == git("rev-parse", "HEAD")
    assert cfg.source_date_epoch > 1_600_000_000  # a commit of this project, not the 0 fallback


def test_overrides_win_and_are_checked() -> None:
    assert Config.from_env({"ENGINE": "podman"}, engine="docker").engine == "docker"
    with pytest.raises(ScriptError, match=r"unknown ENGINE 'lxc'"):
        Config.from_env({}, engine="lxc")


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("ENGINE", "dockr", "unknown ENGINE 'dockr'; choose docker or podman"),
    ("ENGINE", "Docker", "unknown ENGINE 'Docker'; choose docker or podman"),
    ("PLATFORM", "linux/arm64", "PLATFORM=linux/arm64 is not covered by the locks and the "
     "wheelhouse (CPython 3.11 wheels for linux/amd64): build linux/amd64, which arm64 hosts "
     "(Apple silicon) run under emulation"),
    ("TRAINER_VARIANT", "alpine", "unknown TRAINER_VARIANT 'alpine'; choose from: pip, uv, "
     "multistage"),
    ("SOURCE_DATE_EPOCH", "yesterday", "SOURCE_DATE_EPOCH must be whole seconds, not 'yesterday'"),
    ("SOURCE_DATE_EPOCH", "-1", "SOURCE_DATE_EPOCH must be whole seconds, not '-1'"),
    ("SOURCE_DATE_EPOCH", "1.5", "SOURCE_DATE_EPOCH must be whole seconds, not '1.5'"),
])  # fmt: skip
def test_a_bad_value_is_one_line(variable: str, value: str, message: str) -> None:
    with pytest.raises(ScriptError) as caught:
        Config.from_env({variable: value})
    assert str(caught.value) == message


def test_replace_checks_and_the_config_is_frozen() -> None:
    cfg = Config()
    assert cfg.replace(engine="podman").engine == "podman" and cfg.engine == "docker"
    with pytest.raises(ScriptError, match=r"^PLATFORM=linux/arm64 is not covered"):
        cfg.replace(platform="linux/arm64")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.engine = "podman"  # type: ignore[misc]


def test_names_and_paths_derived_from_the_config(tmp_path: Path) -> None:
    cfg = Config(build_dir=tmp_path, image_prefix="ci-", engine="podman")
    assert cfg.tag("flask", "uv") == "ci-flask:uv"
    assert cfg.wheelhouse == tmp_path / "wheelhouse"
    assert cfg.stamp("flask", "uv") == tmp_path / "stamps" / "podman" / "ci-flask-uv"
    # Per prefix: another set of images on another base leaves this set's base stamp alone.
    assert cfg.base_stamp == tmp_path / "stamps" / "podman" / "ci-base"
    assert cfg.replace(image_prefix="official-").base_stamp.name == "official-base"
    assert Config().build_dir == ROOT / "build" and Config().artifacts == ROOT / "artifacts"


# ---- copies of the pinned values ---------------------------------------------------------------
VARIANT_DOCKERFILES = [ROOT / "dockerfiles" / f"{name}.Dockerfile" for name in config.VARIANTS]


def arg_defaults(path: Path) -> dict[str, list[str]]:
    """{ARG name: [its defaults, in file order]} of a Dockerfile."""
    found: dict[str, list[str]] = {}
    for instruction in DockerfileParser(path=str(path)).structure:
        if instruction["instruction"] == "ARG" and "=" in instruction["value"]:
            name, default = instruction["value"].split("=", 1)
            found.setdefault(name.strip(), []).append(default.strip().strip('"'))
    return found


@pytest.mark.parametrize("path", VARIANT_DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_defaults_equal_config(path: Path) -> None:
    """`docker build -f dockerfiles/uv.Dockerfile` by hand builds on the same pinned base."""
    defaults = arg_defaults(path)
    assert defaults.get("BASE_IMAGE") == [config.DEFAULT_BASE]
    assert set(defaults.get("VCS_URL", [config.VCS_URL])) == {config.VCS_URL}


def test_no_other_dockerfile_has_its_own_base_default() -> None:
    for path in sorted((ROOT / "dockerfiles").rglob("*.Dockerfile")):  # bench/ too
        assert arg_defaults(path).get("BASE_IMAGE", [config.DEFAULT_BASE]) == [
            config.DEFAULT_BASE
        ], path.name


def makefile_output() -> dict[str, str]:
    """{variable: value} of `python -m imagetools makefile` (build/apps.mk)."""
    env = {k: v for k, v in os.environ.items() if k not in {n.upper() for n in VALUES}}
    result = subprocess.run([sys.executable, "-m", "imagetools", "makefile"], cwd=ROOT,
                            env=dict(env, PYTHONPATH=str(ROOT / "scripts")),
                            capture_output=True, text=True, check=True)  # fmt: skip
    assert result.stderr == ""
    lines = [ln for ln in result.stdout.splitlines() if ln and not ln.startswith("#")]
    pairs = [re.fullmatch(r"([A-Za-z0-9_.-]+) ([?:])= ?(.*)", line) for line in lines]
    assert all(pairs), lines
    return {m[1]: m[3] for m in pairs}


MAKE_DEFAULTS = ("image_prefix", "base_image", "local_base", "official_base", "platform",
                 "trainer_variant", "torch_find_links")  # fmt: skip


def test_makefile_defaults_are_the_config_defaults() -> None:
    made = makefile_output()
    for field in MAKE_DEFAULTS:
        assert made[field.upper()] == str(getattr(Config(), field)), field


def test_makefile_lists_each_app_and_its_inputs() -> None:
    apps = load_apps()
    made = makefile_output()
    assert made["ALL_APPS"].split() == list(apps)
    for app, spec in apps.items():
        folders = [f"src/{package}" for package in spec["packages"]]
        assert made[f"INPUTS_{app}"].split() == [f"requirements/{app}.txt", *folders]
        assert made.get(f"MODEL_{app}") == spec.get("model"), app  # the artifacts folder
    assert made["ALL_VARIANTS"].split() == list(config.VARIANTS)
    expected = {"ALL_APPS", "ALL_VARIANTS", *(f"INPUTS_{a}" for a in apps),
                *(f"MODEL_{a}" for a, s in apps.items() if "model" in s),
                *(f.upper() for f in MAKE_DEFAULTS)}  # fmt: skip
    assert set(made) == expected


def test_the_makefile_keeps_no_copy_of_the_defaults() -> None:
    """The defaults reach Make only through apps.mk: a second copy would drift."""
    makefile = (ROOT / "Makefile").read_text()
    for field in MAKE_DEFAULTS:
        assert not re.search(rf"^{field.upper()}\s*[?:]?=", makefile, re.M), field.upper()
