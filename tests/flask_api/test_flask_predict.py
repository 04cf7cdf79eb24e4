"""POST /predict: predictions, and a clear 4xx JSON error for every bad input."""

from __future__ import annotations

import csv
import json

import pytest

from flask_api.predict import MAX_ABS_FEATURE

GOOD = {"features": [5.1, 3.5, 1.4, 0.2]}
CLASSES = ["setosa", "versicolor", "virginica"]


def assert_prediction_shape(prediction: dict) -> None:
    assert set(prediction) == {"class", "class_index", "probabilities"}
    assert prediction["class"] == CLASSES[prediction["class_index"]]
    probabilities = prediction["probabilities"]
    assert list(probabilities) == CLASSES
    assert sum(probabilities.values()) == pytest.approx(1.0)
    assert all(0.0 <= p <= 1.0 for p in probabilities.values())


def test_single_row(client):
    response = client.post("/predict", json=GOOD)
    assert response.status_code == 200
    predictions = response.get_json()["predictions"]
    assert len(predictions) == 1
    assert_prediction_shape(predictions[0])
    assert predictions[0]["class"] == "setosa"


def test_integers_are_numbers(client):
    response = client.post("/predict", json={"features": [5, 3, 1, 0]})
    assert response.status_code == 200


def test_batch_matches_the_trainers_test_predictions(client, model_dir):
    with (model_dir / "predictions.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    features = json.loads((model_dir / "metadata.json").read_text())["feature_names"]
    batch = [[float(row[name]) for name in features] for row in rows]
    response = client.post("/predict", json={"features": batch})
    assert response.status_code == 200
    predictions = response.get_json()["predictions"]
    assert [p["class"] for p in predictions] == [row["predicted"] for row in rows]
    for prediction in predictions:
        assert_prediction_shape(prediction)


def test_largest_allowed_values_still_score(client):
    response = client.post("/predict", json={"features": [MAX_ABS_FEATURE, 0, -MAX_ABS_FEATURE, 1]})
    assert response.status_code == 200
    assert_prediction_shape(response.get_json()["predictions"][0])


def test_batch_of_max_batch_rows_is_accepted(app, client):
    rows = [GOOD["features"]] * app.config["MAX_BATCH"]
    response = client.post("/predict", json={"features": rows})
    assert response.status_code == 200
    assert len(response.get_json()["predictions"]) == app.config["MAX_BATCH"]


JSON = "application/json"
ROW = GOOD["features"]

# (id, request kwargs, expected status, fragment of the error message)
BAD_REQUESTS = [
    ("text-plain", {"data": json.dumps(GOOD), "content_type": "text/plain"}, 415, "Content-Type"),
    ("no-content-type", {"data": json.dumps(GOOD)}, 415, "Content-Type"),
    ("form", {"data": {"features": "1"}}, 415, "Content-Type"),
    ("malformed-json", {"data": '{"features": [1, 2', "content_type": JSON}, 400, "valid JSON"),
    ("empty-body", {"data": "", "content_type": JSON}, 400, "valid JSON"),
    ("top-level-list", {"json": ROW}, 400, "JSON object"),
    ("top-level-null", {"data": "null", "content_type": JSON}, 400, "JSON object"),
    ("top-level-string", {"json": "5.1,3.5,1.4,0.2"}, 400, "JSON object"),
    ("missing-features", {"json": {}}, 422, "missing 'features'"),
    ("misspelt-key", {"json": {"feature": ROW}}, 422, "missing 'features'"),
    ("features-string", {"json": {"features": "5.1,3.5,1.4,0.2"}}, 422, "list"),
    ("features-number", {"json": {"features": 5.1}}, 422, "list"),
    ("features-object", {"json": {"features": {"a": 1}}}, 422, "list"),
    ("features-null", {"json": {"features": None}}, 422, "list"),
    ("empty-list", {"json": {"features": []}}, 422, "empty"),
    ("too-few", {"json": {"features": ROW[:3]}}, 422, "expected 4 features"),
    ("too-many", {"json": {"features": [*ROW, 1.0]}}, 422, "expected 4 features"),
    ("batch-row-short", {"json": {"features": [ROW, ROW[:2]]}}, 422, "row 1 has 2 values"),
    ("empty-row", {"json": {"features": [[]]}}, 422, "expected 4 features"),
    ("too-deep", {"json": {"features": [[ROW]]}}, 422, "expected 4 features"),
    ("rows-then-number", {"json": {"features": [ROW, 5.0]}}, 422, "row 1"),
    ("number-then-row", {"json": {"features": [5.0, ROW, 1.0, 2.0]}}, 422, "features[1]"),
    ("strings", {"json": {"features": ["a", "b", "c", "d"]}}, 422, "must be a number"),
    ("numeric-strings", {"json": {"features": ["5.1", "3.5", "1.4", "0.2"]}}, 422, "number"),
    ("booleans", {"json": {"features": [True, False, True, 1.0]}}, 422, "got bool"),
    ("null-value", {"json": {"features": [5.1, None, 1.4, 0.2]}}, 422, "got NoneType"),
    ("object-value", {"json": {"features": [5.1, {}, 1.4, 0.2]}}, 422, "must be a number"),
    ("nan", {"data": '{"features": [NaN, 3.5, 1.4, 0.2]}', "content_type": JSON}, 422, "finite"),
    (
        "infinity",
        {"data": '{"features": [Infinity, 1, 1, 1]}', "content_type": JSON},
        422,
        "finite",
    ),
    (
        "-infinity",
        {"data": '{"features": [1, -Infinity, 1, 1]}', "content_type": JSON},
        422,
        "finite",
    ),
    (
        "overflow-float",
        {"data": '{"features": [1e999, 1, 1, 1]}', "content_type": JSON},
        422,
        "finite",
    ),
    (
        "huge-int",
        {"data": '{"features": [1' + "0" * 400 + ", 1, 1, 1]}", "content_type": JSON},
        422,
        "too large",
    ),
    ("out-of-range", {"json": {"features": [1e308, 1, 1, 1]}}, 422, "out of range"),
    (
        "batch-nan",
        {"data": '{"features": [[1, 1, 1, 1], [1, NaN, 1, 1]]}', "content_type": JSON},
        422,
        "row 1[1]",
    ),
    ("too-many-rows", {"json": {"features": [ROW] * 1001}}, 413, "too many rows"),
    (
        "body-too-large",
        {"data": '{"features": [' + "1.0, " * 20000 + "1.0]}", "content_type": JSON},
        413,
        "at most 65536 bytes",
    ),
    (
        "deeply-nested",
        {"data": '{"features": ' + "[" * 30000 + "]" * 30000 + "}", "content_type": JSON},
        400,
        "nested too deeply",
    ),
    (
        "int-over-4300-digits",
        {"data": '{"features": [' + "1" * 5000 + ", 1, 1, 1]}", "content_type": JSON},
        400,
        "valid JSON",
    ),
]


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        pytest.param(kwargs, status, message, id=name)
        for name, kwargs, status, message in BAD_REQUESTS
    ],
)
def test_bad_input_is_a_clear_json_error(client, kwargs, status, message):
    response = client.post("/predict", **kwargs)
    assert response.status_code == status
    assert response.is_json
    body = response.get_json()
    assert set(body) == {"error"}
    assert isinstance(body["error"], str) and body["error"]
    assert message in body["error"]
    # the service keeps serving
    after = client.post("/predict", json=GOOD)
    assert after.status_code == 200
    assert after.get_json()["predictions"][0]["class"] == "setosa"


def test_max_batch_and_body_limit_follow_config(model_dir):
    from flask_api import create_app

    app = create_app(
        {"TESTING": True, "MODEL_DIR": str(model_dir), "MAX_BATCH": 2, "MAX_CONTENT_LENGTH": 200}
    )
    client = app.test_client()
    assert client.post("/predict", json={"features": [ROW, ROW]}).status_code == 200
    too_many = client.post("/predict", json={"features": [ROW, ROW, ROW]})
    assert too_many.status_code == 413
    assert "at most 2" in too_many.get_json()["error"]
    padded = {"features": ROW, "pad": "x" * 300}
    too_big = client.post("/predict", json=padded)
    assert too_big.status_code == 413
    assert too_big.is_json
