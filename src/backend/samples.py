"""Test images with known labels (`<SAMPLES_DIR>/<class>/*.png`), for "Predict random image"."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    """One sample image file and its true label."""

    name: str
    true_label: str
    path: Path

    def base64(self) -> str:
        """The PNG file, base64-encoded."""
        return base64.b64encode(self.path.read_bytes()).decode("ascii")


class SampleStore:
    """The PNG samples of the model's classes, listed once."""

    def __init__(self, root: Path, classes: list[str]) -> None:
        self.root = root
        self.classes = list(classes)
        self.by_label: dict[str, list[Sample]] = {}
        for label in self.classes:
            folder = root / label
            files = sorted(folder.glob("*.png")) if folder.is_dir() else []
            found = [Sample(f"{label}/{f.name}", label, f) for f in files if f.is_file()]
            if found:
                self.by_label[label] = found

    def __len__(self) -> int:
        return sum(len(items) for items in self.by_label.values())

    def random(self, label: str | None = None) -> Sample | None:
        """A random sample (of `label` if given), or None if there is none."""
        if label is not None:
            pool = self.by_label.get(label, [])
        else:
            pool = [s for items in self.by_label.values() for s in items]
        return secrets.choice(pool) if pool else None
