"""The backend client against a stub HTTP server on 127.0.0.1."""

from __future__ import annotations

import socket
from email.parser import BytesParser
from email.policy import HTTP

import pytest
import requests
from frontend_support import Reply, StubBackend, prediction, sample

from frontend.api import BackendClient, BackendError
from frontend.settings import Settings
from shared_support import free_port, png_bytes


def test_settings_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("API_URL", "REQUEST_TIMEOUT", "MAX_UPLOAD_BYTES"):
        monkeypatch.delenv(name, raising=False)
    defaults = Settings()
    assert defaults.api_url == "http://localhost:8000"
    assert defaults.request_timeout == 5
    assert defaults.max_upload_bytes == 5 * 1024 * 1024

    monkeypatch.setenv("API_URL", "http://backend:8000/")
    monkeypatch.setenv("REQUEST_TIMEOUT", "2.5")
    monkeypatch.setenv("MAX_UPLOAD_BYTES", "1000")
    settings = Settings()
    assert settings.api_url == "http://backend:8000"
    assert settings.request_timeout == 2.5
    assert settings.max_upload_bytes == 1000
    client = BackendClient.from_settings(settings)
    assert (client.base_url, client.timeout) == ("http://backend:8000", 2.5)


@pytest.mark.parametrize(
    ("name", "value"),
    [("API_URL", "backend:8000"), ("REQUEST_TIMEOUT", "0"), ("MAX_UPLOAD_BYTES", "-1")],
)
def test_settings_reject_bad_values(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name.lower()):
        Settings()


def test_health_and_random_sample_success(stub_backend: StubBackend) -> None:
    health = {"status": "ok", "model_loaded": True, "model_version": "abc"}
    stub_backend.routes[("GET", "/health")] = Reply(body=health)
    stub_backend.routes[("GET", "/samples/random")] = Reply(body=sample("lemon"))
    client = BackendClient(stub_backend.url + "/", timeout=2)
    assert client.health() == health
    got = client.random_sample()
    assert got["true_label"] == "lemon"
    assert got["name"] == "lemon/lemon_0001.png"


def test_predict_sends_multipart_file(stub_backend: StubBackend) -> None:
    stub_backend.routes[("POST", "/predict")] = Reply(body=prediction("carrot", 0.9))
    image = png_bytes()
    result = BackendClient(stub_backend.url, timeout=2).predict(image, "my photo.png")
    assert result["label"] == "carrot"
    assert result["probabilities"]["carrot"] == pytest.approx(0.9)

    request = stub_backend.requests[-1]
    content_type = request["headers"]["Content-Type"]
    assert content_type.startswith("multipart/form-data")
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + request["body"]
    )
    parts = list(message.iter_parts())
    assert len(parts) == 1
    assert parts[0].get_param("name", header="content-disposition") == "file"
    assert parts[0].get_filename() == "my photo.png"
    assert parts[0].get_content_type() == "image/png"
    assert parts[0].get_payload(decode=True) == image


def test_connection_refused_is_a_plain_sentence() -> None:
    port = free_port()  # nothing listens there
    client = BackendClient(f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(BackendError) as info:
        client.random_sample()
    assert info.value.message == (
        f"The backend at http://127.0.0.1:{port} is not reachable (connection refused)."
    )


def test_unknown_host_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_dns(*_args: object, **_kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    client = BackendClient("http://backend:8000", timeout=2)
    with pytest.raises(BackendError) as info:
        client.health()
    assert info.value.message == (
        "The backend at http://backend:8000 is not reachable (host name not found)."
    )


def test_timeout_is_reported(stub_backend: StubBackend) -> None:
    stub_backend.routes[("GET", "/samples/random")] = Reply(body=sample(), delay=1.5)
    client = BackendClient(stub_backend.url, timeout=0.3)
    with pytest.raises(BackendError) as info:  # the answer would come at 1.5 s
        client.random_sample()
    assert info.value.message == (
        f"The backend at {stub_backend.url} did not answer within 0.3 seconds."
    )


def test_4xx_detail_is_passed_on(stub_backend: StubBackend) -> None:
    stub_backend.routes[("POST", "/predict")] = Reply(
        415, {"detail": "unsupported image format 'TIFF'"}
    )
    with pytest.raises(BackendError) as info:
        BackendClient(stub_backend.url, timeout=2).predict(b"II*\x00", "x.tif")
    assert info.value.message == "The backend refused the image: unsupported image format 'TIFF'"


def test_validation_error_list_detail_is_readable(stub_backend: StubBackend) -> None:
    detail = [{"loc": ["body", "file"], "msg": "Field required", "type": "missing"}]
    stub_backend.routes[("POST", "/predict")] = Reply(422, {"detail": detail})
    with pytest.raises(BackendError) as info:
        BackendClient(stub_backend.url, timeout=2).predict(b"x", "x.png")
    assert info.value.message == "The backend refused the image: Field required"


def test_5xx_is_reported_with_status(stub_backend: StubBackend) -> None:
    stub_backend.routes[("GET", "/samples/random")] = Reply(503, {"detail": "model not loaded"})
    with pytest.raises(BackendError) as info:
        BackendClient(stub_backend.url, timeout=2).random_sample()
    assert info.value.message == "The backend failed with HTTP 503: model not loaded"


def test_non_json_answer_is_reported(stub_backend: StubBackend) -> None:
    stub_backend.routes[("GET", "/health")] = Reply(
        raw=b"<html>proxy page</html>", content_type="text/html"
    )
    with pytest.raises(BackendError) as info:
        BackendClient(stub_backend.url, timeout=2).health()
    assert info.value.message == (
        f"The backend at {stub_backend.url} sent an answer that is not JSON (HTTP 200)."
    )


def test_non_json_error_body_is_excerpted(stub_backend: StubBackend) -> None:
    stub_backend.routes[("POST", "/predict")] = Reply(
        413, raw=b"Request Entity Too Large", content_type="text/plain"
    )
    with pytest.raises(BackendError) as info:
        BackendClient(stub_backend.url, timeout=2).predict(b"x", "x.png")
    assert info.value.message == "The backend refused the image: Request Entity Too Large"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/samples/random", {"name": "x.png"}),
        ("/samples/random", ["not", "an", "object"]),
        ("/health", {"model_loaded": True}),
    ],
)
def test_malformed_answers_are_reported(stub_backend: StubBackend, path: str, body: object) -> None:
    stub_backend.routes[("GET", path)] = Reply(body=body)
    client = BackendClient(stub_backend.url, timeout=2)
    call = client.random_sample if path == "/samples/random" else client.health
    with pytest.raises(BackendError, match=r"^The backend .*sent "):
        call()


def test_malformed_prediction_is_reported(stub_backend: StubBackend) -> None:
    stub_backend.routes[("POST", "/predict")] = Reply(
        body={"label": "apple", "confidence": 1.0, "probabilities": [1.0]}
    )
    with pytest.raises(BackendError, match="malformed probabilities"):
        BackendClient(stub_backend.url, timeout=2).predict(png_bytes(), "a.png")


def test_one_session_is_reused(stub_backend: StubBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    stub_backend.routes[("GET", "/health")] = Reply(body={"status": "ok"})
    client = BackendClient(stub_backend.url, timeout=2)
    seen: list[requests.Session] = []
    original = requests.Session.request

    def spy(self: requests.Session, *args: object, **kwargs: object) -> requests.Response:
        seen.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", spy)
    client.health()
    client.health()
    assert len(seen) == 2
    assert seen[0] is seen[1] is client.session
