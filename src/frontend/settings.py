"""Frontend settings, read from environment variables."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """`API_URL`, `REQUEST_TIMEOUT` (seconds) and `MAX_UPLOAD_BYTES` from the environment."""

    model_config = SettingsConfigDict(extra="ignore")

    api_url: str = "http://localhost:8000"
    request_timeout: float = Field(default=5.0, gt=0, le=300)
    max_upload_bytes: int = Field(default=5 * 1024 * 1024, gt=0)

    @field_validator("api_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("API_URL must start with http:// or https://")
        return value
