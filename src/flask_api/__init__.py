"""Flask API serving the trainer's scikit-learn model (``create_app`` factory)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from flask_api import config
from flask_api.errors import register_error_handlers
from flask_api.model import ModelLoadError, load_model
from flask_api.views import bp


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: settings from the environment (or ``test_config``), model loaded once."""
    app = Flask(__name__)
    app.config.from_mapping(config.from_env())
    if test_config is not None:
        app.config.from_mapping(test_config)
    try:
        app.extensions["tabular_model"] = load_model(app.config["MODEL_DIR"])
    except ModelLoadError as exc:
        raise RuntimeError(f"flask_api cannot start: {exc}") from exc
    register_error_handlers(app)
    app.register_blueprint(bp)
    return app
