"""The Classifier: loading, single and batch prediction."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from backend.inference import Classifier, ModelNotFoundError
from grocery import CLASSES
from grocery.model import weights_sha256


def noise(seed: int, size: int = 64) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "RGB")


@pytest.fixture(scope="module")
def classifier(model_dir: Path) -> Classifier:
    torch.set_num_threads(1)
    return Classifier.load(model_dir)


def test_load_reads_metadata_and_version(classifier: Classifier, model_dir: Path) -> None:
    assert classifier.classes == list(CLASSES)
    assert classifier.input_size == 64
    assert classifier.version == weights_sha256(model_dir)[:12]
    assert classifier.metadata["width"] == 16
    assert not classifier.model.training


def test_predict_returns_label_confidence_and_all_probabilities(classifier: Classifier) -> None:
    label, confidence, probabilities = classifier.predict(noise(1))
    assert set(probabilities) == set(CLASSES)
    assert math.isclose(sum(probabilities.values()), 1.0, abs_tol=1e-5)
    assert all(0.0 <= p <= 1.0 for p in probabilities.values())
    assert label == max(probabilities, key=probabilities.__getitem__)
    assert confidence == probabilities[label]


def test_predict_matches_the_model_directly(classifier: Classifier) -> None:
    from grocery.transforms import to_array

    image = noise(2, size=100)  # resized to the input size on the way in
    with torch.no_grad():
        logits = classifier.model(torch.from_numpy(to_array(image, 64)[None]))
    expected = torch.softmax(logits, dim=1)[0].numpy()
    probabilities = classifier.predict(image).probabilities
    assert np.allclose([probabilities[c] for c in CLASSES], expected, atol=1e-6)


def test_predict_batch_agrees_with_predict(classifier: Classifier) -> None:
    images = [noise(seed) for seed in range(4)]
    batch = classifier.predict_batch(images)
    assert len(batch) == 4
    for image, prediction in zip(images, batch, strict=True):
        single = classifier.predict(image)
        assert prediction.label == single.label
        assert math.isclose(prediction.confidence, single.confidence, abs_tol=1e-5)
    assert classifier.predict_batch([]) == []


def test_predict_accepts_any_mode(classifier: Classifier) -> None:
    buffer = io.BytesIO()
    noise(3).convert("L").save(buffer, format="PNG")
    grey = Image.open(buffer)
    assert set(classifier.predict(grey).probabilities) == set(CLASSES)


def test_missing_model_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"no model in MODEL_DIR=.*nowhere"):
        Classifier.load(tmp_path / "nowhere")


def test_corrupt_weights_are_a_clear_error(tmp_path: Path, model_dir: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "metadata.json").write_text((model_dir / "metadata.json").read_text())
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelNotFoundError, match="cannot load the model"):
        Classifier.load(broken)
