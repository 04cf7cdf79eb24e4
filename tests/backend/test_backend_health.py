"""`GET /health`, `GET /model` and the OpenAPI docs."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from backend.main import create_app
from backend.settings import Settings
from grocery.model import weights_sha256


def test_health_reports_the_loaded_model(client: TestClient, model_dir: Path) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "model_loaded": True,
        "model_version": weights_sha256(model_dir)[:12],
    }


def test_health_is_503_before_start_up(settings: Settings) -> None:
    # Without `with`, TestClient does not run the lifespan: nothing is loaded.
    client = TestClient(create_app(settings))
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["model_loaded"] is False
    predict = client.post("/predict", files={"file": ("a.png", b"x", "image/png")})
    assert predict.status_code == 503
    assert "not loaded" in predict.json()["detail"]


def test_model_returns_the_metadata_file(client: TestClient, model_dir: Path) -> None:
    response = client.get("/model")
    assert response.status_code == 200
    assert response.json() == json.loads((model_dir / "metadata.json").read_text())


def test_docs_and_openapi(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert schema["info"]["title"] == "Grocery image classifier"
    assert schema["info"]["version"]
    assert {"/health", "/predict", "/samples/random", "/model"} <= set(schema["paths"])


def test_unknown_path_is_json_404(client: TestClient) -> None:
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.json()["detail"]
