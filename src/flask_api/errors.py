"""JSON bodies for every error, Flask's own included: ``{"error": "message"}``."""

from __future__ import annotations

from flask import Flask, Response, current_app, jsonify
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge

from flask_api.predict import InvalidInput


def _http_error(exc: HTTPException) -> Response:
    response = exc.get_response()  # keeps headers such as Allow on 405
    response.data = jsonify(error=exc.description or exc.name).get_data()
    response.content_type = "application/json"
    return response


def _too_large(exc: RequestEntityTooLarge) -> Response:
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    exc.description = f"request body too large: at most {limit} bytes (MAX_CONTENT_LENGTH)"
    return _http_error(exc)


def _invalid_input(exc: InvalidInput) -> tuple[Response, int]:
    return jsonify(error=exc.message), exc.status


def _unexpected(exc: Exception) -> tuple[Response, int]:
    # Flask passes unhandled exceptions wrapped in InternalServerError(original_exception=...).
    return jsonify(error="internal server error"), 500


def register_error_handlers(app: Flask) -> None:
    """Register the JSON handlers (400/404/405/413/415 and any other HTTP error, 500)."""
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(RequestEntityTooLarge, _too_large)
    app.register_error_handler(InvalidInput, _invalid_input)
    app.register_error_handler(InternalServerError, _unexpected)
