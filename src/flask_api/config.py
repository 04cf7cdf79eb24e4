"""Settings of the Flask API, read from environment variables (the only place that does)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

DEFAULTS: dict[str, Any] = {
    "MODEL_DIR": "artifacts/tabular",
    "MAX_CONTENT_LENGTH": 64 * 1024,  # bytes of request body
    "MAX_BATCH": 1000,  # rows per /predict request
}


class ConfigError(ValueError):
    """An environment variable holds an unusable value."""


def _positive_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a positive integer, got {raw!r}") from None
    if value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {raw!r}")
    return value


def from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return the app settings: ``DEFAULTS`` overridden by the environment."""
    env = os.environ if environ is None else environ
    settings = dict(DEFAULTS)
    if env.get("MODEL_DIR"):
        settings["MODEL_DIR"] = env["MODEL_DIR"]
    for name in ("MAX_CONTENT_LENGTH", "MAX_BATCH"):
        if env.get(name):
            settings[name] = _positive_int(name, env[name])
    return settings
