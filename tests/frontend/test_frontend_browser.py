"""The page in Debian's headless Chromium against the real backend (or a closed port).

Needs /usr/bin/chromium and /usr/bin/chromedriver (`apt-get install -y chromium
chromium-driver`); without them these tests fail, unless SKIP_BROWSER_TESTS=1 says they are
deliberately not run here. CHROMIUM_BINARY and CHROMEDRIVER override the paths.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from shared_support import free_port

pytestmark = pytest.mark.browser

SRC = Path(__file__).resolve().parents[2] / "src"
CHROMIUM = os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
SAMPLE_CLASSES = ("apple", "banana", "lemon")
START_TIMEOUT = 60.0
UI_TIMEOUT = 15.0
UVICORN = (sys.executable, "-m", "uvicorn", "backend.main:app")
SERVING = (sys.executable, "-m", "serving", "frontend.wsgi:server", "--interface", "wsgi")


def _browser_available() -> None:
    """Fail (or skip, when told to) if Chromium or its driver is missing."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if not missing:
        return
    message = (
        f"browser test needs {' and '.join(missing)}: install them with "
        "`apt-get install -y chromium chromium-driver` (or set SKIP_BROWSER_TESTS=1 to "
        "deselect browser tests on a machine without a browser)"
    )
    if os.environ.get("SKIP_BROWSER_TESTS") == "1":
        pytest.skip(f"SKIP_BROWSER_TESTS=1: {message}")
    pytest.fail(message, pytrace=False)


class Service:
    """A server subprocess with its log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.log = name, log
        full_env = {**os.environ, **env, "PYTHONPATH": str(SRC)}
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                args, env=full_env, stdout=out, stderr=subprocess.STDOUT, cwd=SRC.parent
            )

    def wait_until_up(self, url: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")
            try:
                if requests.get(url, timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        pytest.fail(f"{self.name} did not answer {url} within {START_TIMEOUT:g} s:\n{self.tail()}")

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained GroceryCNN saved with save_model, plus a few PNG samples."""
    import torch
    from PIL import Image

    from grocery import CLASSES
    from grocery.model import GroceryCNN, save_model

    torch.set_num_threads(1)
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("model") / "image"
    model = GroceryCNN(num_classes=len(CLASSES), width=16)
    save_model(model, directory, {"classes": list(CLASSES), "input_size": 64, "width": 16})
    for index, label in enumerate(SAMPLE_CLASSES):
        folder = directory / "samples" / label
        folder.mkdir(parents=True)
        for k in range(2):
            colour = (40 + 70 * index, 200 - 60 * k, 90)
            Image.new("RGB", (64, 64), colour).save(folder / f"{label}_{k}.png")
    return directory


@pytest.fixture(scope="module")
def backend_url(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real backend (`uvicorn backend.main:app`) on a free loopback port."""
    port = free_port()
    service = Service(
        "backend",
        [*UVICORN, "--host", "127.0.0.1", "--port", str(port)],
        {"MODEL_DIR": str(model_dir), "TORCH_THREADS": "1"},
        tmp_path_factory.mktemp("logs") / "backend.log",
    )
    try:
        url = f"http://127.0.0.1:{port}"
        service.wait_until_up(f"{url}/health")
        yield url
    finally:
        service.stop()


@pytest.fixture(scope="module")
def start_frontend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], str]]:
    """Start `python -m serving frontend.wsgi:server` against an API_URL; returns its URL."""
    services: list[Service] = []

    def start(api_url: str) -> str:
        port = free_port()
        service = Service(
            "frontend",
            [*SERVING, "--host", "127.0.0.1", "--port", str(port)],
            {"API_URL": api_url, "REQUEST_TIMEOUT": "3"},
            tmp_path_factory.mktemp("logs") / f"frontend-{port}.log",
        )
        services.append(service)
        url = f"http://127.0.0.1:{port}"
        service.wait_until_up(f"{url}/")
        return url

    try:
        yield start
    finally:
        for service in services:
            service.stop()


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Headless Chromium driven through /usr/bin/chromedriver (no selenium-manager)."""
    _browser_available()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as ChromeService

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--window-size=1100,1300",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    browser = webdriver.Chrome(service=ChromeService(executable_path=CHROMEDRIVER), options=options)
    browser.set_page_load_timeout(30)
    try:
        yield browser
    finally:
        browser.quit()


def _open(driver: object, url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)  # type: ignore[attr-defined]
    WebDriverWait(driver, UI_TIMEOUT).until(ec.element_to_be_clickable((By.ID, "predict-random")))


def _text(driver: object, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id).text.strip()  # type: ignore[attr-defined]


def _wait_for(driver: object, condition: Callable[[object], object], what: str) -> None:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(driver, UI_TIMEOUT).until(condition)
    except TimeoutException:
        body = _text(driver, "react-entry-point")
        pytest.fail(f"timed out waiting for {what}; the page says:\n{body}")


def _requested_urls(driver: object) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):  # type: ignore[attr-defined]
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def test_predict_random_image_end_to_end(
    driver: object, backend_url: str, start_frontend: Callable[[str], str], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    from grocery import CLASSES

    frontend_url = start_frontend(backend_url)
    driver.get_log("performance")  # type: ignore[attr-defined]  # drop earlier entries
    _open(driver, frontend_url)
    _wait_for(
        driver, lambda d: _text(d, "backend-status").startswith("The backend is ready"), "status"
    )

    driver.find_element(By.ID, "predict-random").click()  # type: ignore[attr-defined]
    _wait_for(driver, lambda d: _text(d, "predicted-label") in CLASSES, "a predicted label")
    driver.save_screenshot(str(tmp_path / "predict-random.png"))  # type: ignore[attr-defined]

    assert _text(driver, "true-label") in SAMPLE_CLASSES
    assert _text(driver, "confidence").endswith("%")
    assert _text(driver, "match-status") in (
        "The prediction is correct.",
        "The prediction is wrong.",
    )
    assert _text(driver, "error-message") == ""
    image = driver.find_element(By.ID, "shown-image")  # type: ignore[attr-defined]
    assert image.get_attribute("src").startswith("data:image/png;base64,")
    assert driver.execute_script("return arguments[0].naturalWidth", image) == 64  # type: ignore[attr-defined]
    # The chart was drawn by plotly.js: one bar per class of the model.
    bars = driver.find_elements(By.CSS_SELECTOR, "#probability-chart .barlayer .point")  # type: ignore[attr-defined]
    assert len(bars) == len(CLASSES)
    labels = {
        t.text
        for t in driver.find_elements(By.CSS_SELECTOR, "#probability-chart .ytick text")  # type: ignore[attr-defined]
    }
    assert labels == set(CLASSES)
    assert "Traceback" not in driver.page_source  # type: ignore[attr-defined]
    # Everything the page loaded came from the frontend itself: no CDN, no outside host.
    urls = _requested_urls(driver)
    assert any("_dash-update-component" in u for u in urls)
    outside = [u for u in urls if not u.startswith((frontend_url, "data:", "blob:"))]
    assert outside == []


def test_upload_own_image_end_to_end(
    driver: object, backend_url: str, start_frontend: Callable[[str], str], tmp_path: Path
) -> None:
    from PIL import Image
    from selenium.webdriver.common.by import By

    from grocery import CLASSES

    frontend_url = start_frontend(backend_url)
    _open(driver, frontend_url)
    picture = tmp_path / "my picture.jpg"
    Image.new("RGB", (80, 60), (230, 200, 30)).save(picture, format="JPEG")
    upload = driver.find_element(By.CSS_SELECTOR, "#upload-image input[type=file]")  # type: ignore[attr-defined]
    upload.send_keys(str(picture))
    _wait_for(driver, lambda d: _text(d, "predicted-label") in CLASSES, "a predicted label")
    assert _text(driver, "true-label") == "unknown (uploaded image)"
    assert _text(driver, "image-caption") == "my picture.jpg"
    assert _text(driver, "error-message") == ""

    text_file = tmp_path / "notes.png"
    text_file.write_text("not really a picture")
    upload = driver.find_element(By.CSS_SELECTOR, "#upload-image input[type=file]")  # type: ignore[attr-defined]
    upload.send_keys(str(text_file))
    _wait_for(driver, lambda d: _text(d, "error-message") != "", "an error message")
    assert _text(driver, "error-message") == (
        "notes.png is not an image; please upload a PNG or JPEG file."
    )
    assert _text(driver, "predicted-label") == "-"


def test_a_file_the_browser_refuses_as_too_large_gets_a_message(
    driver: object, backend_url: str, start_frontend: Callable[[str], str], tmp_path: Path
) -> None:
    """Over 3x MAX_UPLOAD_BYTES (5 MB by default), dcc.Upload refuses the file in the browser
    and no callback runs; the page says why, and a random prediction clears it."""
    from selenium.webdriver.common.by import By

    from grocery import CLASSES

    frontend_url = start_frontend(backend_url)
    _open(driver, frontend_url)
    # The page's own load callback is done before the log is emptied.
    _wait_for(
        driver, lambda d: _text(d, "backend-status").startswith("The backend is ready"), "status"
    )
    huge = tmp_path / "huge.png"
    with huge.open("wb") as handle:
        handle.truncate(16 * 1024 * 1024)
    driver.get_log("performance")  # type: ignore[attr-defined]  # drop earlier entries
    upload = driver.find_element(By.CSS_SELECTOR, "#upload-image input[type=file]")  # type: ignore[attr-defined]
    upload.send_keys(str(huge))
    _wait_for(driver, lambda d: _text(d, "upload-refused") != "", "the refusal")
    assert _text(driver, "upload-refused") == (
        "huge.png is too large (16.0 MB); the limit is 5.0 MB."
    )
    time.sleep(1)  # time enough for an upload's callback to start, had the file been taken
    assert not any("_dash-update-component" in u for u in _requested_urls(driver))
    assert _text(driver, "predicted-label") == "-"
    driver.find_element(By.ID, "predict-random").click()  # type: ignore[attr-defined]
    _wait_for(driver, lambda d: _text(d, "predicted-label") in CLASSES, "a predicted label")
    assert _text(driver, "upload-refused") == ""


def test_backend_down_shows_plain_error(
    driver: object, start_frontend: Callable[[str], str], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    frontend_url = start_frontend(closed)
    _open(driver, frontend_url)
    driver.find_element(By.ID, "predict-random").click()  # type: ignore[attr-defined]
    _wait_for(driver, lambda d: _text(d, "error-message") != "", "an error message")
    driver.save_screenshot(str(tmp_path / "backend-down.png"))  # type: ignore[attr-defined]

    expected = f"The backend at {closed} is not reachable (connection refused)."
    assert _text(driver, "error-message") == expected
    assert _text(driver, "predicted-label") == "-"
    assert _text(driver, "backend-status") == expected
    page = driver.find_element(By.TAG_NAME, "body").text  # type: ignore[attr-defined]
    assert "Traceback" not in page and "Error:" not in page
    # The button works again (no request left hanging).
    _wait_for(
        driver,
        lambda d: d.find_element(By.ID, "predict-random").is_enabled(),  # type: ignore[attr-defined]
        "the button to be enabled again",
    )
