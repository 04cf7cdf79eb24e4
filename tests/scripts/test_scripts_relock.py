"""imagetools.relock (`lock`, `lock --check`), and what the committed locks may and may not hold."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from imagetools import relock
from imagetools.common import ROOT
from imagetools.config import Config
from imagetools.lockfile import read_lock

REQ = ROOT / "requirements"
APP_LOCKS = [name for name in relock.lock_names() if name != "dev"]  # apps.toml's apps + tools


def main(*argv: str) -> int:
    """`python -m imagetools lock ARGV`, in this process."""
    return relock.main(Config(), "lock", list(argv))


@pytest.fixture
def tmp_req(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of requirements/ that relock reads instead of the repository's."""
    req = tmp_path / "requirements"
    shutil.copytree(REQ, req)
    (tmp_path / "dockerfiles").mkdir()
    shutil.copy(ROOT / "dockerfiles" / "apps.toml", tmp_path / "dockerfiles" / "apps.toml")
    monkeypatch.setattr(relock, "ROOT", tmp_path)
    monkeypatch.setattr(relock, "REQ", req)
    return req


def test_check_passes_on_the_repository(capsys) -> None:
    assert main("--check") == 0, capsys.readouterr().err
    assert "up to date" in capsys.readouterr().out


def test_check_passes_on_an_unchanged_copy(tmp_req: Path) -> None:
    assert [p for name in relock.lock_names() for p in relock.check_lock(name)] == []
    assert relock.layout_problems() == []


def test_stale_input_fails_with_stale(tmp_req: Path, capsys) -> None:
    with (tmp_req / "flask.in").open("a") as handle:
        handle.write("itsdangerous\n")
    assert main("--check") == 1
    err = capsys.readouterr().err
    assert "requirements/flask.txt is stale" in err
    assert "backend.txt is stale" not in err


def test_an_included_input_makes_its_includers_stale(tmp_req: Path) -> None:
    with (tmp_req / "tools.in").open("a") as handle:
        handle.write("# a comment still changes the input\n")
    assert any("stale" in p for p in relock.check_lock("tools"))
    assert any("stale" in p for p in relock.check_lock("dev")), "dev.in includes tools.in"
    assert relock.check_lock("flask") == []


def test_a_changed_dev_lock_makes_app_locks_stale(tmp_req: Path) -> None:
    dev = tmp_req / "dev.txt"
    dev.write_text(dev.read_text().replace("# via", "# via  ", 1))
    assert all(any("stale" in p for p in relock.check_lock(app)) for app in APP_LOCKS)
    assert relock.check_lock("dev") == [], "dev.txt's own marker does not cover its body"


@pytest.mark.parametrize(
    "line",
    [
        "--find-links /opt/wheels",
        "torch @ file:///opt/wheels/torch-2.13.0-cp311-linux_x86_64.whl",
        "nvidia-cublas==12.4.5.8 --hash=sha256:" + "0" * 64,
        "nvidia-cublas-cu12==12.4.5.8 --hash=sha256:" + "0" * 64,
        "triton==3.1.0 --hash=sha256:" + "0" * 64,
        "--index-url https://download.pytorch.org/whl/cpu",
        "--extra-index-url https://pypi.example.invalid/simple",
        "    # via /home/someone/project",
    ],
)
def test_machine_specific_or_cuda_lines_are_rejected(tmp_req: Path, line: str, capsys) -> None:
    lock_file = tmp_req / "backend.txt"
    lock_file.write_text(lock_file.read_text() + line + "\n")
    problems = relock.check_lock("backend")
    assert any("holds" in p for p in problems), problems
    assert main("--check") == 1
    assert "backend.txt holds" in capsys.readouterr().err


def test_compile_refuses_what_check_rejects() -> None:
    """compile_lock and check_lock share FORBIDDEN: it matches each kind of source."""
    for text in ("nvidia-cublas==1", "triton==3", "x @ file:///x", "--find-links x", "/opt/x"):
        assert relock.FORBIDDEN.search(text), text
    for text in ("torch==2.13.0+cpu", "nvidia==1", "tritonclient==2", "optree==0.1"):
        assert not relock.FORBIDDEN.search(text), text


def test_unhashed_lock_and_pin_not_in_dev_are_reported(tmp_req: Path) -> None:
    flask = tmp_req / "flask.txt"
    text = flask.read_text()
    flask.write_text(re.sub(r"\s*\\\n\s*--hash=sha256:[0-9a-f]{64}", "", text))
    assert any("has no hashes" in p for p in relock.check_lock("flask"))
    flask.write_text(text + "left-pad==9.9.9 --hash=sha256:" + "1" * 64 + "\n")
    assert any("left-pad==9.9.9, dev.txt does not" in p for p in relock.check_lock("flask"))


def test_missing_lock_is_reported(tmp_req: Path) -> None:
    (tmp_req / "trainer.txt").unlink()
    assert relock.check_lock("trainer") == ["requirements/trainer.txt is missing: run `make lock`"]


# ---- the committed locks ------------------------------------------------------------------
LOCKS = sorted(REQ.glob("*.txt"))
BAD_LINE = re.compile(
    r"file://|/opt/|^\s*(--index-url|--extra-index-url|--find-links|-f\s|-i\s)", re.IGNORECASE
)


@pytest.mark.parametrize("path", LOCKS, ids=lambda p: p.name)
def test_committed_lock_holds_no_cuda_or_machine_specific_source(path: Path) -> None:
    cuda = [p.name for p in read_lock(path) if p.name.startswith("nvidia-") or p.name == "triton"]
    assert cuda == [], path.name
    for number, line in enumerate(path.read_text().splitlines(), 1):
        assert not BAD_LINE.search(line), f"{path.name}:{number}: {line}"


def pins(name: str) -> dict:
    return {pin.name: pin for pin in read_lock(REQ / f"{name}.txt")}


@pytest.mark.parametrize("app", ["backend", "trainer"])
def test_torch_is_the_cpu_build(app: str) -> None:
    assert pins(app)["torch"].version.endswith("+cpu")


@pytest.mark.parametrize("app", ["frontend", "flask"])
def test_services_without_ml_core_hold_no_torch(app: str) -> None:
    assert not {"torch", "torchvision", "triton"} & set(pins(app))


@pytest.mark.parametrize("app", APP_LOCKS)
def test_app_lock_pins_agree_with_dev(app: str) -> None:
    dev = pins("dev")
    for name, pin in pins(app).items():
        assert name in dev, f"{app}.txt pins {name}, dev.txt does not"
        assert (dev[name].version, dev[name].hashes) == (pin.version, pin.hashes), name


def test_lock_names_follow_apps_toml(tmp_req: Path) -> None:
    apps = tmp_req.parent / "dockerfiles" / "apps.toml"
    apps.write_text(apps.read_text() + '\n[extra]\npackages = ["x"]\ncommand = ["x"]\n')
    assert relock.lock_names()[-2:] == ["extra", "tools"]
    assert relock.lock_names()[0] == "dev"


def test_layout_names_each_missing_piece(tmp_req: Path, capsys) -> None:
    apps = tmp_req.parent / "dockerfiles" / "apps.toml"
    apps.write_text(apps.read_text() + '\n[extra]\npackages = ["x"]\ncommand = ["x"]\n')
    (tmp_req / "orphan.in").write_text("flask\n")
    assert relock.layout_problems() == [
        "[extra] in dockerfiles/apps.toml has no requirements/extra.in: write the app's "
        "requirements there",
        "requirements/orphan.in has no [orphan] table in dockerfiles/apps.toml: add one, or "
        "remove the file",
    ]
    (tmp_req / "orphan.in").unlink()
    (tmp_req / "extra.in").write_text("flask\n")
    assert relock.layout_problems() == [
        "requirements/dev.in does not include extra.in: add the line `-r extra.in` "
        "(the test venv runs every app)"
    ]
    assert main("--check") == 1
    assert "dev.in does not include extra.in" in capsys.readouterr().err
    assert main("--only", "extra") == 1, "locking refuses an incomplete layout"
    assert "lock: error: requirements/dev.in does not include" in capsys.readouterr().err


def test_only_names_a_known_lock(tmp_req: Path, capsys) -> None:
    assert main("--only", "nope") == 1
    assert "no lock named nope; the locks: dev, backend" in capsys.readouterr().err
