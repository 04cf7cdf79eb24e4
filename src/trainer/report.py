"""Metrics files and confusion-matrix pictures shared by the tabular and image trainers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def write_json(path: str | Path, data: dict[str, Any]) -> Path:
    """Write stable, human-readable JSON (sorted keys, trailing newline)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def confusion_matrix_png(
    matrix: Sequence[Sequence[int]], labels: Sequence[str], path: str | Path, title: str
) -> Path:
    """Draw a labelled confusion matrix to a PNG with matplotlib (Agg, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = np.asarray(matrix)
    size = max(4.0, 0.6 * len(labels) + 2.0)
    fig, ax = plt.subplots(figsize=(size, size), dpi=100)
    ax.imshow(data, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels=labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels=labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = data.max() / 2 if data.size else 0
    for (i, j), value in np.ndenumerate(data):
        ax.text(
            j,
            i,
            str(value),
            ha="center",
            va="center",
            color="white" if value > threshold else "black",
        )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # No timestamps or software version in the file: same matrix, same bytes.
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)
    return path
