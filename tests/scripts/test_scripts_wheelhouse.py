"""imagetools.wheelhouse without downloads: lock pins, the sha256 manifest, what is missing."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from imagetools import apps, common
from imagetools import wheelhouse as wheels
from imagetools.common import ScriptError
from imagetools.config import Config
from imagetools.lockfile import Pin


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def lock_text(*pins: tuple[str, str, list[str]]) -> str:
    lines = ["# input-sha256: " + "0" * 64, "#"]
    for name, version, hashes in pins:
        lines.append(f"{name}=={version} \\")
        lines += [f"    --hash=sha256:{h} \\" for h in hashes[:-1]]
        lines += [f"    --hash=sha256:{hashes[-1]}", "    # via -r x.in"]
    return "\n".join(lines) + "\n"


@pytest.fixture
def fake_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "requirements").mkdir()
    monkeypatch.setattr(wheels, "ROOT", tmp_path)
    return tmp_path


def write_locks(repo: Path, **locks: str) -> None:
    for name, text in locks.items():
        (repo / "requirements" / f"{name}.txt").write_text(text)


H1, H2, H3, H4 = (sha(bytes([n])) for n in range(4))


def test_lock_pins_merges_locks_and_deduplicates(fake_repo: Path) -> None:
    write_locks(
        fake_repo,
        one=lock_text(("numpy", "2.0.0", [H1, H2]), ("Pillow", "11.0", [H3])),
        two=lock_text(("numpy", "2.0.0", [H2, H1]), ("requests", "2.32", [H4])),
        tools=lock_text(("uv", "0.9.0", [H4])),
    )
    pins = wheels.lock_pins(["one", "two"])
    assert sorted((p.name, p.version) for p in pins) == [
        ("numpy", "2.0.0"), ("pillow", "11.0"), ("requests", "2.32"), ("uv", "0.9.0"),
    ]  # fmt: skip
    assert next(p for p in pins if p.name == "numpy").hashes == {H1, H2}


def test_lock_pins_refuses_one_version_with_two_hash_sets(fake_repo: Path) -> None:
    write_locks(
        fake_repo,
        one=lock_text(("numpy", "2.0.0", [H1])),
        two=lock_text(("numpy", "2.0.0", [H2])),
        tools=lock_text(("uv", "0.9.0", [H4])),
    )
    with pytest.raises(ScriptError, match=r"numpy==2\.0\.0 has no hash in common in two locks"):
        wheels.lock_pins(["one", "two"])


def test_lock_pins_keeps_the_hashes_two_locks_share(fake_repo: Path) -> None:
    """A lock made from the wheelhouse lists one file; a lock from an index lists them all."""
    write_locks(
        fake_repo,
        one=lock_text(("numpy", "2.0.0", [H1, H2])),
        two=lock_text(("numpy", "2.0.0", [H2])),
        tools=lock_text(("uv", "0.9.0", [H4])),
    )
    (numpy,) = [p for p in wheels.lock_pins(["one", "two"]) if p.name == "numpy"]
    assert numpy.hashes == {H2}


def test_lock_pins_keeps_two_versions_of_one_package(fake_repo: Path) -> None:
    write_locks(
        fake_repo,
        one=lock_text(("numpy", "1.26.4", [H1])),
        two=lock_text(("numpy", "2.0.0", [H2])),
        tools=lock_text(("uv", "0.9.0", [H4])),
    )
    assert {(p.name, p.version) for p in wheels.lock_pins(["one", "two"])} >= {
        ("numpy", "1.26.4"), ("numpy", "2.0.0"),
    }  # fmt: skip


def test_lock_pins_of_the_real_locks_have_no_conflict() -> None:
    pins = wheels.lock_pins(list(apps.load_apps()))
    assert len({(p.name, p.version) for p in pins}) == len(pins)
    assert any(p.name == "uv" for p in pins), "the installers' lock is always included"


def test_file_hashes_hashes_once_and_reuses_the_manifest(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "a-1.0-py3-none-any.whl").write_bytes(b"wheel a")
    (tmp_path / "b-2.0-py3-none-any.whl").write_bytes(b"wheel bb")
    (tmp_path / "notes.txt").write_text("not a wheel")
    first = wheels.file_hashes(tmp_path)
    assert first == {"a-1.0-py3-none-any.whl": sha(b"wheel a"),
                     "b-2.0-py3-none-any.whl": sha(b"wheel bb")}  # fmt: skip
    entries = json.loads((tmp_path / wheels.MANIFEST).read_text())["entries"]
    assert sorted(e["sha256"] for e in entries.values()) == sorted(first.values())

    def no_hashing(*args, **kwargs):
        raise AssertionError("a cached wheel was hashed again")

    monkeypatch.setattr(common.hashlib, "file_digest", no_hashing)
    assert wheels.file_hashes(tmp_path) == first


def test_file_hashes_rehashes_a_changed_size_and_forgets_removed(tmp_path: Path) -> None:
    wheel = tmp_path / "a-1.0-py3-none-any.whl"
    wheel.write_bytes(b"wheel a")
    (tmp_path / "gone-1.0-py3-none-any.whl").write_bytes(b"gone")
    wheels.file_hashes(tmp_path)
    (tmp_path / "gone-1.0-py3-none-any.whl").unlink()
    wheel.write_bytes(b"wheel a, rebuilt")
    assert wheels.file_hashes(tmp_path) == {wheel.name: sha(b"wheel a, rebuilt")}


def test_file_hashes_sees_a_same_size_edit_in_place_with_the_mtime_put_back(
    tmp_path: Path,
) -> None:
    """The old cache keyed on name and size: one byte changed in place went unnoticed."""
    wheel = tmp_path / "a-1.0-py3-none-any.whl"
    wheel.write_bytes(b"wheel a")
    wheels.file_hashes(tmp_path)
    before = wheel.stat()
    with wheel.open("r+b") as handle:
        handle.write(b"W")
    os.utime(wheel, ns=(before.st_atime_ns, before.st_mtime_ns))  # size and mtime as before
    assert wheels.file_hashes(tmp_path) == {wheel.name: sha(b"Wheel a")}


def test_file_hashes_gives_wheels_a_fixed_mode_and_content_mtime(tmp_path: Path) -> None:
    wheel = tmp_path / "a-1.0-py3-none-any.whl"
    wheel.write_bytes(b"wheel a")
    wheel.chmod(0o600)
    wheels.file_hashes(tmp_path)
    info = wheel.stat()
    assert stat.S_IMODE(info.st_mode) == 0o644
    assert info.st_mtime_ns == common.content_mtime_ns(wheels.WHEEL_MTIME, sha(b"wheel a"))
    other = tmp_path / "b-1.0-py3-none-any.whl"
    other.write_bytes(b"wheel b")
    wheels.file_hashes(tmp_path)
    assert other.stat().st_mtime_ns != info.st_mtime_ns, "same-size files, same mtime"


def test_file_hashes_survives_a_truncated_manifest(tmp_path: Path) -> None:
    (tmp_path / "a-1.0-py3-none-any.whl").write_bytes(b"wheel a")
    (tmp_path / wheels.MANIFEST).write_text('{"entries": {"1:2": {"sha256": "ab')
    assert wheels.file_hashes(tmp_path) == {"a-1.0-py3-none-any.whl": sha(b"wheel a")}


def test_missing_pins_matches_any_locked_hash(tmp_path: Path) -> None:
    (tmp_path / "a-1.0-py3-none-any.whl").write_bytes(b"a")
    (tmp_path / "b-1.0-cp311-manylinux_x86_64.whl").write_bytes(b"b")
    pins = [
        Pin("a", "1.0", frozenset({sha(b"a")})),
        Pin("b", "1.0", frozenset({sha(b"b-macos"), sha(b"b")})),  # one hash per platform
        Pin("c", "1.0", frozenset({sha(b"c")})),
        Pin("d", "1.0", frozenset({sha(b"tampered d")})),
    ]
    (tmp_path / "d-1.0-py3-none-any.whl").write_bytes(b"d")  # present, wrong bytes
    hashes = wheels.file_hashes(tmp_path)
    assert [p.name for p in wheels.missing_pins(pins, hashes)] == ["c", "d"]
    assert wheels.altered_wheels(pins, hashes) == ["d-1.0-py3-none-any.whl"]


@pytest.fixture
def wheelhouse_repo(fake_repo: Path, tmp_path: Path) -> tuple[Config, dict[str, bytes]]:
    """A fake repo whose locks need a (every app of apps.toml) and b (the installers);
    returns a configuration whose wheelhouse is under tmp_path, and the wheels' bytes."""
    data = {"a-1.0-py3-none-any.whl": b"a", "b-2.0-py3-none-any.whl": b"b"}
    app_lock = lock_text(("a", "1.0", [sha(b"a")]))
    write_locks(fake_repo, tools=lock_text(("b", "2.0", [sha(b"b")])),
                **dict.fromkeys(apps.load_apps(), app_lock))  # fmt: skip
    cfg = Config(build_dir=tmp_path / "build", torch_find_links="/srv/torch-wheels")
    return cfg, data


def test_ensure_wheelhouse_complete_downloads_nothing(wheelhouse_repo, monkeypatch) -> None:
    cfg, data = wheelhouse_repo
    cfg.wheelhouse.mkdir(parents=True)
    for name, content in data.items():
        (cfg.wheelhouse / name).write_bytes(content)

    def no_download(pins, dest, find_links):
        raise AssertionError("downloaded although complete")

    monkeypatch.setattr(wheels, "download", no_download)
    expected = {n: sha(c) for n, c in data.items()}
    assert wheels.ensure_wheelhouse(cfg) == expected
    assert wheels.wheel_hashes(cfg) == expected
    sums = cfg.wheelhouse / "SHA256SUMS"
    assert sums.read_text() == "".join(f"{sha(c)}  {n}\n" for n, c in sorted(data.items()))


def test_the_sums_are_rewritten_only_when_they_change(wheelhouse_repo, monkeypatch) -> None:
    """Make rebuilds every image when SHA256SUMS is newer than its stamp."""
    cfg, data = wheelhouse_repo
    cfg.wheelhouse.mkdir(parents=True)
    for name, content in data.items():
        (cfg.wheelhouse / name).write_bytes(content)
    wheels.ensure_wheelhouse(cfg)
    sums = cfg.wheelhouse / "SHA256SUMS"
    os.utime(sums, ns=(1, 1))
    wheels.ensure_wheelhouse(cfg)
    assert sums.stat().st_mtime_ns == 1
    (cfg.wheelhouse / "extra-1.0-py3-none-any.whl").write_bytes(b"extra")
    wheels.ensure_wheelhouse(cfg)
    assert sums.stat().st_mtime_ns != 1 and "extra-1.0-py3-none-any.whl" in sums.read_text()


def test_wheel_hashes_of_no_wheelhouse_is_empty(tmp_path: Path) -> None:
    cfg = Config(build_dir=tmp_path / "nothing")
    assert wheels.wheel_hashes(cfg) == {}
    assert not cfg.wheelhouse.exists()


def test_ensure_wheelhouse_fetches_only_the_missing(wheelhouse_repo, monkeypatch) -> None:
    cfg, data = wheelhouse_repo
    cfg.wheelhouse.mkdir(parents=True)
    (cfg.wheelhouse / "a-1.0-py3-none-any.whl").write_bytes(b"a")
    asked = []

    def fake_download(pins, target, find_links):
        asked.extend(f"{p.name}=={p.version}" for p in pins)
        assert (target, find_links) == (cfg.wheelhouse, "/srv/torch-wheels")
        (target / "b-2.0-py3-none-any.whl").write_bytes(b"b")

    monkeypatch.setattr(wheels, "download", fake_download)
    assert set(wheels.ensure_wheelhouse(cfg)) == set(data)
    assert asked == ["b==2.0"]


def test_ensure_wheelhouse_fails_when_a_hash_never_arrives(wheelhouse_repo, monkeypatch) -> None:
    cfg, _ = wheelhouse_repo
    monkeypatch.setattr(wheels, "download", lambda pins, target, find_links: None)
    with pytest.raises(ScriptError, match=r"no wheel with a locked hash for: a==1\.0, b==2\.0"):
        wheels.ensure_wheelhouse(cfg)


def test_ensure_wheelhouse_fetches_an_altered_wheel_again(wheelhouse_repo, monkeypatch,
                                                          capsys) -> None:  # fmt: skip
    """A locked wheel changed in place (same size) is removed, said, and fetched again."""
    cfg, data = wheelhouse_repo
    dest = cfg.wheelhouse
    dest.mkdir(parents=True)
    for name, content in data.items():
        (dest / name).write_bytes(content)
    wheels.ensure_wheelhouse(cfg)
    (dest / "a-1.0-py3-none-any.whl").write_bytes(b"A")  # same size, other bytes
    asked = []

    def fetch(pins, target, find_links):
        asked.extend(f"{p.name}=={p.version}" for p in pins)
        assert not (target / "a-1.0-py3-none-any.whl").exists(), "the altered file was kept"
        (target / "a-1.0-py3-none-any.whl").write_bytes(b"a")

    monkeypatch.setattr(wheels, "download", fetch)
    assert wheels.ensure_wheelhouse(cfg) == {n: sha(c) for n, c in data.items()}
    assert asked == ["a==1.0"]
    assert "a-1.0-py3-none-any.whl does not match its locked sha256" in capsys.readouterr().out
