"""The page's callbacks, called as plain functions and through Dash's own HTTP endpoint."""

from __future__ import annotations

import importlib
import json
from typing import Any

import dash
import pytest
from dash import html
from frontend_support import (
    CLASSES,
    Reply,
    StubBackend,
    data_url,
    prediction,
    sample,
)

from frontend.api import BackendClient
from frontend.app import (
    NO_IMAGE,
    OUTPUTS,
    PLACEHOLDER,
    UNKNOWN_LABEL,
    View,
    backend_status,
    create_app,
    show_random_prediction,
    show_upload_prediction,
    update_result,
)
from frontend.settings import Settings
from shared_support import free_port, png_bytes

MAX = 1024 * 1024


def _client(stub: StubBackend) -> BackendClient:
    return BackendClient(stub.url, timeout=2)


def _image_src(view: View) -> str:
    assert isinstance(view.image, html.Figure)
    img = view.image.children[0]
    assert isinstance(img, html.Img)
    return str(img.src)


def _bars(view: View) -> dict[str, float]:
    (bar,) = view.figure.data
    return dict(zip(bar.y, bar.x, strict=True))


def _assert_cleared(view: View) -> None:
    assert (view.predicted, view.true, view.confidence) == (PLACEHOLDER,) * 3
    assert view.image == NO_IMAGE
    assert view.match == ""
    assert view.figure.data == ()


def test_random_prediction_shows_label_truth_confidence_and_chart(
    stub_backend: StubBackend,
) -> None:
    the_sample = sample("apple")
    stub_backend.routes[("GET", "/samples/random")] = Reply(body=the_sample)
    stub_backend.routes[("POST", "/predict")] = Reply(body=prediction("banana", 0.7))

    view = show_random_prediction(_client(stub_backend))

    assert view.error == ""
    assert view.predicted == "banana"
    assert view.true == "apple"
    assert view.confidence == "70.0%"
    assert view.match == "The prediction is wrong."
    assert _bars(view) == pytest.approx({"apple": 0.15, "banana": 0.7, "carrot": 0.15})
    assert list(view.figure.data[0].y)[-1] == "banana"  # largest bar on top
    assert _image_src(view) == f"data:image/png;base64,{the_sample['image_base64']}"
    # The sample's own bytes were sent for prediction.
    posted = stub_backend.requests[-1]
    assert posted["path"] == "/predict"
    assert png_bytes() in posted["body"]
    assert b'filename="apple_0001.png"' in posted["body"]


def test_random_prediction_marks_a_correct_answer(stub_backend: StubBackend) -> None:
    stub_backend.routes[("GET", "/samples/random")] = Reply(body=sample("carrot"))
    stub_backend.routes[("POST", "/predict")] = Reply(body=prediction("carrot", 0.55))
    view = show_random_prediction(_client(stub_backend))
    assert (view.predicted, view.true) == ("carrot", "carrot")
    assert view.match == "The prediction is correct."


def test_random_prediction_with_backend_down_shows_error() -> None:
    port = free_port()
    view = show_random_prediction(BackendClient(f"http://127.0.0.1:{port}", timeout=2))
    assert view.error == (
        f"The backend at http://127.0.0.1:{port} is not reachable (connection refused)."
    )
    _assert_cleared(view)


def test_random_prediction_with_refused_image_shows_detail(stub_backend: StubBackend) -> None:
    stub_backend.routes[("GET", "/samples/random")] = Reply(body=sample())
    stub_backend.routes[("POST", "/predict")] = Reply(400, {"detail": "image is too small"})
    view = show_random_prediction(_client(stub_backend))
    assert view.error == "The backend refused the image: image is too small"
    _assert_cleared(view)


def test_random_prediction_with_undecodable_sample(stub_backend: StubBackend) -> None:
    stub_backend.routes[("GET", "/samples/random")] = Reply(
        body=dict(sample(), image_base64="***not base64***")
    )
    view = show_random_prediction(_client(stub_backend))
    assert view.error == "The backend sent a sample image that could not be decoded."
    assert [r["path"] for r in stub_backend.requests] == ["/samples/random"]


def test_upload_prediction_has_unknown_true_label(stub_backend: StubBackend) -> None:
    stub_backend.routes[("POST", "/predict")] = Reply(body=prediction("apple", 0.9))
    image = png_bytes(16, 16, (10, 200, 10))
    view = show_upload_prediction(_client(stub_backend), data_url(image), "mine.png", MAX)
    assert view.error == ""
    assert view.predicted == "apple"
    assert view.true == UNKNOWN_LABEL
    assert view.match == ""
    assert view.confidence == "90.0%"
    assert _image_src(view) == data_url(image)
    assert image in stub_backend.requests[-1]["body"]
    assert b'filename="mine.png"' in stub_backend.requests[-1]["body"]


def test_oversized_upload_is_refused_before_sending(stub_backend: StubBackend) -> None:
    big = png_bytes() + b"\x00" * 2000
    view = show_upload_prediction(_client(stub_backend), data_url(big), "big.png", 1000)
    assert view.error.startswith("big.png is too large")
    assert "the limit is 0.0 MB" in view.error
    assert stub_backend.requests == []
    _assert_cleared(view)


@pytest.mark.parametrize(
    ("contents", "expected"),
    [
        (data_url(b"hello, I am text", "text/plain"), "notes.txt is not an image"),
        (data_url(b"%PDF-1.7 ...", "application/pdf"), "notes.txt is not an image"),
        (data_url(b"", "image/png"), "notes.txt is empty"),
        ("data:image/png;base64,@@@@", "notes.txt could not be decoded"),
        ("not a data url", "notes.txt could not be read"),
    ],
)
def test_bad_uploads_are_reported(stub_backend: StubBackend, contents: str, expected: str) -> None:
    view = show_upload_prediction(_client(stub_backend), contents, "notes.txt", MAX)
    assert view.error.startswith(expected)
    assert stub_backend.requests == []


def test_upload_refused_by_backend_shows_its_detail(stub_backend: StubBackend) -> None:
    stub_backend.routes[("POST", "/predict")] = Reply(
        422, {"detail": "image has 40000000 pixels; the limit is 16000000"}
    )
    view = show_upload_prediction(_client(stub_backend), data_url(png_bytes()), "x.png", MAX)
    assert view.error == (
        "The backend refused the image: image has 40000000 pixels; the limit is 16000000"
    )


def test_update_result_dispatches_on_trigger(stub_backend: StubBackend) -> None:
    stub_backend.routes[("GET", "/samples/random")] = Reply(body=sample("apple"))
    stub_backend.routes[("POST", "/predict")] = Reply(body=prediction("carrot"))
    client = _client(stub_backend)

    random_out = update_result("predict-random", None, None, client, MAX)
    assert len(random_out) == len(OUTPUTS)
    assert random_out[1:3] == ("carrot", "apple")

    upload_out = update_result("upload-image", data_url(png_bytes()), "a.png", client, MAX)
    assert upload_out[1:3] == ("carrot", UNKNOWN_LABEL)

    assert update_result(None, None, None, client, MAX) == (dash.no_update,) * len(OUTPUTS)
    assert update_result("upload-image", None, None, client, MAX) == (dash.no_update,) * len(
        OUTPUTS
    )


def test_update_result_turns_a_bug_into_a_sentence() -> None:
    class Broken:
        def random_sample(self) -> dict[str, Any]:
            raise RuntimeError("boom")

    out = update_result("predict-random", None, None, Broken(), MAX)  # type: ignore[arg-type]
    error = out[OUTPUTS.index(("error-message", "children"))]
    assert error == "Something went wrong in the frontend; please try again."
    assert "boom" not in error


def test_backend_status_line(stub_backend: StubBackend) -> None:
    stub_backend.routes[("GET", "/health")] = Reply(
        body={"status": "ok", "model_loaded": True, "model_version": "0123456789abcdef"}
    )
    assert backend_status(_client(stub_backend)) == "The backend is ready (model 0123456789ab)."
    stub_backend.routes[("GET", "/health")] = Reply(body={"status": "ok", "model_loaded": False})
    assert backend_status(_client(stub_backend)) == (
        "The backend is running but has no model loaded."
    )
    stub_backend.routes[("GET", "/health")] = Reply(body={"status": "starting"})
    assert backend_status(_client(stub_backend)) == "The backend is not ready (status 'starting')."
    stub_backend.routes[("GET", "/health")] = Reply(503, {"detail": "no model"})
    assert backend_status(_client(stub_backend)) == "The backend failed with HTTP 503: no model"
    port = free_port()
    assert backend_status(BackendClient(f"http://127.0.0.1:{port}", timeout=2)) == (
        f"The backend at http://127.0.0.1:{port} is not reachable (connection refused)."
    )


def _layout_ids(component: Any) -> set[str]:
    ids = {component.id} if getattr(component, "id", None) else set()
    children = getattr(component, "children", None)
    if not isinstance(children, list | tuple):
        children = [children]
    for child in children:
        if hasattr(child, "to_plotly_json"):
            ids |= _layout_ids(child)
    return ids


def test_layout_has_the_documented_ids() -> None:
    app = create_app(Settings(api_url="http://127.0.0.1:9"))
    ids = _layout_ids(app.layout)
    for needed in ("predict-random", "upload-image", "predicted-label", "true-label"):
        assert needed in ids
    for output_id, _prop in OUTPUTS:
        assert output_id in ids
    assert app.config.serve_locally is True
    assert app.title == "Grocery classifier"


def _dash_post(app: dash.Dash, trigger: str, contents: str | None, filename: str | None) -> Any:
    """Call the prediction callback the way the browser does."""
    output = next(k for k in app.callback_map if "predicted-label" in k)
    payload = {
        "output": output,
        "outputs": [{"id": i, "property": p} for i, p in OUTPUTS],
        "inputs": [
            {"id": "predict-random", "property": "n_clicks", "value": 1},
            {"id": "upload-image", "property": "contents", "value": contents},
        ],
        "state": [{"id": "upload-image", "property": "filename", "value": filename}],
        "changedPropIds": [trigger],
    }
    response = app.server.test_client().post("/_dash-update-component", json=payload)
    assert response.status_code == 200, response.data[:500]
    return json.loads(response.data)["response"]


def test_callback_through_dash_endpoint(stub_backend: StubBackend) -> None:
    stub_backend.routes[("GET", "/samples/random")] = Reply(body=sample("apple"))
    stub_backend.routes[("POST", "/predict")] = Reply(body=prediction("banana", 0.7))
    app = create_app(Settings(api_url=stub_backend.url, request_timeout=2))

    response = _dash_post(app, "predict-random.n_clicks", None, None)
    assert response["predicted-label"]["children"] == "banana"
    assert response["true-label"]["children"] == "apple"
    assert response["error-message"]["children"] == ""
    bar = response["probability-chart"]["figure"]["data"][0]
    assert sorted(bar["y"]) == sorted(CLASSES)

    response = _dash_post(app, "upload-image.contents", data_url(b"plain text"), "a.txt")
    assert response["error-message"]["children"].startswith("a.txt is not an image")


def test_callback_through_dash_endpoint_with_backend_down() -> None:
    port = free_port()
    app = create_app(Settings(api_url=f"http://127.0.0.1:{port}", request_timeout=2))
    response = _dash_post(app, "predict-random.n_clicks", None, None)
    assert "is not reachable (connection refused)" in response["error-message"]["children"]
    assert response["predicted-label"]["children"] == PLACEHOLDER


def test_large_upload_body_still_gets_a_message(stub_backend: StubBackend) -> None:
    limit = 100_000
    app = create_app(Settings(api_url=stub_backend.url, max_upload_bytes=limit))
    big = png_bytes() + b"\x00" * (2 * limit)
    response = _dash_post(app, "upload-image.contents", data_url(big), "huge.png")
    assert response["error-message"]["children"].startswith("huge.png is too large")
    assert stub_backend.requests == []


def test_wsgi_exposes_the_flask_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_URL", "http://backend:8000")
    wsgi = importlib.reload(importlib.import_module("frontend.wsgi"))
    assert wsgi.server is wsgi.app.server
    page = wsgi.server.test_client().get("/")
    assert page.status_code == 200
    assert b"Grocery classifier" in page.data
    # Every script is served by the app itself: no CDN.
    assert b"https://" not in page.data.split(b'id="_dash-config"')[0]
    assert b"unpkg" not in page.data and b"cdn." not in page.data


def test_a_deeply_nested_callback_body_is_a_400_not_a_500(stub_backend: StubBackend) -> None:
    app = create_app(Settings(api_url=stub_backend.url, request_timeout=2))
    response = app.server.test_client().post(
        "/_dash-update-component", data=b"[" * 100_000, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.get_json() == {"error": "the request body is nested too deeply"}


def _good_body(app: dash.Dash) -> dict:
    output = next(k for k in app.callback_map if "predicted-label" in k)
    return {
        "output": output,
        "outputs": [{"id": i, "property": p} for i, p in OUTPUTS],
        "inputs": [{"id": "predict-random", "property": "n_clicks", "value": 1},
                   {"id": "upload-image", "property": "contents", "value": None}],
        "state": [{"id": "upload-image", "property": "filename", "value": None}],
        "changedPropIds": ["predict-random.n_clicks"],
    }  # fmt: skip


# Each: what replaces the browser's body (a function of it), and the reason in the answer.
MALFORMED = [
    pytest.param(lambda b: {}, "no callback has that output", id="empty-object"),
    pytest.param(lambda b: [], "not a JSON object", id="list"),
    pytest.param(lambda b: "str", "not a JSON object", id="string"),
    pytest.param(lambda b: {**b, "output": 5}, "no callback has that output", id="output-int"),
    pytest.param(lambda b: {**b, "output": "x.children"}, "no callback has that output",
                 id="output-unknown"),
    pytest.param(lambda b: {k: v for k, v in b.items() if k != "inputs"},
                 "'inputs' has 0 entries, the callback takes 2", id="no-inputs"),
    pytest.param(lambda b: {**b, "inputs": b["inputs"][:1]}, "'inputs' has 1 entries",
                 id="one-input"),
    pytest.param(lambda b: {**b, "inputs": [1, 2]}, "'inputs' is not a list of", id="input-ints"),
    pytest.param(lambda b: {**b, "state": "x"}, "'state' is not a list of", id="state-string"),
    pytest.param(lambda b: {**b, "outputs": 3}, "'outputs' is not a list of 7", id="outputs-int"),
    pytest.param(lambda b: {**b, "outputs": b["outputs"][:1]}, "'outputs' is not a list of 7",
                 id="outputs-short"),
    pytest.param(lambda b: {**b, "changedPropIds": [1]}, "'changedPropIds' is not a list",
                 id="changed-int"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "reason"), MALFORMED)
def test_a_malformed_callback_body_is_a_400_with_the_reason(change, reason: str) -> None:
    app = create_app(Settings(api_url="http://127.0.0.1:9", request_timeout=1))
    client = app.server.test_client()
    good = _good_body(app)
    assert client.post("/_dash-update-component", json=good).status_code == 200
    response = client.post("/_dash-update-component", json=change(good))
    assert response.status_code == 400, response.data[:300]
    assert reason in response.get_json()["error"]
    assert response.get_json()["error"].startswith("not a Dash callback request: ")


@pytest.mark.parametrize("contents", [5, {"a": 1}, ["x"]])
def test_an_upload_that_is_no_data_url_gets_the_message(contents: object) -> None:
    app = create_app(Settings(api_url="http://127.0.0.1:9", request_timeout=1))
    body = _good_body(app)
    body["inputs"][1]["value"] = contents
    body["state"][0]["value"] = 7  # no file name either
    body["changedPropIds"] = ["upload-image.contents"]
    response = app.server.test_client().post("/_dash-update-component", json=body)
    assert response.status_code == 200
    shown = response.get_json()["response"]["error-message"]["children"]
    assert shown == "The file could not be read as an uploaded file."


def test_the_upload_box_bounds_the_file_size_in_the_browser(stub_backend: StubBackend) -> None:
    settings = Settings(api_url=stub_backend.url, request_timeout=2, max_upload_bytes=1000)
    upload = create_app(settings).layout.children[3].children[1]
    assert upload.id == "upload-image"
    assert upload.max_size == 3000
