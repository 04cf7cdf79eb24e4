"""Validate ``/predict`` payloads and turn model outputs into JSON-ready predictions."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# Far beyond any real Iris/Wine measurement, far below float32 overflow (random forests cast).
MAX_ABS_FEATURE = 1e9


class InvalidInput(ValueError):
    """A request the client must fix; ``status`` is the HTTP code to answer with."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _number(value: Any, where: str) -> float:
    # bool is an int subclass; True is not a measurement.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"{where} must be a number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:
        raise InvalidInput(f"{where} is too large") from None
    if not math.isfinite(number):
        raise InvalidInput(f"{where} must be a finite number, got {value!r}")
    if abs(number) > MAX_ABS_FEATURE:
        raise InvalidInput(f"{where} is out of range: |value| must be at most {MAX_ABS_FEATURE:g}")
    return number


def parse_features(payload: Any, n_features: int, max_batch: int) -> np.ndarray:
    """``{"features": [..]}`` or ``{"features": [[..], ..]}`` -> float64 array (rows, n)."""
    if not isinstance(payload, dict):
        raise InvalidInput("request body must be a JSON object with a 'features' key", 400)
    if "features" not in payload:
        raise InvalidInput("missing 'features': send {\"features\": [f1, ..., fn]}")
    features = payload["features"]
    if not isinstance(features, list):
        raise InvalidInput("'features' must be a list of numbers or a list of rows")
    if not features:
        raise InvalidInput("'features' must not be empty")
    batch = isinstance(features[0], list)
    rows = features if batch else [features]
    if len(rows) > max_batch:
        raise InvalidInput(f"too many rows: {len(rows)} (at most {max_batch} per request)", 413)
    matrix = []
    for i, row in enumerate(rows):
        label = f"row {i}" if batch else "features"
        if not isinstance(row, list):
            raise InvalidInput(f"{label} must be a list of numbers (do not mix rows and numbers)")
        if len(row) != n_features:
            raise InvalidInput(f"{label} has {len(row)} values; expected {n_features} features")
        matrix.append([_number(v, f"{label}[{j}]") for j, v in enumerate(row)])
    return np.asarray(matrix, dtype=np.float64)


def predict(estimator: Any, class_names: list[str], X: np.ndarray) -> list[dict[str, Any]]:
    """Class, class index and per-class probabilities for each row of ``X``."""
    try:
        with np.errstate(all="ignore"):
            labels = estimator.predict(X)
            probabilities = estimator.predict_proba(X)
    except ValueError as exc:  # sklearn's own input checks
        raise InvalidInput(f"the model cannot score these features: {exc}") from exc
    if not np.all(np.isfinite(probabilities)):
        raise InvalidInput("feature values are out of the range the model can score")
    classes = list(estimator.classes_)
    results = []
    for label, row in zip(labels, probabilities, strict=True):
        index = classes.index(label)
        results.append(
            {
                "class": class_names[index],
                "class_index": index,
                "probabilities": {name: float(p) for name, p in zip(class_names, row, strict=True)},
            }
        )
    return results
