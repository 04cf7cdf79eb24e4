"""App factory, configuration, the simple endpoints and JSON errors."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from flask_api import config, create_app
from shared_support import free_port

SRC = Path(__file__).resolve().parents[2] / "src"


def test_config_defaults():
    settings = config.from_env({})
    assert settings == {
        "MODEL_DIR": "artifacts/tabular",
        "MAX_CONTENT_LENGTH": 65536,
        "MAX_BATCH": 1000,
    }


def test_config_from_environment():
    env = {"MODEL_DIR": "/models/x", "MAX_CONTENT_LENGTH": "2048", "MAX_BATCH": "7"}
    assert config.from_env(env) == {
        "MODEL_DIR": "/models/x",
        "MAX_CONTENT_LENGTH": 2048,
        "MAX_BATCH": 7,
    }


@pytest.mark.parametrize("value", ["lots", "0", "-3", "1.5"])
def test_config_rejects_bad_numbers(value):
    with pytest.raises(config.ConfigError, match="MAX_BATCH"):
        config.from_env({"MAX_BATCH": value})


def test_factory_reads_environment(model_dir, monkeypatch):
    monkeypatch.setenv("MODEL_DIR", str(model_dir))
    monkeypatch.setenv("MAX_BATCH", "3")
    app = create_app()
    assert not app.testing
    assert app.config["MAX_BATCH"] == 3
    assert app.config["MAX_CONTENT_LENGTH"] == 64 * 1024
    assert create_app({"TESTING": True, "MODEL_DIR": str(model_dir)}).testing


def test_missing_model_stops_startup(tmp_path):
    with pytest.raises(RuntimeError, match="model files missing") as info:
        create_app({"MODEL_DIR": str(tmp_path / "absent")})
    assert str(tmp_path / "absent") in str(info.value)


def test_index(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "Welcome to the Simple Flask App!"


def test_health(client, model_dir):
    from flask_api.model import load_model

    _, metadata = load_model(model_dir)
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "healthy",
        "model_loaded": True,
        "model": metadata["model"],
    }


def test_404_is_json(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert response.is_json
    assert response.get_json()["error"]


@pytest.mark.parametrize(("method", "path"), [("get", "/predict"), ("post", "/health")])
def test_405_is_json(client, method, path):
    response = getattr(client, method)(path)
    assert response.status_code == 405
    assert response.is_json
    assert response.get_json()["error"]
    assert "Allow" in response.headers


def test_unexpected_exception_is_a_json_500(model_dir):
    app = create_app({"MODEL_DIR": str(model_dir)})  # not TESTING: errors are handled

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret detail")

    response = app.test_client().get("/boom")
    assert response.status_code == 500
    assert response.get_json() == {"error": "internal server error"}
    assert app.test_client().get("/health").status_code == 200


def test_wsgi_module_builds_the_app(model_dir, monkeypatch):
    monkeypatch.setenv("MODEL_DIR", str(model_dir))
    sys.modules.pop("flask_api.wsgi", None)
    wsgi = importlib.import_module("flask_api.wsgi")
    try:
        assert wsgi.app.test_client().get("/health").get_json()["status"] == "healthy"
    finally:
        sys.modules.pop("flask_api.wsgi", None)


def test_serving_serves_the_app(model_dir):
    """The image's entry point (`python -m serving ... --interface wsgi`), on loopback only."""
    port = free_port()
    env = {**os.environ, "MODEL_DIR": str(model_dir), "PYTHONPATH": str(SRC)}
    cmd = [sys.executable, "-m", "serving", "flask_api.wsgi:app", "--interface", "wsgi",
           "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()
                assert time.monotonic() < deadline, "the server did not answer in 60 s"
                time.sleep(0.2)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/predict",
            data=b'{"features": [5.1, 3.5, 1.4, 0.2]}',
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as r:
            assert r.status == 200
            assert b'"class":"setosa"' in r.read().replace(b" ", b"")
    finally:
        server.terminate()
        server.wait(timeout=10)
