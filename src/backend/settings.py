"""Backend settings, read from environment variables in one place."""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the backend; each field is read from the environment variable of that name."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore")

    MODEL_DIR: Path = Path("artifacts/image")
    SAMPLES_DIR: Path | None = None  # default: MODEL_DIR / "samples"
    MAX_UPLOAD_BYTES: int = Field(default=5 * 1024 * 1024, gt=0)
    MAX_IMAGE_PIXELS: int = Field(default=4096 * 4096, gt=0)
    MAX_JPEG_SCANS: int = Field(default=64, gt=0)
    # Decoding and inference run in this many threads per worker; a request that waits more
    # than QUEUE_TIMEOUT seconds for one is answered 503 with Retry-After.
    DECODE_WORKERS: int = Field(default=2, gt=0)
    QUEUE_TIMEOUT: float = Field(default=5.0, gt=0)
    TORCH_THREADS: int = Field(default=1, ge=1)
    LOG_LEVEL: str = "INFO"

    @field_validator("LOG_LEVEL")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in logging.getLevelNamesMapping():
            raise ValueError(f"unknown log level {value!r}")
        return level

    @model_validator(mode="after")
    def _default_samples_dir(self) -> Settings:
        if self.SAMPLES_DIR is None:
            self.SAMPLES_DIR = self.MODEL_DIR / "samples"
        return self

    @property
    def samples_dir(self) -> Path:
        """SAMPLES_DIR, or MODEL_DIR/samples when unset."""
        return self.SAMPLES_DIR if self.SAMPLES_DIR is not None else self.MODEL_DIR / "samples"
