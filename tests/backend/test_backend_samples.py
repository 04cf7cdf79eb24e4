"""`GET /samples/random`: a random test image with its true label."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from backend_support import SAMPLE_CLASSES, SAMPLES_PER_CLASS
from fastapi.testclient import TestClient
from PIL import Image

from backend.main import create_app
from backend.settings import Settings
from grocery import CLASSES


def test_random_sample_is_a_png_with_its_label(client: TestClient, model_dir: Path) -> None:
    response = client.get("/samples/random")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"name", "true_label", "media_type", "image_base64"}
    assert body["media_type"] == "image/png"
    assert body["true_label"] in SAMPLE_CLASSES
    assert body["name"].startswith(body["true_label"] + "/")
    data = base64.b64decode(body["image_base64"])
    assert data == (model_dir / "samples" / body["name"]).read_bytes()
    assert Image.open(io.BytesIO(data)).format == "PNG"


def test_random_samples_cover_several_files(client: TestClient) -> None:
    names = {client.get("/samples/random").json()["name"] for _ in range(60)}
    assert len(names) > 1
    assert len(names) <= len(SAMPLE_CLASSES) * SAMPLES_PER_CLASS


def test_sample_can_be_sent_back_to_predict(client: TestClient) -> None:
    body = client.get("/samples/random").json()
    data = base64.b64decode(body["image_base64"])
    response = client.post("/predict", files={"file": (body["name"], data, "image/png")})
    assert response.status_code == 200


@pytest.mark.parametrize("label", SAMPLE_CLASSES)
def test_label_filter(client: TestClient, label: str) -> None:
    for _ in range(5):
        body = client.get("/samples/random", params={"label": label}).json()
        assert body["true_label"] == label


def test_unknown_label_is_404_listing_valid_labels(client: TestClient) -> None:
    response = client.get("/samples/random", params={"label": "durian"})
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert "durian" in detail
    assert all(name in detail for name in CLASSES)


def test_known_label_without_samples_is_404(client: TestClient) -> None:
    label = CLASSES[-1]
    assert label not in SAMPLE_CLASSES
    response = client.get("/samples/random", params={"label": label})
    assert response.status_code == 404
    assert label in response.json()["detail"]


def test_no_samples_is_404(model_dir: Path, tmp_path: Path) -> None:
    settings = Settings(MODEL_DIR=model_dir, SAMPLES_DIR=tmp_path / "empty")
    with TestClient(create_app(settings)) as client:
        response = client.get("/samples/random")
        assert response.status_code == 404
        assert "no sample images" in response.json()["detail"]
        assert client.get("/health").status_code == 200
