"""The service images (backend, frontend, flask) x variants: healthy, serving, quick to stop.

One container per image serves every test here (the `services` fixture starts them all at
once); the stop test comes last in this module.
"""

from __future__ import annotations

import json

import pytest
from containers_support import APPS, SERVICES, VARIANTS, Service, engine, http, multipart

from shared_support import png_bytes

pytestmark = pytest.mark.container

SERVICE_IMAGES = [(app, variant) for app in SERVICES for variant in VARIANTS]
EACH_SERVICE = pytest.mark.parametrize(
    ("app", "variant"), SERVICE_IMAGES, ids=[f"{a}-{v}" for a, v in SERVICE_IMAGES]
)
IRIS_SETOSA = [5.1, 3.5, 1.4, 0.2]
PID1_COMMAND = "print(*open('/proc/1/cmdline').read().split(chr(0))[:-1], sep=chr(10))"
# The page Dash serves: its config script, which the browser's renderer starts from.
DASH_CONFIG = b'<script id="_dash-config" type="application/json">'


@EACH_SERVICE
def test_health_answers_on_the_published_port(app: str, variant: str, service: Service) -> None:
    """The fixture waits for the in-container probe; this is the answer a client outside gets."""
    status, body = http(f"{service.url}{APPS[app]['health']}")
    assert status == 200, body[:500]
    if app == "backend":
        health = json.loads(body)
        assert (health["status"], health["model_loaded"]) == ("ok", True), health
        assert health["model_version"], health
    elif app == "flask":
        health = json.loads(body)
        assert (health["status"], health["model_loaded"]) == ("healthy", True), health
    elif app == "frontend":
        assert body.count(DASH_CONFIG) == 1, body[:500]
        config = json.loads(body.split(DASH_CONFIG, 1)[1].split(b"</script>", 1)[0])
        assert config["requests_pathname_prefix"] == "/", config


@pytest.mark.parametrize(("app", "variant"), [("backend", v) for v in VARIANTS], ids=VARIANTS)
def test_backend_predicts_a_png(app: str, variant: str, service: Service) -> None:
    body, content_type = multipart("file", "test.png", png_bytes(64, 64), "image/png")
    status, answer = http(f"{service.url}/predict", body, {"Content-Type": content_type}, 30)
    assert status == 200, answer[:500]
    prediction = json.loads(answer)
    assert prediction["label"] in prediction["probabilities"]
    assert 0.0 <= prediction["confidence"] <= 1.0
    assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
    assert prediction["confidence"] == pytest.approx(max(prediction["probabilities"].values()))
    # Bad input is a clear 4xx and the service keeps serving.
    bad, _ = multipart("file", "x.png", b"not an image", "image/png")
    status, answer = http(f"{service.url}/predict", bad, {"Content-Type": content_type}, 30)
    assert status in (400, 415, 422), answer[:500]
    assert json.loads(answer)["detail"]
    assert http(f"{service.url}/health")[0] == 200


@pytest.mark.parametrize(("app", "variant"), [("flask", v) for v in VARIANTS], ids=VARIANTS)
def test_flask_predicts_an_iris_vector(app: str, variant: str, service: Service) -> None:
    payload = json.dumps({"features": IRIS_SETOSA}).encode()
    status, answer = http(f"{service.url}/predict", payload, {"Content-Type": "application/json"})
    assert status == 200, answer[:500]
    (prediction,) = json.loads(answer)["predictions"]
    assert "setosa" in prediction["class"]
    assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
    wrong = json.dumps({"features": IRIS_SETOSA[:3]}).encode()
    status, answer = http(f"{service.url}/predict", wrong, {"Content-Type": "application/json"})
    assert 400 <= status < 500 and "features" in json.loads(answer)["error"].lower()


@EACH_SERVICE
def test_stops_on_sigterm(app: str, variant: str, service: Service) -> None:
    """PID 1 handles SIGTERM: `stop -t 10` ends it before the SIGKILL (exit code 137), and
    the server shuts down as it should: exit code 0, its last line says so, no traceback."""
    engine(["stop", "-t", "10", service.name])
    exit_code = int(engine(["inspect", "--format", "{{.State.ExitCode}}", service.name]))
    logs = service.logs(lines=200)
    assert exit_code == 0, f"exit code {exit_code} (137: killed, not stopped)\n{logs}"
    assert "Traceback" not in logs, logs
    assert logs.strip().splitlines()[-1].endswith("Finished server process [1]"), logs
