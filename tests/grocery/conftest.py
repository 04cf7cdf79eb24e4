"""Fixtures for the grocery tests: a tiny synthetic ImageFolder, generated once."""

from __future__ import annotations

from pathlib import Path

import pytest

from grocery.synth import generate

TINY_PER_CLASS = (6, 2, 2)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 classes x (6 train, 2 val, 2 test) synthetic 64x64 images. Treat as read-only."""
    root = tmp_path_factory.mktemp("tiny-grocery")
    generate(root, per_class=TINY_PER_CLASS, seed=1)
    return root
