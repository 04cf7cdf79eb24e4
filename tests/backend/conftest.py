"""Fixtures for the backend tests: an untrained model of the real architecture and images."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from backend_support import (
    SAMPLE_CLASSES,
    SAMPLES_PER_CLASS,
    TEST_MAX_IMAGE_PIXELS,
    TEST_MAX_UPLOAD_BYTES,
    image_bytes,
)
from fastapi.testclient import TestClient

from backend.main import create_app
from backend.settings import Settings
from grocery import CLASSES
from grocery.model import GroceryCNN, save_model


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained GroceryCNN saved with save_model, plus a few PNG samples."""
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("model") / "image"
    model = GroceryCNN(num_classes=len(CLASSES))
    save_model(model, directory, {"classes": list(CLASSES), "input_size": 64, "width": 16})
    for index, label in enumerate(SAMPLE_CLASSES):
        folder = directory / "samples" / label
        folder.mkdir(parents=True)
        for number in range(SAMPLES_PER_CLASS):
            data = image_bytes(seed=10 * index + number)
            (folder / f"{number:04d}.png").write_bytes(data)
    return directory


@pytest.fixture
def settings(model_dir: Path) -> Settings:
    return Settings(
        MODEL_DIR=model_dir,
        MAX_UPLOAD_BYTES=TEST_MAX_UPLOAD_BYTES,
        MAX_IMAGE_PIXELS=TEST_MAX_IMAGE_PIXELS,
        TORCH_THREADS=1,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """A client of an app whose lifespan ran (model loaded)."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def png() -> bytes:
    return image_bytes()


@pytest.fixture
def predict_ok(client: TestClient, png: bytes) -> Callable[[], None]:
    """Assert that a good prediction request still works."""

    def check() -> None:
        response = client.post("/predict", files={"file": ("ok.png", png, "image/png")})
        assert response.status_code == 200, response.text
        assert set(response.json()["probabilities"]) == set(CLASSES)

    return check
