"""Train the grocery CNN on an ImageFolder directory and write the backend's model folder.

Every artifact is deterministic: no timestamps, no absolute paths, no timings.
"""

from __future__ import annotations

import platform
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import PIL
import torch
from PIL import Image

from grocery.dataset import DatasetError, data_hash, list_split
from grocery.model import save_model, weights_sha256
from grocery.train import EpochReport, TrainConfig, train
from trainer.report import confusion_matrix_png, write_json

SAMPLES_DIR = "samples"
SAMPLES_PER_CLASS = 5
SAMPLE_MAX_SIDE = 256
DEFAULT_EPOCHS = TrainConfig.epochs
DEFAULT_SEED = TrainConfig.seed

Progress = Callable[[str], Any]


def library_versions() -> dict[str, str]:
    return {
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def _write_sample(source: Path, target: Path) -> None:
    """Copy a small PNG as is; re-encode anything else as a PNG of at most SAMPLE_MAX_SIDE."""
    with Image.open(source) as image:
        small = max(image.size) <= SAMPLE_MAX_SIDE
        if image.format == "PNG" and small:
            shutil.copyfile(source, target)  # bytes only: no timestamps or permissions
            return
        picture = image.convert("RGB")
    picture.thumbnail((SAMPLE_MAX_SIDE, SAMPLE_MAX_SIDE), Image.Resampling.LANCZOS)
    picture.save(target, format="PNG")  # no text/time chunks


def copy_samples(data_dir: Path, out_dir: Path, classes: list[str], per_class: int) -> int:
    """Write the first `per_class` test images of each class to `out_dir/samples/<class>/*.png`.

    The backend serves these for "Predict random image"; it reads PNG files only.
    """
    paths, labels, _ = list_split(data_dir, "test", classes)
    target = out_dir / SAMPLES_DIR
    if target.exists():
        shutil.rmtree(target)  # no stale classes/images from an earlier run
    copied = dict.fromkeys(classes, 0)
    for path, label in zip(paths, labels, strict=True):
        name = classes[label]
        if copied[name] >= per_class:
            continue
        folder = target / name
        folder.mkdir(parents=True, exist_ok=True)
        rel = path.relative_to(data_dir / "test" / name).with_suffix(".png")
        _write_sample(path, folder / rel.as_posix().replace("/", "_"))
        copied[name] += 1
    return sum(copied.values())


def run_image(
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    epochs: int = DEFAULT_EPOCHS,
    seed: int = DEFAULT_SEED,
    progress: Progress = print,
) -> dict[str, Any]:
    """Train, save model + metadata + metrics.json + confusion_matrix.png + samples.

    Returns the metrics dict plus `seconds` (training wall time) and `weights_sha256`.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if not data_dir.is_dir():
        raise DatasetError(f"data directory not found: {data_dir}")
    config = TrainConfig(epochs=epochs, seed=seed)

    def on_epoch(r: EpochReport) -> None:
        progress(
            f"image: epoch {r.epoch}/{r.epochs} loss {r.loss:.4f} "
            f"val_acc {r.val_accuracy:.3f} ({r.seconds:.1f}s)"
        )

    progress(f"image: training GroceryCNN on {data_dir} ({epochs} epochs, seed {seed})")
    result = train(data_dir, config, progress=on_epoch)
    metrics = result.metrics
    metadata = {
        "architecture": "GroceryCNN",
        "classes": result.classes,
        "input_size": config.size,
        "width": config.width,
        "metrics": {
            key: metrics[key]
            for key in ("train_accuracy", "val_accuracy", "test_accuracy", "counts", "per_class")
        },
        "data_sha256": data_hash(data_dir),
        "library_versions": library_versions(),
        "seed": seed,
        "epochs": epochs,
    }
    save_model(result.model, out_dir, metadata)
    write_json(out_dir / "metrics.json", metrics)
    confusion_matrix_png(
        metrics["confusion_matrix"],
        result.classes,
        out_dir / "confusion_matrix.png",
        f"GroceryCNN test set (accuracy {metrics['test_accuracy']:.3f})",
    )
    samples = copy_samples(data_dir, out_dir, result.classes, SAMPLES_PER_CLASS)
    digest = weights_sha256(out_dir)
    progress(
        f"image: test accuracy {metrics['test_accuracy']:.4f}, "
        f"trained in {result.seconds:.1f}s, {samples} samples, weights {digest[:12]}"
    )
    return dict(metrics, seconds=round(result.seconds, 2), weights_sha256=digest)
