"""Deterministic training: tiny runs for determinism, one slow run for real accuracy."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from grocery import CLASSES
from grocery.model import save_model, weights_sha256
from grocery.synth import generate
from grocery.train import (
    EpochReport,
    TrainConfig,
    augment,
    class_report,
    confusion,
    train,
)

TINY = TrainConfig(epochs=2, batch_size=16, seed=5, threads=1)


def _weights_hash(result, directory: Path) -> str:
    meta = {"classes": result.classes, "input_size": 64, "width": TINY.width}
    save_model(result.model, directory, meta)
    return weights_sha256(directory)


def test_training_twice_gives_identical_weights(tiny_data: Path, tmp_path: Path) -> None:
    first = train(tiny_data, TINY)
    second = train(tiny_data, TINY)
    assert _weights_hash(first, tmp_path / "a") == _weights_hash(second, tmp_path / "b")
    assert first.metrics == second.metrics


def test_another_seed_gives_other_weights(tiny_data: Path, tmp_path: Path) -> None:
    first = train(tiny_data, TINY)
    other = train(tiny_data, TrainConfig(epochs=2, batch_size=16, seed=6, threads=1))
    assert _weights_hash(first, tmp_path / "a") != _weights_hash(other, tmp_path / "b")


def test_metrics_and_progress(tiny_data: Path) -> None:
    reports: list[EpochReport] = []
    result = train(tiny_data, TINY, progress=reports.append)
    assert [r.epoch for r in reports] == [1, 2]
    assert all(r.epochs == 2 and r.loss > 0 and 0 <= r.val_accuracy <= 1 for r in reports)
    assert reports[1].seconds >= reports[0].seconds >= 0
    metrics = result.metrics
    assert result.classes == sorted(CLASSES)
    assert metrics["counts"] == {"train": 48, "val": 16, "test": 16}
    matrix = np.array(metrics["confusion_matrix"])
    assert matrix.shape == (8, 8) and matrix.sum() == 16
    assert metrics["test_accuracy"] == pytest.approx(np.trace(matrix) / 16)
    assert set(metrics["per_class"]) == set(CLASSES)
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert result.seconds > 0
    assert not result.model.training


def test_training_restores_global_torch_settings(tiny_data: Path) -> None:
    before = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    train(tiny_data, TrainConfig(epochs=1, threads=1))
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == before


def test_bad_epochs(tiny_data: Path) -> None:
    with pytest.raises(ValueError, match="epochs"):
        train(tiny_data, TrainConfig(epochs=0))


def test_augment_flips_and_shifts_deterministically() -> None:
    batch = np.arange(2 * 3 * 8 * 8, dtype=np.float32).reshape(2, 3, 8, 8)
    a = augment(batch, np.random.default_rng(1), max_shift=2)
    b = augment(batch, np.random.default_rng(1), max_shift=2)
    assert a.shape == batch.shape and np.array_equal(a, b)
    assert any(
        not np.array_equal(augment(batch, np.random.default_rng(s), 2), batch) for s in range(5)
    )
    # without shifts every image is its original up to flips
    flipped = augment(batch, np.random.default_rng(3), max_shift=0)
    for original, out in zip(batch, flipped, strict=True):
        candidates = [original, original[:, ::-1], original[:, :, ::-1], original[:, ::-1, ::-1]]
        assert any(np.array_equal(out, c) for c in candidates)
    assert np.array_equal(batch, np.arange(batch.size, dtype=np.float32).reshape(batch.shape))


def test_confusion_and_class_report() -> None:
    y_true = np.array([0, 0, 1, 1, 2])
    y_pred = np.array([0, 1, 1, 1, 0])
    matrix = confusion(y_true, y_pred, 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    report = class_report(matrix, ["a", "b", "c"])
    assert report["a"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert report["b"]["precision"] == pytest.approx(0.6667)
    assert report["b"]["recall"] == 1.0
    assert report["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


@pytest.mark.slow
def test_default_configuration_is_accurate_and_deterministic(tmp_path: Path) -> None:
    """The shipped defaults: >= 90% test accuracy, same weights twice."""
    generate(tmp_path / "data", seed=0)
    first = train(tmp_path / "data")
    second = train(tmp_path / "data")
    print(
        f"test accuracy {first.metrics['test_accuracy']:.4f}, "
        f"training {first.seconds:.1f}s / {second.seconds:.1f}s"
    )
    assert first.metrics["test_accuracy"] >= 0.90
    assert _weights_hash(first, tmp_path / "a") == _weights_hash(second, tmp_path / "b")
    assert first.metrics == second.metrics


def test_fit_does_not_depend_on_wall_clock(tiny_data: Path) -> None:
    start = time.perf_counter()
    result = train(tiny_data, TrainConfig(epochs=1, threads=1))
    assert "seconds" not in result.metrics  # artifacts must not carry timings
    assert result.seconds <= time.perf_counter() - start
