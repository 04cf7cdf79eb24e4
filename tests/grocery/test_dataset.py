"""ImageFolder loader on hand-made folders: formats, nesting, ordering, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from grocery.dataset import DatasetError, data_hash, find_classes, list_split, load_split
from grocery.transforms import MEAN, STD

COLOURS = {"red": (250, 0, 0), "green": (0, 250, 0), "blue": (0, 0, 250)}


def _save(path: Path, colour: tuple[int, int, int], size=(20, 10), fmt="PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format=fmt)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """train: red (png, JPG, nested jpeg) / green (png) / blue (png); val, test: one each."""
    root = tmp_path / "photos"
    _save(root / "train" / "red" / "a.png", COLOURS["red"])
    _save(root / "train" / "red" / "B.JPG", COLOURS["red"], fmt="JPEG")
    _save(root / "train" / "red" / "more" / "c.jpeg", COLOURS["red"], fmt="JPEG")
    _save(root / "train" / "red" / ".hidden" / "d.png", COLOURS["blue"])
    (root / "train" / "red" / "notes.txt").write_text("not an image")
    _save(root / "train" / "green" / "x.png", COLOURS["green"], size=(64, 64))
    _save(root / "train" / "blue" / "y.png", COLOURS["blue"], size=(5, 80))
    for split in ("val", "test"):
        for name, colour in COLOURS.items():
            _save(root / split / name / "one.png", colour)
    return root


def test_classes_are_sorted_folder_names(folder: Path) -> None:
    assert find_classes(folder) == ["blue", "green", "red"]


def test_load_split_reads_png_jpg_and_nested(folder: Path) -> None:
    x, y, classes = load_split(folder, "train", size=16)
    assert classes == ["blue", "green", "red"]
    assert x.dtype == np.float32 and x.shape == (5, 3, 16, 16)
    assert y.dtype == np.int64
    assert y.tolist() == [0, 1, 2, 2, 2]  # hidden folder and .txt skipped
    # each image is its class colour, normalised like transforms.to_array
    for image, label in zip(x, y, strict=True):
        rgb = np.asarray(COLOURS[classes[label]], dtype=np.float32) / 255.0
        expected = (rgb - MEAN) / STD
        assert np.allclose(image.mean(axis=(1, 2)), expected, atol=0.1)


def test_list_split_orders_files_by_relative_path(folder: Path) -> None:
    paths, labels, _ = list_split(folder, "train")
    red = [
        p.relative_to(folder / "train" / "red").as_posix()
        for p, lab in zip(paths, labels, strict=True)
        if lab == 2
    ]
    assert red == ["B.JPG", "a.png", "more/c.jpeg"]


def test_explicit_class_order_is_kept(folder: Path) -> None:
    _, y, classes = load_split(folder, "val", classes=["red", "green", "blue"], size=8)
    assert classes == ["red", "green", "blue"]
    assert y.tolist() == [0, 1, 2]


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"data directory not found: .*nowhere"):
        load_split(tmp_path / "nowhere", "train")


def test_missing_split_names_folder(folder: Path) -> None:
    with pytest.raises(DatasetError, match=r"split folder not found: .*photos/holdout"):
        load_split(folder, "holdout")


def test_empty_class_names_folder(folder: Path) -> None:
    (folder / "train" / "yellow").mkdir()
    (folder / "train" / "yellow" / "readme.txt").write_text("no images here")
    with pytest.raises(DatasetError, match=r"no \.png/\.jpg/\.jpeg images in .*train/yellow"):
        load_split(folder, "train")


def test_class_missing_from_another_split(folder: Path) -> None:
    with pytest.raises(DatasetError, match=r"class folder not found: .*test/purple"):
        load_split(folder, "test", classes=["red", "purple"])


def test_split_without_class_folders(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    with pytest.raises(DatasetError, match=r"no class folders in .*train"):
        load_split(tmp_path, "train")


def test_corrupt_image_names_file(folder: Path) -> None:
    (folder / "train" / "green" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DatasetError, match=r"cannot read image .*broken\.png"):
        load_split(folder, "train")


def test_data_hash_tracks_bytes_and_names(folder: Path) -> None:
    before = data_hash(folder)
    assert before == data_hash(folder)
    target = folder / "val" / "red" / "one.png"
    target.rename(target.with_name("two.png"))
    renamed = data_hash(folder)
    assert renamed != before
    _save(target.with_name("two.png"), (249, 0, 0))
    assert data_hash(folder) not in (before, renamed)


def test_data_hash_ignores_location(folder: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(folder, copy)
    assert data_hash(copy) == data_hash(folder)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    """A phone photo stored sideways (EXIF orientation 6) is loaded upright."""
    picture = Image.new("RGB", (20, 10), COLOURS["blue"])
    picture.paste(COLOURS["red"], (0, 0, 10, 10))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    folder = tmp_path / "train" / "photo"
    folder.mkdir(parents=True)
    picture.save(folder / "p.jpg", format="JPEG", exif=exif, quality=95)
    x, _, _ = load_split(tmp_path, "train", size=8)
    red = (np.asarray(COLOURS["red"], np.float32) / 255.0 - MEAN) / STD
    blue = (np.asarray(COLOURS["blue"], np.float32) / 255.0 - MEAN) / STD
    assert np.allclose(x[0, :, :3, :].mean(axis=(1, 2)), red, atol=0.3)  # top: red
    assert np.allclose(x[0, :, 5:, :].mean(axis=(1, 2)), blue, atol=0.3)  # bottom: blue
