"""The tabular trainer: model comparison, metrics, artifacts, determinism."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.naive_bayes import GaussianNB

from flask_api.model import ALLOWED_UNTRUSTED_TYPES, load_model
from trainer import tabular

SRC = Path(__file__).resolve().parents[2] / "src"
FILES = ("model.skops", "metadata.json", "metrics.json", "confusion_matrix.png", "predictions.csv")


def quiet(_line: str) -> None:
    """A progress callback that prints nothing."""


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("iris")
    lines: list[str] = []
    metrics = tabular.run_tabular(out, "iris", progress=lines.append)
    return out, metrics, lines


def read_predictions(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def test_iris_writes_every_file(iris_run):
    out, _, _ = iris_run
    for name in FILES:
        assert (out / name).stat().st_size > 0, name
    assert (out / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert zipfile.is_zipfile(out / "model.skops")


def test_iris_compares_models_and_picks_the_best(iris_run):
    out, metrics, lines = iris_run
    cv = metrics["cv"]
    assert len(cv) >= 3
    for scores in cv.values():
        assert len(scores["scores"]) == 5
        assert scores["mean"] == pytest.approx(np.mean(scores["scores"]))
    best = metrics["best_model"]
    assert cv[best]["mean"] == max(s["mean"] for s in cv.values())
    # one progress line per candidate, with mean +/- std
    for name, scores in cv.items():
        assert any(name in line and f"{scores['mean']:.4f} +/- " in line for line in lines)
    assert json.loads((out / "metrics.json").read_text()) == metrics


def test_iris_test_metrics_are_consistent(iris_run):
    out, metrics, lines = iris_run
    test = metrics["test"]
    assert test["accuracy"] >= 0.85
    matrix = np.array(test["confusion_matrix"])
    assert matrix.shape == (3, 3)
    assert matrix.sum() == metrics["n_test"] == 38
    assert np.trace(matrix) / matrix.sum() == pytest.approx(test["accuracy"])
    report = test["classification_report"]
    assert report["accuracy"] == pytest.approx(test["accuracy"])
    assert {"setosa", "versicolor", "virginica", "macro avg"} <= set(report)
    assert any("macro avg" in line for line in lines)  # the report was printed

    header, rows = read_predictions(out / "predictions.csv")
    metadata = json.loads((out / "metadata.json").read_text())
    assert header == [*metadata["feature_names"], "true", "predicted"]
    assert len(rows) == metrics["n_test"]
    hits = sum(row["true"] == row["predicted"] for row in rows)
    assert hits / len(rows) == pytest.approx(test["accuracy"])


def test_iris_metadata(iris_run):
    out, metrics, _ = iris_run
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["dataset"] == "iris"
    assert metadata["n_features"] == 4 == len(metadata["feature_names"])
    assert metadata["class_names"] == ["setosa", "versicolor", "virginica"]
    assert metadata["model"] == metrics["best_model"]
    assert metadata["seed"] == 42
    assert {"scikit-learn", "skops", "numpy"} <= set(metadata["library_versions"])
    assert isinstance(metadata["model_params"], dict) and metadata["model_params"]
    text = (out / "metadata.json").read_text() + (out / "metrics.json").read_text()
    assert str(out) not in text  # no absolute paths


def test_saved_model_reproduces_predictions(iris_run):
    out, _, _ = iris_run
    estimator, metadata = load_model(out)
    _, rows = read_predictions(out / "predictions.csv")
    X = np.array([[float(row[f]) for f in metadata["feature_names"]] for row in rows])
    predicted = [metadata["class_names"][i] for i in estimator.predict(X)]
    assert predicted == [row["predicted"] for row in rows]


def test_wine_trains(tmp_path):
    metrics = tabular.run_tabular(tmp_path, "wine", progress=quiet)
    metadata = json.loads((tmp_path / "metadata.json").read_text())
    assert metadata["n_features"] == 13
    assert len(metadata["class_names"]) == 3
    assert metrics["test"]["accuracy"] >= 0.85
    assert np.array(metrics["test"]["confusion_matrix"]).sum() == metrics["n_test"]
    estimator, _ = load_model(tmp_path)
    assert estimator.n_features_in_ == 13


def _digests(folder: Path) -> dict[str, str]:
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in FILES}


def test_same_call_gives_identical_bytes_in_another_process(iris_run, tmp_path):
    """skops embeds object ids and zip times; a fresh process changes both unless normalised."""
    out, _, _ = iris_run
    code = "import sys; from trainer.tabular import run_tabular; run_tabular(sys.argv[1], 'iris')"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        check=True,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert _digests(tmp_path) == _digests(out)


def test_stable_skops_bytes_every_candidate_loads_back(tmp_path):
    """Every candidate survives normalisation and passes the Flask loader's allow-list."""
    X, y = load_iris(return_X_y=True)
    for name, model in tabular.candidates(seed=0).items():
        model.fit(X, y)
        first = tabular.stable_skops_bytes(model)
        assert tabular.stable_skops_bytes(model) == first, name
        with zipfile.ZipFile(io.BytesIO(first)) as archive:
            assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        folder = tmp_path / name
        folder.mkdir()
        (folder / "model.skops").write_bytes(first)
        metadata = {
            "class_names": ["a", "b", "c"],
            "feature_names": list("wxyz"),
            "n_features": 4,
            "model": name,
        }
        (folder / "metadata.json").write_text(json.dumps(metadata))
        loaded, _ = load_model(folder)
        np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_allow_list_has_no_prefix_wildcards():
    assert all(not t.endswith(".") and t.count(".") >= 1 for t in ALLOWED_UNTRUSTED_TYPES)


def test_ties_go_to_the_earlier_candidate(tmp_path, monkeypatch):
    monkeypatch.setattr(
        tabular,
        "candidates",
        lambda seed: {
            "zz_first": GaussianNB(),
            "aa_second": GaussianNB(),
            "mm_third": GaussianNB(),
        },
    )
    metrics = tabular.run_tabular(tmp_path, "iris", progress=quiet)
    assert len({s["mean"] for s in metrics["cv"].values()}) == 1
    assert metrics["best_model"] == "zz_first"


def test_unknown_dataset_names_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match=r"iris, wine"):
        tabular.run_tabular(tmp_path, "digits", progress=quiet)
    assert not list(tmp_path.iterdir())


def test_folds_below_two_are_refused(tmp_path):
    with pytest.raises(ValueError, match="folds"):
        tabular.run_tabular(tmp_path, "iris", folds=1, progress=quiet)
