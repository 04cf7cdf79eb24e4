"""Load the trainer's scikit-learn model (``model.skops`` + ``metadata.json``) safely.

Only skops is used (never pickle). A file is loaded only if every type skops does not trust by
default is on :data:`ALLOWED_UNTRUSTED_TYPES`; those exact types, and no others, are trusted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MODEL_FILE = "model.skops"
METADATA_FILE = "metadata.json"
REQUIRED_METADATA = ("class_names", "feature_names", "n_features", "model")

# Exact type names (no prefixes: "numpy." alone would admit numpy.load and friends).
# These are the types the trainer's candidate models need beyond skops' defaults.
ALLOWED_UNTRUSTED_TYPES: frozenset[str] = frozenset(
    {
        "sklearn.tree._tree.Tree",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.metrics._dist_metrics.EuclideanDistance32",
        "sklearn.metrics._dist_metrics.MinkowskiDistance64",
        "sklearn.metrics._dist_metrics.ManhattanDistance64",
        "numpy.dtype",
        "numpy.float64",
        "numpy.int64",
    }
)


class ModelLoadError(RuntimeError):
    """The model directory cannot be turned into a usable model."""


class ModelFilesMissingError(ModelLoadError, FileNotFoundError):
    """``model.skops`` or ``metadata.json`` is not there."""


class UntrustedModelError(ModelLoadError):
    """The skops file references types outside the allow-list."""


def check_untrusted_types(untrusted: list[str]) -> list[str]:
    """Return ``untrusted`` if every entry is allowed, else raise :class:`UntrustedModelError`."""
    refused = sorted(set(untrusted) - ALLOWED_UNTRUSTED_TYPES)
    if refused:
        raise UntrustedModelError(
            f"refusing to load model: it references types that are not allowed: {refused}"
        )
    return list(untrusted)


def _read_metadata(path: Path) -> dict[str, Any]:
    try:
        metadata = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from exc
    if not isinstance(metadata, dict):
        raise ModelLoadError(f"{path} must hold a JSON object")
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise ModelLoadError(f"{path} lacks required keys: {missing}")
    return metadata


def load_model(model_dir: str | Path) -> tuple[Any, dict[str, Any]]:
    """Load ``(estimator, metadata)`` from a trainer output folder (``DIR/tabular``)."""
    import skops.io as sio

    model_dir = Path(model_dir)
    model_path = model_dir / MODEL_FILE
    metadata_path = model_dir / METADATA_FILE
    missing = [str(p) for p in (model_path, metadata_path) if not p.is_file()]
    if missing:
        raise ModelFilesMissingError(
            f"model files missing: {', '.join(missing)} "
            "(train one with `python -m trainer tabular --out DIR` and set MODEL_DIR=DIR/tabular)"
        )
    metadata = _read_metadata(metadata_path)
    try:
        untrusted = sio.get_untrusted_types(file=model_path)
    except Exception as exc:  # any parse failure means "not a model"
        raise ModelLoadError(f"{model_path} is not a readable skops file: {exc}") from exc
    trusted = check_untrusted_types(untrusted)
    try:
        estimator = sio.load(model_path, trusted=trusted)
    except Exception as exc:  # report any skops failure the same way
        raise ModelLoadError(f"cannot load {model_path}: {exc}") from exc
    for method in ("predict", "predict_proba"):
        if not callable(getattr(estimator, method, None)):
            raise ModelLoadError(f"{model_path} holds {type(estimator).__name__}, not a classifier")
    n_in = getattr(estimator, "n_features_in_", metadata["n_features"])
    if n_in != metadata["n_features"] or len(metadata["feature_names"]) != n_in:
        raise ModelLoadError(
            f"metadata says {metadata['n_features']} features but the model expects {n_in}"
        )
    if len(metadata["class_names"]) != len(getattr(estimator, "classes_", [])):
        raise ModelLoadError("metadata class_names do not match the model's classes")
    return estimator, metadata
