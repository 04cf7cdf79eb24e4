"""Routes: ``/``, ``/health`` and ``/predict``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import BadRequest

from flask_api.predict import InvalidInput, parse_features, predict

bp = Blueprint("api", __name__)


def _model() -> tuple[Any, dict[str, Any]]:
    return current_app.extensions["tabular_model"]


@bp.get("/")
def index() -> Response:
    return current_app.response_class("Welcome to the Simple Flask App!", mimetype="text/plain")


@bp.get("/health")
def health() -> Response:
    _, metadata = _model()
    return jsonify(status="healthy", model_loaded=True, model=metadata["model"])


@bp.post("/predict")
def predict_route() -> Response:
    if not request.is_json:
        raise InvalidInput("Content-Type must be application/json", 415)
    try:
        payload = request.get_json()
    except BadRequest:
        raise InvalidInput("request body is not valid JSON", 400) from None
    except RecursionError:  # json's decoder on deeply nested arrays
        raise InvalidInput("request body is not valid JSON: nested too deeply", 400) from None
    estimator, metadata = _model()
    X = parse_features(payload, metadata["n_features"], current_app.config["MAX_BATCH"])
    return jsonify(predictions=predict(estimator, metadata["class_names"], X))
