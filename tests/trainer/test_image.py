"""run_image: artifacts, samples, reproducibility, no paths or timestamps inside."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from grocery import CLASSES
from grocery.dataset import DatasetError, data_hash
from grocery.model import load_model, weights_sha256
from grocery.synth import generate
from trainer.image import SAMPLES_PER_CLASS, run_image

ARTIFACTS = ("model.safetensors", "metadata.json", "metrics.json", "confusion_matrix.png")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("image-data")
    generate(root, per_class=(4, 2, 7), seed=2)
    return root


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_run_image_writes_the_model_folder(data_dir: Path, tmp_path: Path) -> None:
    lines: list[str] = []
    out = tmp_path / "image"
    result = run_image(data_dir, out, epochs=2, seed=1, progress=lines.append)
    for name in ARTIFACTS:
        assert (out / name).is_file(), name
    model, meta = load_model(out)
    assert meta["classes"] == sorted(CLASSES)
    assert meta["input_size"] == 64 and meta["width"] == model.classifier.in_features // 4
    assert meta["seed"] == 1 and meta["epochs"] == 2
    assert meta["data_sha256"] == data_hash(data_dir)
    assert set(meta["library_versions"]) == {"numpy", "pillow", "python", "torch"}
    assert meta["weights_sha256"] == weights_sha256(out) == result["weights_sha256"]
    assert meta["metrics"]["test_accuracy"] == result["test_accuracy"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] == result["test_accuracy"]
    assert len(metrics["confusion_matrix"]) == len(CLASSES)
    with Image.open(out / "confusion_matrix.png") as picture:
        assert picture.format == "PNG"
    assert [line.split(" loss")[0] for line in lines if line.startswith("image: epoch ")] == [
        "image: epoch 1/2",
        "image: epoch 2/2",
    ]
    assert result["seconds"] > 0


def test_samples_are_png_test_images_per_class(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "image"
    (out / "samples" / "durian").mkdir(parents=True)  # stale folder from an older model
    run_image(data_dir, out, epochs=1, seed=0, progress=lambda _: None)
    samples = out / "samples"
    assert sorted(p.name for p in samples.iterdir()) == sorted(CLASSES)
    for name in CLASSES:
        files = sorted(p.name for p in (samples / name).iterdir())
        assert files == [f"{name}_{i:04d}.png" for i in range(SAMPLES_PER_CLASS)]
        for file in files:
            source = data_dir / "test" / name / file
            assert (samples / name / file).read_bytes() == source.read_bytes()


def test_user_jpegs_become_png_samples(tmp_path: Path) -> None:
    data = tmp_path / "photos"
    for split in ("train", "val", "test"):
        for name, colour in (("cat", (200, 30, 30)), ("dog", (30, 30, 200))):
            for i in range(3):
                folder = data / split / name
                folder.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (400, 300), colour).save(folder / f"p{i}.JPG", format="JPEG")
    out = tmp_path / "model"
    run_image(data, out, epochs=1, seed=0, progress=lambda _: None)
    files = sorted(p.relative_to(out / "samples").as_posix() for p in (out / "samples").rglob("*"))
    assert files == [
        "cat",
        "cat/p0.png",
        "cat/p1.png",
        "cat/p2.png",
        "dog",
        "dog/p0.png",
        "dog/p1.png",
        "dog/p2.png",
    ]
    with Image.open(out / "samples" / "cat" / "p0.png") as picture:
        assert picture.format == "PNG" and max(picture.size) == 256
    assert load_model(out)[1]["classes"] == ["cat", "dog"]


def test_artifacts_are_identical_across_runs_and_locations(data_dir: Path, tmp_path: Path) -> None:
    moved = tmp_path / "somewhere" / "else"
    shutil.copytree(data_dir, moved)
    run_image(data_dir, tmp_path / "a", epochs=1, seed=3, progress=lambda _: None)
    run_image(moved, tmp_path / "b", epochs=1, seed=3, progress=lambda _: None)
    first, second = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert first.keys() == second.keys()
    for name, data in first.items():
        assert data == second[name], name
    for name in ("metadata.json", "metrics.json"):
        text = first[name].decode()
        assert str(tmp_path) not in text and str(data_dir) not in text
    assert b"tIME" not in first["confusion_matrix.png"]


def test_missing_data_dir(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="data directory not found"):
        run_image(tmp_path / "missing", tmp_path / "out", epochs=1, seed=0, progress=print)
    assert not (tmp_path / "out").exists()
