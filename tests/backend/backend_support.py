"""Helpers shared by the backend tests (a plain module: test files may import it)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from grocery import CLASSES

SAMPLE_CLASSES = CLASSES[:3]
SAMPLES_PER_CLASS = 2
TEST_MAX_UPLOAD_BYTES = 512 * 1024
TEST_MAX_IMAGE_PIXELS = 512 * 512


def image_bytes(
    size: tuple[int, int] = (64, 64), fmt: str = "PNG", seed: int = 0, noise: bool = True
) -> bytes:
    """An RGB image: noise (large, truncates meaningfully) or a flat colour (compresses well)."""
    rng = np.random.default_rng(seed)
    if noise:
        pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    else:
        pixels = np.full((size[1], size[0], 3), rng.integers(0, 256, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format=fmt)
    return buffer.getvalue()
