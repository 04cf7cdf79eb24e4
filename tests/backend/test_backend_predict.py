"""`POST /predict`: good images and every kind of bad input (always 4xx JSON, never 500)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import pytest
from backend_support import (
    TEST_MAX_IMAGE_PIXELS,
    TEST_MAX_UPLOAD_BYTES,
    image_bytes,
)
from fastapi.testclient import TestClient

from backend.main import create_app
from grocery import CLASSES
from shared_support import png_declaring


def post_file(client: TestClient, data: bytes, name: str = "x.png", media: str = "image/png"):
    return client.post("/predict", files={"file": (name, data, media)})


def assert_error(response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    detail = response.json()["detail"]
    assert detail
    for word in words:
        assert word.lower() in str(detail).lower()


@pytest.mark.parametrize(("fmt", "media"), [("PNG", "image/png"), ("JPEG", "image/jpeg")])
@pytest.mark.parametrize("size", [(64, 64), (200, 120), (16, 16)])
def test_predict_returns_a_distribution(
    client: TestClient, fmt: str, media: str, size: tuple[int, int]
) -> None:
    response = post_file(client, image_bytes(size, fmt), f"x.{fmt.lower()}", media)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"label", "confidence", "probabilities"}
    assert set(body["probabilities"]) == set(CLASSES)
    assert math.isclose(sum(body["probabilities"].values()), 1.0, abs_tol=1e-5)
    assert body["label"] in CLASSES
    assert body["confidence"] == max(body["probabilities"].values())
    assert body["probabilities"][body["label"]] == body["confidence"]


def test_predict_is_deterministic_and_depends_on_the_image(client: TestClient) -> None:
    a, b = image_bytes(seed=1), image_bytes(seed=2)
    first, again, other = (post_file(client, d).json() for d in (a, a, b))
    assert first == again
    assert first["probabilities"] != other["probabilities"]


def test_part_content_type_is_not_trusted(client: TestClient) -> None:
    # A real PNG labelled as something else is still classified from its bytes.
    response = post_file(client, image_bytes(), "x.bin", "application/octet-stream")
    assert response.status_code == 200


# --- bad images: each case its own test, and the service keeps serving afterwards -------

BAD_IMAGES: dict[str, tuple[Callable[[], bytes], int, str]] = {
    "text": (lambda: b"this is not an image", 400, "not a valid image"),
    "empty": (lambda: b"", 400, "empty"),
    "json-as-file": (lambda: b'{"label": "apple"}', 400, "not a valid image"),
    "truncated-png": (lambda: image_bytes((64, 64))[:3000], 400, "truncated"),
    "truncated-jpeg": (lambda: image_bytes((64, 64), "JPEG")[:600], 400, "truncated"),
    "png-signature-only": (lambda: b"\x89PNG\r\n\x1a\n", 400, ""),
    "gif": (lambda: image_bytes((32, 32), "GIF"), 415, "GIF"),
    "bmp": (lambda: image_bytes((32, 32), "BMP"), 415, "BMP"),
    "webp": (lambda: image_bytes((32, 32), "WEBP"), 415, "WEBP"),
    "tiff": (lambda: image_bytes((32, 32), "TIFF"), 415, "TIFF"),
    "too-many-pixels": (lambda: image_bytes((600, 600), noise=False), 413, "pixels"),
    "declared-too-many-pixels": (lambda: png_declaring(5000, 5000), 413, "pixels"),
    "decompression-bomb": (lambda: png_declaring(100_000, 100_000), 413, ""),
}


@pytest.mark.parametrize("case", list(BAD_IMAGES))
def test_bad_image(client: TestClient, predict_ok: Callable[[], None], case: str) -> None:
    make, status, word = BAD_IMAGES[case]
    assert_error(post_file(client, make()), status, word)
    predict_ok()


def test_image_just_over_the_pixel_limit(client: TestClient, predict_ok) -> None:
    side = math.isqrt(TEST_MAX_IMAGE_PIXELS)
    flat = {"noise": False}  # compresses well: stays under the byte limit
    assert post_file(client, image_bytes((side, side), **flat)).status_code == 200
    assert_error(post_file(client, image_bytes((side, side + 1), **flat)), 413, str(side))
    predict_ok()


def test_bomb_is_tiny_on_the_wire() -> None:
    assert len(png_declaring(100_000, 100_000)) < 200


# --- oversized bodies ----------------------------------------------------------------


def test_file_over_the_byte_limit_is_413(client: TestClient, predict_ok) -> None:
    data = b"\x89PNG\r\n\x1a\n" + b"\x00" * TEST_MAX_UPLOAD_BYTES  # just over the limit
    assert_error(post_file(client, data), 413, str(TEST_MAX_UPLOAD_BYTES))
    predict_ok()


def test_huge_body_with_content_length_is_413(client: TestClient, predict_ok) -> None:
    data = b"\x00" * (4 * TEST_MAX_UPLOAD_BYTES)
    assert_error(post_file(client, data), 413, "too large")
    predict_ok()


def test_lying_content_length_does_not_bypass_the_limit(client: TestClient, predict_ok) -> None:
    # A client that announces a large body is refused before any of it is read.
    response = client.post(
        "/predict",
        content=b"--x\r\n",
        headers={
            "content-type": "multipart/form-data; boundary=x",
            "content-length": str(10 * TEST_MAX_UPLOAD_BYTES),
        },
    )
    assert_error(response, 413)
    predict_ok()


def test_streamed_body_without_content_length_is_413(client: TestClient, predict_ok) -> None:
    chunk = b"\x00" * 65536

    def body() -> Iterator[bytes]:
        head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n\r\n'
        yield head
        for _ in range(64):  # 4 MiB in all, far over the limit
            yield chunk

    response = client.post(
        "/predict",
        content=body(),
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "too large")
    predict_ok()


# --- wrong request shape -------------------------------------------------------------


def test_json_body_is_415(client: TestClient, predict_ok) -> None:
    response = client.post("/predict", json={"file": "apple.png"})
    assert_error(response, 415, "multipart/form-data")
    predict_ok()


@pytest.mark.parametrize(
    "headers",
    [
        {"content-type": "image/png"},
        {"content-type": "text/plain"},
        {"content-type": "application/x-www-form-urlencoded"},
        {},
    ],
    ids=["raw-png", "text", "urlencoded", "no-content-type"],
)
def test_non_multipart_body_is_415(client: TestClient, predict_ok, headers) -> None:
    response = client.post("/predict", content=image_bytes(), headers=headers)
    assert_error(response, 415, "multipart/form-data")
    predict_ok()


def test_missing_file_is_422(client: TestClient, predict_ok) -> None:
    response = client.post("/predict", data={"other": "value"}, files={"x": ("x.png", b"1")})
    assert_error(response, 422, "file")
    predict_ok()


def test_empty_multipart_is_422(client: TestClient, predict_ok) -> None:
    response = client.post(
        "/predict",
        content=b"--b--\r\n",
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert response.status_code in (400, 422)
    assert response.json()["detail"]
    predict_ok()


def test_file_sent_as_text_field_is_422(client: TestClient, predict_ok) -> None:
    response = client.post("/predict", files={"file": (None, "not a file")})
    assert_error(response, 422, "file")
    predict_ok()


def test_two_files_is_400(client: TestClient, predict_ok) -> None:
    png = image_bytes()
    response = client.post(
        "/predict", files=[("file", ("a.png", png, "image/png")), ("file", ("b.png", png))]
    )
    assert_error(response, 400, "files")
    predict_ok()


def test_broken_multipart_is_4xx(client: TestClient, predict_ok) -> None:
    response = client.post(
        "/predict",
        content=b"garbage without boundary",
        headers={"content-type": "multipart/form-data"},
    )
    assert 400 <= response.status_code < 500
    assert response.json()["detail"]
    predict_ok()


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_wrong_method_is_405(client: TestClient, method: str) -> None:
    assert_error(client.request(method, "/predict"), 405)


def test_many_bad_requests_then_good(client: TestClient, predict_ok) -> None:
    for make, status, _ in BAD_IMAGES.values():
        assert post_file(client, make()).status_code == status
    predict_ok()
    assert client.get("/health").json()["status"] == "ok"


def test_every_upload_is_classified_off_the_event_loop(client: TestClient, png: bytes,
                                                       monkeypatch) -> None:  # fmt: skip
    """Decoding (even of a small upload: a crafted one can be costly) never runs on the loop."""
    import threading

    from backend.routers import predict

    threads = []
    classify = predict._classify
    monkeypatch.setattr(predict, "_classify", lambda *args: threads.append(
        threading.current_thread()) or classify(*args))  # fmt: skip
    assert post_file(client, png).status_code == 200
    assert threads and threads[0] is not threading.main_thread()
    assert threads[0].name != "MainThread"


def test_busy_decoding_slots_answer_503_with_retry_after(settings, monkeypatch, png) -> None:
    """With every slot held longer than QUEUE_TIMEOUT, a request is not queued without end."""
    import threading
    import time

    from backend.routers import predict

    classify = predict._classify

    def slow(*args):
        time.sleep(1.0)
        return classify(*args)

    monkeypatch.setattr(predict, "_classify", slow)
    busy = settings.model_copy(update={"DECODE_WORKERS": 1, "QUEUE_TIMEOUT": 0.2})
    with TestClient(create_app(busy), raise_server_exceptions=False) as busy_client:
        first: list = []
        holder = threading.Thread(target=lambda: first.append(post_file(busy_client, png)))
        holder.start()
        time.sleep(0.3)  # the first request holds the only slot
        refused = post_file(busy_client, png)
        holder.join()
    assert first[0].status_code == 200
    assert_error(refused, 503, "busy", "retry")
    assert refused.headers["retry-after"] == "1"


def test_an_upload_that_finds_no_room_to_spool_gets_503(client: TestClient, monkeypatch) -> None:
    """Starlette spools an upload over 1 MiB to /tmp; a full /tmp (ENOSPC) is no bad body
    (FastAPI's 400) but a busy server: 503 with Retry-After. Other write errors stay 400."""
    import errno

    from starlette.datastructures import UploadFile

    big = b"\x89PNG\r\n\x1a\n" + b"\0" * 1000  # every write fails below, spooled or not

    async def full(self, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(UploadFile, "write", full)
    refused = post_file(client, big)
    assert_error(refused, 503, "busy", "no room to receive the upload")
    assert refused.headers["retry-after"] == "1"

    async def broken(self, data: bytes) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(UploadFile, "write", broken)
    assert post_file(client, big).status_code == 400
    monkeypatch.undo()
    assert client.get("/health").json()["status"] == "ok"
