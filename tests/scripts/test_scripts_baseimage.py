"""imagetools.baseimage: BASE_IMAGE when present or pullable, else the local Debian-built base
(made with mmdebstrap when missing); a base the user chose is never swapped. The engine and
mmdebstrap are fakes that record their command lines."""

from __future__ import annotations

import hashlib
import os
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
    # Written beside, then renamed: a cut-short run leaves no rootfs.tar to reuse.
    assert argv[-1] == str(rootfs.with_name("rootfs.part.tar")) and rootfs.read_text() == "rootfs"
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


def fake_skopeo(on_path, tmp_path: Path, body: bytes, code: int = 0, error: str = "") -> Path:
    """skopeo on PATH: `inspect` answers body (exit code, error on stderr) and records its
    arguments; `manifest-digest` is sha256 of the file, as skopeo's own."""
    (tmp_path / "answer").write_bytes(body)
    on_path("skopeo",
            'if [ "$1" = manifest-digest ]; then echo "sha256:$(sha256sum < "$2" | cut -d" " -f1)";'
            " exit 0; fi\n"
            f'echo "$*" > {tmp_path}/skopeo.args\ncat {tmp_path}/answer\n'
            f"echo '{error}' >&2\nexit {code}\n")  # fmt: skip
    return tmp_path / "skopeo.args"


def files(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_base_digest_pins_the_tags_index_in_every_copy(copy_root: Path, tmp_path: Path,
                                                      on_path, capsys) -> None:  # fmt: skip
    args = fake_skopeo(on_path, tmp_path, INDEX)
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
    copy_root: Path, tmp_path: Path, monkeypatch, on_path, capsys
) -> None:
    current = f"{DEFAULT_BASE.split('@')[0]}@sha256:{hashlib.sha256(INDEX).hexdigest()}"
    for path in [copy_root / "scripts/imagetools/config.py", *copy_root.rglob("*.Dockerfile")]:
        path.write_text(path.read_text().replace(DEFAULT_BASE, current))
    monkeypatch.setattr(baseimage, "DEFAULT_BASE", current)
    before = files(copy_root)
    fake_skopeo(on_path, tmp_path, INDEX)
    assert baseimage.update_digest() == current
    assert files(copy_root) == before
    assert "nothing to change" in capsys.readouterr().out


def test_base_digest_refuses_copies_that_drifted(copy_root: Path, tmp_path: Path,
                                                 on_path) -> None:  # fmt: skip
    drifted = copy_root / "dockerfiles" / "uv.Dockerfile"
    drifted.write_text(drifted.read_text().replace(DEFAULT_BASE, "python:3.11-slim"))
    before = files(copy_root)
    args = fake_skopeo(on_path, tmp_path, INDEX)
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
    copy_root: Path, tmp_path: Path, on_path, body: bytes, code: int, error: str, message: str
) -> None:
    before = files(copy_root)
    fake_skopeo(on_path, tmp_path, body, code, error)
    with pytest.raises(ScriptError, match=message):
        baseimage.update_digest()
    assert files(copy_root) == before
