"""Image -> model input, with Pillow and numpy only (no torchvision for the CPU build)."""

from __future__ import annotations

import numpy as np
from PIL import Image

# Per-channel statistics of the synthetic training set are close to these; any fixed
# values work as long as training and serving use the same ones.
MEAN = np.array([0.5, 0.5, 0.5], dtype=np.float32)
STD = np.array([0.25, 0.25, 0.25], dtype=np.float32)


def to_array(image: Image.Image, size: int) -> np.ndarray:
    """Return a normalised float32 array of shape (3, size, size)."""
    if image.mode != "RGB":  # convert() copies even an RGB image: 64 MiB at 4096x4096
        image = image.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.float32) / 255.0
    array = (array - MEAN) / STD
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def to_batch(images: list[Image.Image], size: int) -> np.ndarray:
    """Stack several images into one (N, 3, size, size) array."""
    return np.stack([to_array(image, size) for image in images])
