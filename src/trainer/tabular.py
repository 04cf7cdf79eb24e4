"""Compare scikit-learn classifiers on Iris or Wine with cross-validation; save the best.

Everything written is byte-for-byte reproducible for the same arguments and library versions:
skops files are normalised (fixed zip timestamps, object ids renumbered; see
:func:`stable_skops_bytes`) because plain ``skops.io.dump`` embeds both.
"""

from __future__ import annotations

import csv
import io
import json
import platform
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.datasets import load_iris, load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from trainer.report import confusion_matrix_png, write_json

DATASETS: dict[str, Callable[..., Any]] = {"iris": load_iris, "wine": load_wine}
TEST_SIZE = 0.25
MODEL_FILE = "model.skops"
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def candidates(seed: int) -> dict[str, BaseEstimator]:
    """The models compared, in tie-break order (earlier wins a tie)."""
    return {
        "logistic_regression": Pipeline(
            [("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=1000))]
        ),
        "k_nearest_neighbors": Pipeline(
            [("scale", StandardScaler()), ("clf", KNeighborsClassifier(n_neighbors=5))]
        ),
        "gaussian_naive_bayes": GaussianNB(),
        "random_forest": RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1),
    }


def load_dataset(name: str) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Return ``X, y, feature_names, class_names`` of a built-in dataset (no download)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    bunch = DATASETS[name]()
    return (
        np.asarray(bunch.data, dtype=np.float64),
        np.asarray(bunch.target),
        [str(f) for f in bunch.feature_names],
        [str(c) for c in bunch.target_names],
    )


def _jsonable(value: Any) -> Any:
    """numpy scalars/arrays and nested containers -> plain JSON types; other objects -> name."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return type(value).__name__  # never repr(): it may hold a memory address


def model_params(estimator: BaseEstimator) -> dict[str, Any]:
    """JSON-safe ``get_params(deep=True)``; nested estimators appear as their class name."""
    params = estimator.get_params(deep=True)
    params.pop("steps", None)
    return {key: _jsonable(params[key]) for key in sorted(params)}


def stable_skops_bytes(estimator: BaseEstimator) -> bytes:
    """``skops.io.dumps`` with ids renumbered in schema order and fixed zip timestamps.

    skops names arrays and memo entries after ``id()`` of Python objects and stamps zip
    entries with the current time, so two dumps of the same model differ. Renumbering is a
    bijection on ids, so loading gives the same object graph.
    """
    import skops.io as sio

    source = zipfile.ZipFile(io.BytesIO(sio.dumps(estimator)))
    schema = json.loads(source.read("schema.json"))
    ids: dict[int, int] = {}
    files: dict[str, str] = {}

    def new_id(old: int) -> int:
        return ids.setdefault(old, len(ids) + 1)  # start at 1: skops treats id 0 as "none"

    def rename(name: str) -> str:
        if name not in files:
            stem, dot, suffix = name.partition(".")
            new_stem = str(new_id(int(stem))) if stem.isdigit() else f"blob{len(files)}"
            files[name] = f"{new_stem}{dot}{suffix}"
        return files[name]

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        out = {}
        for key, value in node.items():
            if key == "__id__" and isinstance(value, int):
                out[key] = new_id(value)
            elif key == "file" and isinstance(value, str):
                out[key] = rename(value)
            else:
                out[key] = walk(value)
        return out

    schema = walk(schema)
    unknown = set(source.namelist()) - set(files) - {"schema.json"}
    if unknown:
        raise RuntimeError(f"skops wrote entries not referenced by its schema: {sorted(unknown)}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        entries = [(new, source.read(old)) for old, new in files.items()]
        entries.append(("schema.json", json.dumps(schema, indent=2).encode()))
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.create_system = 3
            info.external_attr = 0o600 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(info, data, compresslevel=6)
    return buffer.getvalue()


def _check_round_trip(data: bytes, estimator: BaseEstimator, X: np.ndarray) -> None:
    """Reload the normalised bytes and make sure they predict exactly as the fitted model."""
    import skops.io as sio

    loaded = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    if not np.array_equal(loaded.predict_proba(X), estimator.predict_proba(X)):
        raise RuntimeError("normalised skops file does not reproduce the fitted model")


def _library_versions() -> dict[str, str]:
    from importlib.metadata import version

    libs = {name: version(name) for name in ("scikit-learn", "skops", "numpy", "scipy")}
    return {"python": platform.python_version(), **libs}


def _write_predictions(
    path: Path, X: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, features, classes
) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([*features, "true", "predicted"])
        for row, true, pred in zip(X, y_true, y_pred, strict=True):
            writer.writerow([*(repr(float(v)) for v in row), classes[true], classes[pred]])


def run_tabular(
    out_dir: str | Path,
    dataset: str = "iris",
    *,
    seed: int = 42,
    folds: int = 5,
    progress: Callable[[str], Any] = print,
) -> dict[str, Any]:
    """Train, compare, evaluate and save; return the metrics written to ``metrics.json``."""
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    X, y, feature_names, class_names = load_dataset(dataset)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=TEST_SIZE, stratify=y, random_state=seed
    )
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    progress(
        f"tabular: {dataset}, {len(X_train)} train / {len(X_test)} test rows, "
        f"{folds}-fold cross-validation"
    )

    models = candidates(seed)
    cv: dict[str, dict[str, Any]] = {}
    for name, model in models.items():
        scores = cross_val_score(clone(model), X_train, y_train, cv=splitter, n_jobs=1)
        cv[name] = {
            "scores": [float(s) for s in scores],
            "mean": float(np.mean(scores)),
            "std": float(np.std(scores)),
        }
        progress(f"  {name:<22} cv accuracy {scores.mean():.4f} +/- {scores.std():.4f}")

    # Highest mean wins; then lowest std; then the earlier candidate. Rounded so float noise
    # in the last bits cannot decide.
    order = list(models)
    best = min(
        order,
        key=lambda n: (-round(cv[n]["mean"], 10), round(cv[n]["std"], 10), order.index(n)),
    )
    progress(f"best model: {best} (cv accuracy {cv[best]['mean']:.4f})")

    estimator = clone(models[best]).fit(X_train, y_train)
    y_pred = estimator.predict(X_test)
    labels = list(range(len(class_names)))
    matrix = confusion_matrix(y_test, y_pred, labels=labels)
    report = classification_report(
        y_test,
        y_pred,
        labels=labels,
        target_names=class_names,
        output_dict=True,
        zero_division=0,
    )
    accuracy = float(accuracy_score(y_test, y_pred))
    progress(
        classification_report(
            y_test, y_pred, labels=labels, target_names=class_names, zero_division=0, digits=4
        )
    )
    progress(f"test accuracy: {accuracy:.4f}")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = stable_skops_bytes(estimator)
    _check_round_trip(data, estimator, X_test)
    (out / MODEL_FILE).write_bytes(data)

    metadata = {
        "dataset": dataset,
        "feature_names": feature_names,
        "class_names": class_names,
        "n_features": len(feature_names),
        "model": best,
        "model_class": type(estimator).__name__,
        "model_params": model_params(estimator),
        "model_file": MODEL_FILE,
        "seed": seed,
        "folds": folds,
        "test_size": TEST_SIZE,
        "library_versions": _library_versions(),
    }
    metrics = {
        "dataset": dataset,
        "seed": seed,
        "folds": folds,
        "n_train": len(X_train),
        "n_test": len(X_test),
        "cv": cv,
        "best_model": best,
        "class_names": class_names,
        "test": {
            "accuracy": accuracy,
            "confusion_matrix": _jsonable(matrix),
            "classification_report": _jsonable(report),
        },
    }
    write_json(out / "metadata.json", metadata)
    write_json(out / "metrics.json", metrics)
    confusion_matrix_png(
        matrix.tolist(),
        class_names,
        out / "confusion_matrix.png",
        title=f"{dataset}: {best}\ntest accuracy {accuracy:.3f}",
    )
    _write_predictions(out / "predictions.csv", X_test, y_test, y_pred, feature_names, class_names)
    progress(
        f"wrote {MODEL_FILE}, metadata.json, metrics.json, confusion_matrix.png, "
        f"predictions.csv to {out}"
    )
    return metrics
