"""imagetools.officialbase: python:3.11-slim's layout built offline from two mmdebstrap roots
and Debian's CPython source. mmdebstrap, apt-get and the engine are fakes that record their
command lines; the real build runs in `make test-official`."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from imagetools import officialbase
from imagetools.common import ScriptError

SOURCE = b"pristine CPython source"
IMAGE = "sha256:" + "c" * 64


@pytest.fixture
def fake_apt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, on_path) -> Path:
    """apt-get on PATH: records its argv; `source` writes the orig tarball ($SOURCE) into its
    working directory, as apt does. APT_FAIL: `update --error-on=any` fails as real apt does
    when an index cannot be fetched (a W: line, then an E: summary, exit 100)."""
    record = tmp_path / "apt.calls"
    on_path("apt-get",
            f'echo "$*" >> {record}\n'
            'case "$*" in *" update --error-on=any"*) if [ -n "$APT_FAIL" ]; then\n'
            '  echo "W: Failed to fetch $APT_FAIL" >&2\n'
            '  echo "E: Some index files failed to download. They have been ignored." >&2\n'
            "  exit 100; fi;; esac\n"
            'case "$*" in *" source "*) printf "%s" "$SOURCE" > python3.11_3.11.2.orig.tar.gz;;'
            " esac\n")  # fmt: skip
    monkeypatch.setenv("SOURCE", SOURCE.decode())
    monkeypatch.setattr(officialbase, "SOURCE_SHA256", hashlib.sha256(SOURCE).hexdigest())
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
            Path(args[args.index("--iidfile") + 1]).write_text(IMAGE)
            return subprocess.CompletedProcess(args, 0)

        engine.run = run


def test_built_offline_from_two_roots_and_debians_source(
    make_engine, fake_mmdebstrap: Path, fake_apt: Path, cfg
) -> None:
    built = Built(make_engine("docker"))
    assert officialbase.build(built.engine) == IMAGE
    ctx = cfg.build_dir / "base-official"
    roots = [line.split() for line in fake_mmdebstrap.read_text().splitlines()]
    epoch = officialbase.last_change(officialbase.RECIPE, cfg.source_date_epoch)
    assert [(r[0], r[-2], r[-1]) for r in roots] == [
        (str(epoch), "trixie", str(ctx / "runtime-root.part.tar")),
        (str(epoch), "trixie", str(ctx / "build-root.part.tar")),
    ]
    assert "--variant=minbase" in roots[0] and "--variant=minbase" in roots[1]
    assert f"--include={','.join(officialbase.RUNTIME_PACKAGES)}" in roots[0]
    assert f"--include={','.join(officialbase.TOOLCHAIN_PACKAGES)}" in roots[1]
    assert sorted(p.name for p in ctx.iterdir()) == ["build-root.tar", "cpython.tar.gz",
                                                     "inputs.json", "runtime-root.tar"]  # fmt: skip
    # The source: Debian's own orig tarball, from a private apt state with deb-src only.
    update, source = fake_apt.read_text().splitlines()
    assert "Dir::Etc::SourceList=/dev/null" in update
    assert update.endswith(" update --error-on=any")
    assert source.endswith("source --download-only --tar-only python3.11")
    assert (ctx / "cpython.tar.gz").read_bytes() == SOURCE
    (build,) = built.builds
    assert "--network=none" in build and build[-1] == str(ctx)
    assert build[build.index("--tag") + 1] == cfg.official_base
    assert f"--build-arg=SOURCE_DATE_EPOCH={epoch}" in build
    assert build[build.index("--file") + 1].endswith("dockerfiles/base-official.Dockerfile")


def test_inputs_are_reused_only_while_their_recipe_holds(
    make_engine, fake_mmdebstrap: Path, fake_apt: Path, cfg, monkeypatch
) -> None:
    built = Built(make_engine("docker"))
    officialbase.build(built.engine)
    officialbase.build(built.engine)  # all reused: only the (cached) image build runs
    assert len(fake_mmdebstrap.read_text().splitlines()) == 2 and len(built.builds) == 2
    assert len(fake_apt.read_text().splitlines()) == 2
    # A package added to the runtime: that root is made again, the others stay.
    monkeypatch.setattr(officialbase, "RUNTIME_PACKAGES", [*officialbase.RUNTIME_PACKAGES, "x"])
    officialbase.build(built.engine)
    (again,) = fake_mmdebstrap.read_text().splitlines()[2:]
    assert again.split()[-1].endswith("runtime-root.part.tar")
    # A source tarball changed on disk is fetched again; REBUILD=1 makes everything again.
    (cfg.build_dir / "base-official" / "cpython.tar.gz").write_bytes(b"tampered")
    officialbase.build(built.engine)
    assert len(fake_apt.read_text().splitlines()) == 4
    assert (cfg.build_dir / "base-official" / "cpython.tar.gz").read_bytes() == SOURCE
    officialbase.build(built.engine, fresh=True)
    assert len(fake_mmdebstrap.read_text().splitlines()) == 5


def test_a_source_tarball_other_than_the_pinned_one_is_refused(
    make_engine, fake_mmdebstrap: Path, fake_apt: Path, cfg, monkeypatch
) -> None:
    monkeypatch.setenv("SOURCE", "other bytes")
    built = Built(make_engine("docker"))
    with pytest.raises(ScriptError, match=r"^python3\.11_3\.11\.2\.orig\.tar\.gz has sha256 "
                       r"[0-9a-f]{64}, not the pinned [0-9a-f]{64} "):  # fmt: skip
        officialbase.build(built.engine)
    assert not (cfg.build_dir / "base-official" / "cpython.tar.gz").exists() and not built.builds


def test_an_unreachable_debian_archive_is_one_line_naming_the_fetch(
    make_engine, fake_mmdebstrap: Path, fake_apt: Path, monkeypatch
) -> None:
    monkeypatch.setenv("APT_FAIL", "http://deb.debian.org/debian/dists/bookworm/InRelease")
    line = (
        r"^apt-get update \(python3\.11 from Debian bookworm\) failed: "
        r"W: Failed to fetch http://deb\.debian\.org/\S+/InRelease$"
    )
    with pytest.raises(ScriptError, match=line):
        officialbase.build(Built(make_engine("docker")).engine)


def test_a_failed_root_leaves_nothing_to_reuse(
    make_engine, fake_mmdebstrap: Path, fake_apt: Path, cfg, monkeypatch
) -> None:
    """mmdebstrap wrote part of the tarball, then failed: no file is left that a later run
    would take for a whole root."""
    monkeypatch.setenv("FAIL", "trixie: Release file expired")
    with pytest.raises(ScriptError, match=r"^mmdebstrap failed: E: trixie: Release file expired$"):
        officialbase.build(Built(make_engine("docker")).engine)
    assert sorted(p.name for p in (cfg.build_dir / "base-official").iterdir()) == ["inputs.json"]
