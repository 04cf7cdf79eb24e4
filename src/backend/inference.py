"""The loaded grocery CNN: one instance per process, created at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image

from grocery.model import load_model, weights_sha256
from grocery.transforms import to_array, to_batch

VERSION_LENGTH = 12


class ModelNotFoundError(RuntimeError):
    """MODEL_DIR does not hold a usable model."""


class Prediction(NamedTuple):
    """The most likely label, its probability and the probability of every class."""

    label: str
    confidence: float
    probabilities: dict[str, float]


class Classifier:
    """Wraps a loaded `GroceryCNN` with its metadata; `predict` takes PIL images."""

    def __init__(
        self,
        model: torch.nn.Module,
        metadata: dict[str, Any],
        version: str,
        threads: int | None = None,
    ) -> None:
        self.model = model.eval()
        self.threads = threads
        self.metadata = metadata
        self.classes: list[str] = list(metadata["classes"])
        self.input_size = int(metadata["input_size"])
        self.version = version

    @classmethod
    def load(cls, model_dir: str | Path, threads: int | None = None) -> Classifier:
        """Load the model saved in `model_dir`; raise `ModelNotFoundError` with the reason.

        `threads`: torch intra-op threads for predictions, applied in whichever thread predicts
        (torch keeps the setting per thread).
        """
        model_dir = Path(model_dir)
        try:
            model, metadata = load_model(model_dir)
            version = weights_sha256(model_dir)[:VERSION_LENGTH]
        except FileNotFoundError as exc:
            raise ModelNotFoundError(
                f"no model in MODEL_DIR={model_dir}: {exc}. Train one with "
                "`python -m trainer image` or point MODEL_DIR at a model directory."
            ) from exc
        except Exception as exc:  # bad JSON, bad safetensors header, shape mismatch, ...
            raise ModelNotFoundError(
                f"cannot load the model in MODEL_DIR={model_dir}: {exc}"
            ) from exc
        return cls(model, metadata, version, threads)

    def _probabilities(self, batch: np.ndarray) -> np.ndarray:
        if self.threads is not None and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        with torch.inference_mode():
            logits = self.model(torch.from_numpy(batch))
            return torch.softmax(logits.float(), dim=1).numpy()

    def _prediction(self, probs: np.ndarray) -> Prediction:
        best = int(probs.argmax())
        probabilities = {name: float(p) for name, p in zip(self.classes, probs, strict=True)}
        return Prediction(self.classes[best], float(probs[best]), probabilities)

    def predict(self, image: Image.Image) -> Prediction:
        """Classify one image."""
        batch = to_array(image, self.input_size)[np.newaxis]
        return self._prediction(self._probabilities(batch)[0])

    def predict_batch(self, images: list[Image.Image]) -> list[Prediction]:
        """Classify several images in one forward pass."""
        if not images:
            return []
        probs = self._probabilities(to_batch(images, self.input_size))
        return [self._prediction(row) for row in probs]
