"""Settings come from environment variables with documented defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from backend.settings import Settings

ENV_NAMES = (
    "MODEL_DIR",
    "SAMPLES_DIR",
    "MAX_UPLOAD_BYTES",
    "MAX_IMAGE_PIXELS",
    "TORCH_THREADS",
    "LOG_LEVEL",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


def test_defaults() -> None:
    settings = Settings()
    assert Path("artifacts/image") == settings.MODEL_DIR
    assert Path("artifacts/image/samples") == settings.SAMPLES_DIR
    assert settings.samples_dir == Path("artifacts/image/samples")
    assert settings.MAX_UPLOAD_BYTES == 5 * 1024 * 1024
    assert settings.MAX_IMAGE_PIXELS == 4096 * 4096
    assert settings.TORCH_THREADS == 1
    assert settings.LOG_LEVEL == "INFO"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "m"))
    monkeypatch.setenv("MAX_UPLOAD_BYTES", "1234")
    monkeypatch.setenv("MAX_IMAGE_PIXELS", "99")
    monkeypatch.setenv("TORCH_THREADS", "2")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    settings = Settings()
    assert tmp_path / "m" == settings.MODEL_DIR
    assert settings.samples_dir == tmp_path / "m" / "samples"
    assert (settings.MAX_UPLOAD_BYTES, settings.MAX_IMAGE_PIXELS) == (1234, 99)
    assert settings.TORCH_THREADS == 2
    assert settings.LOG_LEVEL == "DEBUG"


def test_samples_dir_can_be_separate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SAMPLES_DIR", str(tmp_path / "s"))
    assert Settings().samples_dir == tmp_path / "s"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAX_UPLOAD_BYTES", "0"),
        ("MAX_UPLOAD_BYTES", "lots"),
        ("MAX_IMAGE_PIXELS", "-1"),
        ("TORCH_THREADS", "0"),
        ("LOG_LEVEL", "chatty"),
    ],
)
def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name):
        Settings()
