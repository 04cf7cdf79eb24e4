"""imagetools.baseimage: BASE_IMAGE when present or pullable, else the local Debian-built base
(made with mmdebstrap when missing); a base the user chose is never swapped. The engine and
mmdebstrap are fakes that record their command lines."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from imagetools import baseimage
from imagetools.common import ScriptError
from imagetools.config import DEFAULT_BASE

LOCAL = "grocery-unittest-base:none"  # a name no real engine here has, should one be reached


def ids(fake_client, **present: str) -> None:
    """The images the fake engine has: {ref: id}; every other inspect finds nothing."""
    for ref, image in present.items():
        fake_client.answer(f"image inspect --format {{{{.Id}}}} {ref}", f"{image}\n")
    fake_client.answer("image inspect", "", "Error: No such image", 1)


def test_a_present_base_is_used_without_a_pull(make_engine, fake_client) -> None:
    ids(fake_client, **{DEFAULT_BASE: "sha256:aaa"})
    assert baseimage.resolve(make_engine("docker")) == DEFAULT_BASE
    assert not [c for c in fake_client.calls if c[0] == "pull"]


def test_a_missing_base_is_pulled(make_engine, fake_client) -> None:
    ids(fake_client)
    fake_client.answer("pull", "sha256:aaa\n")
    assert baseimage.resolve(make_engine("docker")) == DEFAULT_BASE
    assert ["pull", "--platform=linux/amd64", "--quiet", DEFAULT_BASE] in fake_client.calls


def test_the_default_base_unpullable_falls_back_to_the_local_one(make_engine, fake_client,
                                                                 capsys) -> None:  # fmt: skip
    ids(fake_client, **{LOCAL: "sha256:bbb"})
    fake_client.answer("pull", "", "dial tcp: lookup registry-1.docker.io: no such host", 1)
    engine = make_engine("docker", local_base=LOCAL)
    assert baseimage.resolve(engine) == LOCAL
    out = capsys.readouterr().out
    assert "cannot pull" in out and f"using the local Debian-built base {LOCAL}" in out
    assert not [c for c in fake_client.calls if c[0] == "build"]  # present: not rebuilt


def test_a_base_the_user_chose_is_never_swapped(make_engine, fake_client) -> None:
    ids(fake_client, **{LOCAL: "sha256:bbb"})
    fake_client.answer("pull", "", "manifest unknown", 1)
    chosen = "registry.example/python@sha256:" + "1" * 64
    with pytest.raises(
        ScriptError, match=r"^cannot pull BASE_IMAGE=registry\.example/.*: manifest unknown$"
    ):
        baseimage.resolve(make_engine("docker", base_image=chosen, local_base=LOCAL))


def on_path(monkeypatch: pytest.MonkeyPatch, folder: Path, name: str, script: str) -> None:
    """An executable shell script named name, first on PATH."""
    folder.mkdir(exist_ok=True)
    (folder / name).write_text("#!/bin/sh\n" + script)
    (folder / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")


@pytest.fixture
def fake_mmdebstrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """mmdebstrap on PATH: writes a tar to its last argument and records its argv and
    SOURCE_DATE_EPOCH; ensure-apt.sh is skipped (mmdebstrap is "installed")."""
    record = tmp_path / "mmdebstrap.calls"
    on_path(monkeypatch, tmp_path / "bin", "mmdebstrap",
            f'echo "$SOURCE_DATE_EPOCH $*" >> {record}\n'
            'if [ -n "$FAIL" ]; then echo "E: $FAIL" >&2; exit 1; fi\n'
            'for last; do :; done\nprintf rootfs > "$last"\n')  # fmt: skip
    real_run = subprocess.run

    def run(cmd, *args, **kwargs):
        if str(cmd[0]).endswith("ensure-apt.sh"):
            return subprocess.CompletedProcess(cmd, 0)
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(baseimage.subprocess, "run", run)
    return record


def test_a_missing_local_base_is_made_with_mmdebstrap_at_its_recipes_time(
    make_engine, fake_client, fake_mmdebstrap: Path, cfg
) -> None:
    ids(fake_client)
    fake_client.answer("pull", "", "no such host", 1)
    engine = make_engine("docker", local_base=LOCAL)
    assert baseimage.resolve(engine) == LOCAL
    (call,) = fake_mmdebstrap.read_text().splitlines()
    epoch, *argv = call.split()
    # The time of the last commit that changed the recipe, not HEAD's (the fixture's EPOCH).
    assert int(epoch) == baseimage.last_change(baseimage.RECIPE, cfg.source_date_epoch)
    assert f"--include={','.join(baseimage.PACKAGES)}" in argv and baseimage.SUITE in argv
    rootfs = cfg.build_dir / "base" / "rootfs.tar"
    assert argv[-1] == str(rootfs) and rootfs.read_text() == "rootfs"
    (build,) = [c for c in fake_client.calls if c[0] == "build"]
    assert "--network=none" in build and build[-1] == str(rootfs.parent)
    assert build[build.index("--tag") + 1] == LOCAL


def test_a_failing_mmdebstrap_is_one_line(make_engine, fake_client, fake_mmdebstrap: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    ids(fake_client)
    fake_client.answer("pull", "", "no such host", 1)
    monkeypatch.setenv("FAIL", "cannot reach deb.debian.org")
    with pytest.raises(ScriptError, match=r"^mmdebstrap failed: E: cannot reach deb\.debian\.org$"):
        baseimage.resolve(make_engine("docker", local_base=LOCAL))
    assert not [c for c in fake_client.calls if c[0] == "build"]


def test_the_stamp_changes_only_with_the_base(make_engine, fake_client, cfg, monkeypatch) -> None:
    ids(fake_client, **{DEFAULT_BASE: "sha256:aaa"})
    engine = make_engine("docker")
    monkeypatch.setattr(baseimage, "engine_for", lambda _cfg: engine)
    assert baseimage.main(engine.cfg, "base", []) == 0
    stamp = engine.cfg.base_stamp
    assert stamp.read_text() == f"{DEFAULT_BASE} sha256:aaa\n"
    os.utime(stamp, (1, 1))
    baseimage.main(engine.cfg, "base", [])
    assert stamp.stat().st_mtime == 1  # unchanged: Make rebuilds nothing after it
    fake_client.answer(f"image inspect --format {{{{.Id}}}} {DEFAULT_BASE}", "sha256:ccc\n",
                       first=True)  # fmt: skip
    baseimage.main(engine.cfg, "base", [])
    assert stamp.read_text() == f"{DEFAULT_BASE} sha256:ccc\n"  # a new base: a new stamp


# ---- make base-official: python:3.11-slim's layout, built offline -----------------------------
SOURCE = b"pristine CPython source"


@pytest.fixture
def fake_apt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """apt-get on PATH: records its argv; `source` writes the orig tarball (SOURCE) into its
    working directory, as apt does; APT_FAIL makes `update` fail with that line."""
    record = tmp_path / "apt.calls"
    on_path(monkeypatch, tmp_path / "bin", "apt-get",
            f'echo "$*" >> {record}\n'
            'case "$*" in *" update"*) if [ -n "$APT_FAIL" ]; then echo "E: $APT_FAIL" >&2;'
            " exit 100; fi;; esac\n"
            'case "$*" in *" source "*) printf "%s" "$SOURCE" > python3.11_3.11.2.orig.tar.gz;;'
            " esac\n")  # fmt: skip
    monkeypatch.setenv("SOURCE", SOURCE.decode())
    package, suite, version, _ = baseimage.CPYTHON_SOURCE
    monkeypatch.setattr(baseimage, "CPYTHON_SOURCE",
                        (package, suite, version, hashlib.sha256(SOURCE).hexdigest()))  # fmt: skip
    return record


class Built:
    """An engine whose builds succeed: records them and writes the iidfile."""

    def __init__(self, engine) -> None:
        self.engine, self.builds = engine, []
        real_run = engine.run

        def run(args, **kwargs):
            if args[0] != "build":
                return real_run(args, **kwargs)
            self.builds.append(args)
            Path(args[args.index("--iidfile") + 1]).write_text("sha256:" + "c" * 64)
            return subprocess.CompletedProcess(args, 0)

        engine.run = run


def test_the_official_base_is_built_offline_from_two_roots_and_debians_source(
    make_engine, fake_client, fake_mmdebstrap: Path, fake_apt: Path, cfg
) -> None:
    built = Built(make_engine("docker"))
    assert baseimage.build_official_base(built.engine) == "sha256:" + "c" * 64
    ctx = cfg.build_dir / "base-official"
    roots = [line.split() for line in fake_mmdebstrap.read_text().splitlines()]
    epoch = baseimage.last_change(baseimage.OFFICIAL_RECIPE, cfg.source_date_epoch)
    assert [(r[0], r[-2], r[-1]) for r in roots] == [
        (str(epoch), "trixie", str(ctx / "runtime-root.tar")),
        (str(epoch), "trixie", str(ctx / "build-root.tar")),
    ]
    assert "--variant=minbase" in roots[0] and "--variant=minbase" in roots[1]
    assert f"--include={','.join(baseimage.OFFICIAL_PACKAGES)}" in roots[0]
    assert "gcc" not in baseimage.OFFICIAL_PACKAGES  # the toolchain stays out of the base
    # The source: Debian's own orig tarball, from a private apt state with deb-src only.
    update, source = fake_apt.read_text().splitlines()
    assert "Dir::Etc::SourceList=/dev/null" in update and update.endswith(" update")
    assert source.endswith("source --download-only --tar-only python3.11")
    assert (ctx / "cpython.tar.gz").read_bytes() == SOURCE
    (build,) = built.builds
    assert "--network=none" in build and build[-1] == str(ctx)
    assert build[build.index("--tag") + 1] == cfg.official_base
    assert f"--build-arg=SOURCE_DATE_EPOCH={epoch}" in build
    assert build[build.index("--file") + 1].endswith("dockerfiles/base-official.Dockerfile")
    # Again: the inputs are reused, only the (cached) image build runs.
    baseimage.build_official_base(built.engine)
    assert len(fake_mmdebstrap.read_text().splitlines()) == 2 and len(built.builds) == 2
    baseimage.build_official_base(built.engine, fresh=True)
    assert len(fake_mmdebstrap.read_text().splitlines()) == 4


def test_a_source_tarball_other_than_the_pinned_one_is_refused(
    make_engine, fake_client, fake_mmdebstrap: Path, fake_apt: Path, cfg, monkeypatch
) -> None:
    monkeypatch.setenv("SOURCE", "other bytes")
    built = Built(make_engine("docker"))
    with pytest.raises(ScriptError, match=r"^python3\.11_3\.11\.2\.orig\.tar\.gz has sha256 "
                       r"[0-9a-f]{64}, not the pinned [0-9a-f]{64} "):  # fmt: skip
        baseimage.build_official_base(built.engine)
    assert not (cfg.build_dir / "base-official" / "cpython.tar.gz").exists() and not built.builds


def test_an_unreachable_debian_archive_is_one_line(
    make_engine, fake_client, fake_mmdebstrap: Path, fake_apt: Path, monkeypatch
) -> None:
    monkeypatch.setenv("APT_FAIL", "Failed to fetch http://deb.debian.org/debian/dists/bookworm")
    with pytest.raises(ScriptError, match=r"^apt-get update \(python3\.11 from Debian bookworm\) "
                       r"failed: E: Failed to fetch http://deb\.debian\.org/"):  # fmt: skip
        baseimage.build_official_base(Built(make_engine("docker")).engine)


def test_a_failed_root_leaves_no_tarball_to_reuse(
    make_engine, fake_client, fake_mmdebstrap: Path, fake_apt: Path, cfg, monkeypatch
) -> None:
    monkeypatch.setenv("FAIL", "trixie: Release file expired")
    with pytest.raises(ScriptError, match=r"^mmdebstrap failed: E: trixie: Release file expired$"):
        baseimage.build_official_base(Built(make_engine("docker")).engine)
    assert not (cfg.build_dir / "base-official" / "runtime-root.tar").exists()


# ---- make base-digest: the pinned digest follows the tag -------------------------------------
INDEX = (b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",'
         b'"manifests":[{"digest":"sha256:1","platform":{"os":"linux","architecture":"amd64"}},'
         b'{"digest":"sha256:2","platform":{"os":"linux","architecture":"arm64"}}]}')  # fmt: skip


@pytest.fixture
def copy_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The files base-digest rewrites, copied; baseimage works on the copy."""
    root = tmp_path / "repo"
    (root / "scripts" / "imagetools").mkdir(parents=True)
    source = Path(baseimage.__file__).parents[2]
    (root / "scripts" / "imagetools" / "config.py").write_bytes(
        (source / "scripts" / "imagetools" / "config.py").read_bytes())  # fmt: skip
    for path in (source / "dockerfiles").rglob("*.Dockerfile"):
        target = root / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    monkeypatch.setattr(baseimage, "ROOT", root)
    return root


def fake_skopeo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: bytes, code: int = 0,
                error: str = "") -> Path:  # fmt: skip
    """skopeo on PATH: `inspect` answers body (exit code, error on stderr) and records its
    arguments; `manifest-digest` is sha256 of the file, as skopeo's own."""
    (tmp_path / "answer").write_bytes(body)
    on_path(monkeypatch, tmp_path / "bin", "skopeo",
            'if [ "$1" = manifest-digest ]; then echo "sha256:$(sha256sum < "$2" | cut -d" " -f1)";'
            " exit 0; fi\n"
            f'echo "$*" > {tmp_path}/skopeo.args\ncat {tmp_path}/answer\n'
            f"echo '{error}' >&2\nexit {code}\n")  # fmt: skip
    return tmp_path / "skopeo.args"


def files(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_base_digest_pins_the_tags_index_in_every_copy(copy_root: Path, tmp_path: Path,
                                                      monkeypatch, capsys) -> None:  # fmt: skip
    args = fake_skopeo(tmp_path, monkeypatch, INDEX)
    new = baseimage.update_digest()
    name = DEFAULT_BASE.split("@")[0]
    assert new == f"{name}@sha256:{hashlib.sha256(INDEX).hexdigest()}" != DEFAULT_BASE
    assert args.read_text().split()[:2] == ["inspect", "--raw"]
    assert args.read_text().split()[-1] == f"docker://{name}"
    copies = [copy_root / "scripts/imagetools/config.py", *copy_root.rglob("*.Dockerfile")]
    variants = [p for p in copies if p.name in ("pip.Dockerfile", "uv.Dockerfile",
                                                "multistage.Dockerfile", "config.py")]  # fmt: skip
    assert len(variants) == 4
    for path in copies:
        assert DEFAULT_BASE not in path.read_text(), path
    for path in variants:
        assert new in path.read_text(), path
    assert f"BASE_IMAGE moved to {new}" in capsys.readouterr().out


def test_base_digest_changes_nothing_when_the_pin_is_current(
    copy_root: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    current = f"{DEFAULT_BASE.split('@')[0]}@sha256:{hashlib.sha256(INDEX).hexdigest()}"
    for path in [copy_root / "scripts/imagetools/config.py", *copy_root.rglob("*.Dockerfile")]:
        path.write_text(path.read_text().replace(DEFAULT_BASE, current))
    monkeypatch.setattr(baseimage, "DEFAULT_BASE", current)
    before = files(copy_root)
    fake_skopeo(tmp_path, monkeypatch, INDEX)
    assert baseimage.update_digest() == current
    assert files(copy_root) == before
    assert "nothing to change" in capsys.readouterr().out


def test_base_digest_refuses_copies_that_drifted(copy_root: Path, tmp_path: Path,
                                                 monkeypatch) -> None:  # fmt: skip
    drifted = copy_root / "dockerfiles" / "uv.Dockerfile"
    drifted.write_text(drifted.read_text().replace(DEFAULT_BASE, "python:3.11-slim"))
    before = files(copy_root)
    args = fake_skopeo(tmp_path, monkeypatch, INDEX)
    with pytest.raises(
        ScriptError,
        match=r"^not pinned at python:3\.11-slim@sha256:[0-9a-f]{64}: dockerfiles/uv\.Dockerfile;",
    ):
        baseimage.update_digest()
    assert files(copy_root) == before and not args.exists()  # refused before asking


@pytest.mark.parametrize(
    ("body", "code", "error", "message"),
    [
        (b"", 1, "pinging container registry registry-1.docker.io: no such host",
         r"^cannot read python:3\.11-slim from its registry: pinging .*: no such host$"),
        (b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}', 0, "",
         r"^python:3\.11-slim is not a multi-platform index with linux/amd64 \(.*manifest"),
        (b"<html>proxy error</html>", 0, "", r"^python:3\.11-slim: the registry's answer is not"),
    ],
    ids=["no-registry", "single-manifest", "not-json"],
)  # fmt: skip
def test_base_digest_failures_are_one_line_and_change_nothing(
    copy_root: Path, tmp_path: Path, monkeypatch, body: bytes, code: int, error: str, message: str
) -> None:
    before = files(copy_root)
    fake_skopeo(tmp_path, monkeypatch, body, code, error)
    with pytest.raises(ScriptError, match=message):
        baseimage.update_digest()
    assert files(copy_root) == before
