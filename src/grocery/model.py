"""The grocery CNN and its on-disk format (safetensors weights + JSON metadata)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "metadata.json"


class GroceryCNN(nn.Module):
    """A small convolutional network for size x size RGB images."""

    def __init__(self, num_classes: int, width: int = 16) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )

        self.features = nn.Sequential(
            block(3, width),
            block(width, width * 2),
            block(width * 2, width * 4),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(width * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.pool(x).flatten(1)
        return self.classifier(x)


def weights_sha256(model_dir: str | Path) -> str:
    """Hash of the weights file: the model's version."""
    return hashlib.sha256((Path(model_dir) / WEIGHTS_FILE).read_bytes()).hexdigest()


def save_model(model: GroceryCNN, model_dir: str | Path, metadata: dict[str, Any]) -> Path:
    """Write weights and metadata; metadata must hold `classes`, `input_size`, `width`."""
    for key in ("classes", "input_size", "width"):
        if key not in metadata:
            raise ValueError(f"model metadata needs {key!r}")
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(model_dir / WEIGHTS_FILE), metadata={"format": "pt"})
    metadata = dict(metadata, weights_sha256=weights_sha256(model_dir))
    (model_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    return model_dir


def load_model(model_dir: str | Path) -> tuple[GroceryCNN, dict[str, Any]]:
    """Load a model saved by `save_model`, in eval mode. Raises FileNotFoundError/ValueError."""
    model_dir = Path(model_dir)
    weights, meta_path = model_dir / WEIGHTS_FILE, model_dir / METADATA_FILE
    for path in (weights, meta_path):
        if not path.is_file():
            raise FileNotFoundError(f"model file not found: {path}")
    metadata = json.loads(meta_path.read_text())
    model = GroceryCNN(num_classes=len(metadata["classes"]), width=int(metadata["width"]))
    model.load_state_dict(load_file(str(weights)))
    model.eval()
    return model, metadata
