"""Synthetic grocery images: determinism, layout, format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from grocery import CLASSES
from grocery.dataset import data_hash
from grocery.synth import SPLITS, generate, render


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", per_class=(2, 1, 1), seed=7)
    b = generate(tmp_path / "b", per_class=(2, 1, 1), seed=7)
    assert a == b
    assert data_hash(tmp_path / "a") == data_hash(tmp_path / "b")
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.png"))
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.png"))
    assert files_a == files_b
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


def test_different_seed_gives_different_data(tmp_path: Path) -> None:
    generate(tmp_path / "a", per_class=(2, 1, 1), seed=7)
    generate(tmp_path / "b", per_class=(2, 1, 1), seed=8)
    assert data_hash(tmp_path / "a") != data_hash(tmp_path / "b")


def test_layout_counts_and_names(tiny_data: Path) -> None:
    expected = {"train": 6, "val": 2, "test": 2}
    assert sorted(p.name for p in tiny_data.iterdir()) == sorted(SPLITS)
    for split, count in expected.items():
        classes = sorted(p.name for p in (tiny_data / split).iterdir())
        assert classes == sorted(CLASSES)
        assert len(classes) == 8
        for name in CLASSES:
            files = sorted(p.name for p in (tiny_data / split / name).iterdir())
            assert files == [f"{name}_{i:04d}.png" for i in range(count)]


def test_images_are_plain_rgb_png_of_requested_size(tmp_path: Path) -> None:
    generate(tmp_path, per_class=(1, 0, 0), size=48, seed=3)
    files = sorted(tmp_path.rglob("*.png"))
    assert len(files) == len(CLASSES)
    for path in files:
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG")
        for chunk in (b"tIME", b"tEXt", b"iTXt", b"zTXt"):
            assert chunk not in data
        with Image.open(path) as image:
            assert image.format == "PNG"
            assert image.mode == "RGB"
            assert image.size == (48, 48)


def test_images_vary_within_a_class() -> None:
    pictures = [np.asarray(render("lemon", np.random.default_rng(i))) for i in range(4)]
    for i in range(1, 4):
        assert not np.array_equal(pictures[0], pictures[i])


def test_regenerating_smaller_removes_stale_files(tmp_path: Path) -> None:
    generate(tmp_path, per_class=(3, 1, 1), seed=0)
    generate(tmp_path, per_class=(1, 1, 1), seed=0)
    assert sorted(p.name for p in (tmp_path / "train" / "apple").iterdir()) == ["apple_0000.png"]
    fresh = tmp_path.parent / "fresh"
    generate(fresh, per_class=(1, 1, 1), seed=0)
    assert data_hash(tmp_path) == data_hash(fresh)


def test_summary_and_progress(tmp_path: Path) -> None:
    lines: list[str] = []
    summary = generate(tmp_path, per_class=(2, 1, 0), seed=5, progress=lines.append)
    assert summary["counts"] == {"train": 16, "val": 8, "test": 0}
    assert summary["classes"] == list(CLASSES)
    assert len(lines) == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"per_class": (1, 1)}, "per_class"),
        ({"per_class": (1, -1, 1)}, "per_class"),
        ({"size": 4}, "size"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments_raise(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate(tmp_path, **kwargs)


def test_unknown_class_raises() -> None:
    with pytest.raises(ValueError, match="unknown class"):
        render("durian", np.random.default_rng(0))
