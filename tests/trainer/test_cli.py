"""`python -m trainer`: commands, defaults and one-line errors with exit status 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import trainer.cli as cli
from grocery import CLASSES
from grocery.dataset import data_hash
from grocery.model import load_model
from grocery.synth import generate

SRC = Path(__file__).resolve().parents[2] / "src"
TINY = (3, 1, 2)


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("trainer: error: ")
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the synthetic set the CLI generates by default tiny, so commands run fast."""
    monkeypatch.setattr(cli, "DEFAULT_PER_CLASS", TINY)


def test_missing_data_dir_exits_2_in_a_real_process(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(SRC))
    proc = subprocess.run(
        [sys.executable, "-m", "trainer", "image", "--data", str(tmp_path / "nope"),
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"trainer: error: data directory not found: {tmp_path / 'nope'}"
    ]
    assert "Traceback" not in proc.stderr


def test_empty_class_folder_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    generate(tmp_path / "data", per_class=(2, 1, 1), seed=0)
    for image in (tmp_path / "data" / "val" / "lime").iterdir():
        image.unlink()
    assert cli.main(["image", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "o")]) == 2
    line = _error_line(capsys)
    assert "val/lime" in line and "no .png/.jpg/.jpeg images" in line


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["tabular", "--out", "x", "--dataset", "mnist"], "invalid choice: 'mnist'"),
        (["all", "--dataset", "digits"], "invalid choice: 'digits'"),
        (["data", "--out", "x", "--per-class", "5,5"], "TRAIN,VAL,TEST"),
        (["data", "--out", "x", "--seed", "-3"], "non-negative"),
        (["image", "--out", "x", "--epochs", "0"], "positive"),
        (["image"], "--out"),
        (["juggle"], "invalid choice: 'juggle'"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    argv: list[str],
    fragment: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # nothing may be written
    assert cli.main(argv) == 2
    assert fragment in _error_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_data_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "data"
    assert cli.main(["data", "--out", str(out), "--seed", "4", "--per-class", "2,1,1"]) == 0
    assert len(list(out.rglob("*.png"))) == 4 * len(CLASSES)
    reference = tmp_path / "reference"
    generate(reference, per_class=(2, 1, 1), seed=4)
    assert data_hash(out) == data_hash(reference)
    assert "wrote 32 images" in capsys.readouterr().out


def test_image_without_data_trains_on_temporary_synthetic_set(
    tmp_path: Path, tiny: None, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "model"
    assert cli.main(["image", "--out", str(out), "--epochs", "1", "--seed", "2"]) == 0
    _, meta = load_model(out)
    reference = tmp_path / "reference"
    generate(reference, per_class=TINY, seed=2)
    assert meta["data_sha256"] == data_hash(reference)
    assert meta["seed"] == 2 and meta["epochs"] == 1
    stdout = capsys.readouterr().out
    assert "epoch 1/1" in stdout and "summary: test accuracy" in stdout


def test_tabular_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tab"
    assert cli.main(["tabular", "--out", str(out), "--dataset", "wine", "--seed", "1"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "wine" and metrics["seed"] == 1
    assert "summary:" in capsys.readouterr().out


def test_no_arguments_runs_all_into_trainer_out(
    tmp_path: Path, tiny: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRAINER_OUT", str(tmp_path / "artifacts"))
    monkeypatch.setattr(cli, "DEFAULT_EPOCHS", 1)
    assert cli.main([]) == 0
    root = tmp_path / "artifacts"
    for rel in (
        "image/model.safetensors",
        "image/metadata.json",
        "image/metrics.json",
        "image/confusion_matrix.png",
        "tabular/metrics.json",
    ):
        assert (root / rel).is_file(), rel
    assert len(list((root / "data").rglob("*.png"))) == sum(TINY) * len(CLASSES)
    assert sorted(p.name for p in (root / "image" / "samples").iterdir()) == sorted(CLASSES)
    assert json.loads((root / "tabular" / "metrics.json").read_text())["dataset"] == "iris"
    out = capsys.readouterr().out
    assert "summary:" in out and "tabular" in out


def test_default_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRAINER_OUT", raising=False)
    assert cli.default_out() == "artifacts"
    monkeypatch.setenv("TRAINER_OUT", "/artifacts")
    assert cli.default_out() == "/artifacts"


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    assert "data,image,tabular,all" in capsys.readouterr().out


def test_sigterm_stops_the_job_like_ctrl_c(tmp_path):
    """`docker stop` sends SIGTERM to PID 1, which ignores it unless a handler is set."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    src = Path(__file__).resolve().parents[2] / "src"
    env = dict(os.environ, PYTHONPATH=str(src))
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainer", "data", "--out", str(tmp_path / "d"),
         "--per-class", "400,40,40"],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not (tmp_path / "d").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 130
    assert "interrupted" in stderr
