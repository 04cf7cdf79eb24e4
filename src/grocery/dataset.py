"""Read any ImageFolder-style directory: `<root>/<split>/<class>/<image>.{png,jpg,jpeg}`."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from grocery.transforms import to_array

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})


class DatasetError(ValueError):
    """The directory is not a usable ImageFolder (missing/empty split or class, bad file)."""


def _split_dir(root: str | Path, split: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data directory not found: {root}")
    folder = root / split
    if not folder.is_dir():
        raise DatasetError(f"split folder not found: {folder}")
    return folder


def _visible(path: Path, base: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(base).parts)


def image_files(folder: Path) -> list[Path]:
    """Images anywhere under `folder` (.png/.jpg/.jpeg, any case), sorted by relative path.

    Sub-folders of a class folder belong to that class, as in torchvision's ImageFolder;
    hidden files and folders are skipped.
    """
    return sorted(
        (
            p
            for p in folder.rglob("*")
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and _visible(p, folder)
        ),
        key=lambda p: p.relative_to(folder).as_posix(),
    )


def find_classes(root: str | Path, split: str = "train") -> list[str]:
    """Class names = sorted sub-folder names of `<root>/<split>` (hidden folders skipped)."""
    folder = _split_dir(root, split)
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DatasetError(f"no class folders in {folder}")
    return classes


def list_split(
    root: str | Path, split: str, classes: Sequence[str] | None = None
) -> tuple[list[Path], list[int], list[str]]:
    """Image paths and label indices of one split; every class must have at least one image."""
    folder = _split_dir(root, split)
    classes = list(classes) if classes is not None else find_classes(root, split)
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        class_dir = folder / name
        if not class_dir.is_dir():
            raise DatasetError(f"class folder not found: {class_dir}")
        files = image_files(class_dir)
        if not files:
            raise DatasetError(f"no .png/.jpg/.jpeg images in class folder {class_dir}")
        paths.extend(files)
        labels.extend([label] * len(files))
    return paths, labels, classes


def load_image(path: Path, size: int) -> np.ndarray:
    """One file -> normalised (3, size, size) float32 array, upright per its EXIF tag."""
    try:
        with Image.open(path) as image:
            return to_array(ImageOps.exif_transpose(image), size)
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(f"cannot read image {path}: {exc}") from exc


def load_split(
    root: str | Path, split: str, classes: Sequence[str] | None = None, size: int = 64
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Return (X float32 (N, 3, size, size), y int64 (N,), classes) for one split."""
    paths, labels, names = list_split(root, split, classes)
    x = np.stack([load_image(p, size) for p in paths]).astype(np.float32, copy=False)
    return x, np.asarray(labels, dtype=np.int64), names


def data_hash(root: str | Path) -> str:
    """sha256 over the sorted relative paths and bytes of every image under `root`."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data directory not found: {root}")
    files = image_files(root)
    digest = hashlib.sha256()
    for path in files:
        rel = path.relative_to(root).as_posix().encode()
        data = path.read_bytes()
        digest.update(len(rel).to_bytes(8, "big") + rel)
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()
