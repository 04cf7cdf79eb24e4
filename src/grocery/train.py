"""Seeded, deterministic CPU training of GroceryCNN.

Determinism: torch.manual_seed for the initial weights, a numpy Generator for shuffling and
augmentation, `torch.use_deterministic_algorithms(True)` and a fixed thread count. One thread is
the default: the default synthetic set (1600 training images, 12 epochs) trains in about 30 s
on one core (50-80 s while other jobs share the 2-core machine), so two threads buy nothing
worth having, and with one thread the weights do not depend on how many cores the machine has
(work split over threads rounds differently: 1 and 2 threads give different weights).
Same seed + same data + same machine type -> byte-identical weights.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from grocery.dataset import load_split
from grocery.model import GroceryCNN


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters; the defaults reach >= 90% test accuracy on the synthetic set."""

    epochs: int = 12
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    width: int = 16
    size: int = 64
    seed: int = 0
    threads: int = 1
    augment: bool = True
    max_shift: int = 4


@dataclass(frozen=True)
class EpochReport:
    """What the progress callback receives after every epoch."""

    epoch: int
    epochs: int
    loss: float
    val_accuracy: float
    seconds: float


@dataclass
class TrainResult:
    model: GroceryCNN
    classes: list[str]
    metrics: dict[str, Any]  # deterministic: safe to write into artifacts
    seconds: float  # wall-clock training time: not deterministic, keep out of artifacts


@contextmanager
def deterministic(seed: int, threads: int) -> Iterator[None]:
    """Seed torch, force deterministic kernels and a fixed thread count; restore afterwards."""
    previous = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.set_num_threads(previous[0])
        torch.use_deterministic_algorithms(previous[1])


def augment(batch: np.ndarray, rng: np.random.Generator, max_shift: int) -> np.ndarray:
    """Random horizontal/vertical flips and small shifts (edge padding), numpy only."""
    out = batch.copy()
    n, _, h, w = out.shape
    flip_h = rng.random(n) < 0.5
    flip_v = rng.random(n) < 0.5
    out[flip_h] = out[flip_h, :, :, ::-1]
    out[flip_v] = out[flip_v, :, ::-1, :]
    if max_shift > 0:
        padded = np.pad(
            out, ((0, 0), (0, 0), (max_shift, max_shift), (max_shift, max_shift)), mode="edge"
        )
        shifts = rng.integers(0, 2 * max_shift + 1, size=(n, 2))
        for i, (dy, dx) in enumerate(shifts):
            out[i] = padded[i, :, dy : dy + h, dx : dx + w]
    return out


def predict(model: nn.Module, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Class indices for a (N, 3, H, W) float32 array."""
    model.eval()
    preds = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            logits = model(torch.from_numpy(x[start : start + batch_size]))
            preds.append(logits.argmax(dim=1).numpy())
    return np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def class_report(matrix: np.ndarray, classes: list[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of each class from a confusion matrix."""
    report = {}
    for i, name in enumerate(classes):
        tp = float(matrix[i, i])
        predicted, actual = float(matrix[:, i].sum()), float(matrix[i].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        report[name] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": int(actual),
        }
    return report


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    return float((predict(model, x) == y).mean()) if len(y) else 0.0


def fit(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    num_classes: int,
    config: TrainConfig = TrainConfig(),
    progress: Callable[[EpochReport], Any] | None = None,
) -> tuple[GroceryCNN, list[dict[str, float]]]:
    """Train a fresh GroceryCNN; return it and the per-epoch history (loss, val accuracy)."""
    if config.epochs < 1:
        raise ValueError("epochs must be at least 1")
    if len(x_train) == 0:
        raise ValueError("no training images")
    with deterministic(config.seed, config.threads):
        rng = np.random.default_rng(config.seed)
        model = GroceryCNN(num_classes=num_classes, width=config.width)
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        steps_per_epoch = -(-len(x_train) // config.batch_size)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=config.learning_rate,
            total_steps=config.epochs * steps_per_epoch,
            pct_start=0.25,
        )
        loss_fn = nn.CrossEntropyLoss()
        history: list[dict[str, float]] = []
        start = time.perf_counter()
        for epoch in range(1, config.epochs + 1):
            model.train()
            order = rng.permutation(len(x_train))
            total, seen = 0.0, 0
            for first in range(0, len(order), config.batch_size):
                idx = order[first : first + config.batch_size]
                batch = x_train[idx]
                if config.augment:
                    batch = augment(batch, rng, config.max_shift)
                if len(idx) == 1:  # BatchNorm cannot train on a single sample
                    continue
                inputs = torch.from_numpy(np.ascontiguousarray(batch))
                targets = torch.from_numpy(y_train[idx])
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(inputs), targets)
                loss.backward()
                optimizer.step()
                scheduler.step()
                total += float(loss.item()) * len(idx)
                seen += len(idx)
            val_acc = accuracy(model, x_val, y_val)
            mean_loss = total / seen if seen else 0.0
            history.append(
                {"epoch": epoch, "loss": round(mean_loss, 6), "val_accuracy": round(val_acc, 6)}
            )
            if progress is not None:
                progress(
                    EpochReport(
                        epoch, config.epochs, mean_loss, val_acc, time.perf_counter() - start
                    )
                )
    model.eval()
    return model, history


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, confusion matrix and per-class report of one split."""
    matrix = confusion(y, predict(model, x), len(classes))
    correct = int(np.trace(matrix))
    return {
        "accuracy": round(correct / len(y), 6) if len(y) else 0.0,
        "confusion_matrix": matrix.tolist(),
        "per_class": class_report(matrix, classes),
    }


def train(
    data_dir: str | Path,
    config: TrainConfig = TrainConfig(),
    progress: Callable[[EpochReport], Any] | None = None,
) -> TrainResult:
    """Load `data_dir/{train,val,test}`, train, and evaluate on every split."""
    x_train, y_train, classes = load_split(data_dir, "train", size=config.size)
    x_val, y_val, _ = load_split(data_dir, "val", classes, size=config.size)
    x_test, y_test, _ = load_split(data_dir, "test", classes, size=config.size)
    start = time.perf_counter()
    model, history = fit(x_train, y_train, x_val, y_val, len(classes), config, progress)
    seconds = time.perf_counter() - start
    with deterministic(config.seed, config.threads):
        test = evaluate(model, x_test, y_test, classes)
        metrics = {
            "train_accuracy": round(accuracy(model, x_train, y_train), 6),
            "val_accuracy": round(accuracy(model, x_val, y_val), 6),
            "test_accuracy": test["accuracy"],
            "confusion_matrix": test["confusion_matrix"],
            "per_class": test["per_class"],
            "history": history,
            "counts": {"train": len(y_train), "val": len(y_val), "test": len(y_test)},
            "config": asdict(config),
        }
    return TrainResult(model=model, classes=classes, metrics=metrics, seconds=seconds)
