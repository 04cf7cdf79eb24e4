"""The app factory, import-time behaviour and start-up failures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from backend_support import image_bytes
from fastapi.testclient import TestClient

from backend.inference import ModelNotFoundError
from backend.main import create_app
from backend.settings import Settings

SRC = Path(__file__).resolve().parents[2] / "src"


def test_import_does_not_load_the_model(tmp_path: Path) -> None:
    # MODEL_DIR points nowhere: importing backend.main (which builds `app`) must still work.
    env = dict(os.environ, MODEL_DIR=str(tmp_path / "missing"), PYTHONPATH=str(SRC))
    code = "import backend.main as m; print(m.app.title, m.app.state.classifier)"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Grocery image classifier None"


def test_create_app_does_not_load_the_model(tmp_path: Path) -> None:
    app = create_app(Settings(MODEL_DIR=tmp_path / "missing"))
    assert app.state.classifier is None


def test_start_up_fails_clearly_without_a_model(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    app = create_app(Settings(MODEL_DIR=missing))
    with pytest.raises(ModelNotFoundError) as info, TestClient(app):
        pass
    message = str(info.value)
    assert f"no model in MODEL_DIR={missing}" in message
    assert "model.safetensors" in message


def test_start_up_fails_clearly_with_an_empty_model_dir(tmp_path: Path) -> None:
    with (
        pytest.raises(ModelNotFoundError, match="no model in MODEL_DIR"),
        TestClient(create_app(Settings(MODEL_DIR=tmp_path))),
    ):
        pass


@pytest.mark.parametrize("threads", [1, 2])
def test_predictions_use_torch_threads(settings: Settings, threads: int) -> None:
    seen: list[int] = []
    before = torch.get_num_threads()
    try:
        with TestClient(create_app(settings.model_copy(update={"TORCH_THREADS": threads}))) as c:
            model = c.app.state.classifier.model
            model.register_forward_pre_hook(lambda *_: seen.append(torch.get_num_threads()))
            png = image_bytes()
            for _ in range(3):
                assert c.post("/predict", files={"file": ("a.png", png)}).status_code == 200
    finally:
        torch.set_num_threads(before)
    assert seen == [threads] * 3


def test_uvicorn_exits_with_a_readable_error_without_a_model(tmp_path: Path) -> None:
    env = dict(os.environ, MODEL_DIR=str(tmp_path / "missing"), PYTHONPATH=str(SRC))
    command = [sys.executable, "-m", "uvicorn", "backend.main:app", "--port", "0"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "no model in MODEL_DIR=" in result.stderr
    assert "Application startup failed" in result.stderr
