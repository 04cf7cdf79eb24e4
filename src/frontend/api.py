"""HTTP client for the backend; every failure becomes one `BackendError` with a plain message."""

from __future__ import annotations

import mimetypes
from typing import Any

import requests
from urllib3.exceptions import NameResolutionError

from frontend.settings import Settings


class BackendError(Exception):
    """The backend could not give an answer; `message` is a sentence to show on the page."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception, its causes/contexts and the exceptions in its args, outermost first."""
    seen: list[BaseException] = []
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if any(current is s for s in seen):
            continue
        seen.append(current)
        stack.extend(a for a in current.args if isinstance(a, BaseException))
        stack.extend(c for c in (current.__cause__, current.__context__) if c is not None)
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            stack.append(reason)
    return seen


def _connection_reason(exc: requests.ConnectionError) -> str:
    """A short reason for a failed connection: refused, name not found, or other."""
    causes = _causes(exc)
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return "connection refused"
    if any(isinstance(c, NameResolutionError) for c in causes):
        return "host name not found"
    if any("Connection refused" in str(c) for c in causes):
        return "connection refused"
    if any("Name or service not known" in str(c) for c in causes):
        return "host name not found"
    return "connection failed"


def _detail(response: requests.Response) -> str:
    """The `detail` of a JSON error answer as text, or a short excerpt of the body."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:200] if text else response.reason or "no details"
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):  # FastAPI validation errors: [{"loc": ..., "msg": ...}, ...]
        msgs = [
            str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in detail
        ]
        return "; ".join(msgs) or "no details"
    return str(detail if detail is not None else body)[:200]


class BackendClient:
    """One `requests.Session` talking to the backend at `base_url`."""

    def __init__(
        self,
        base_url: str,
        timeout: float = 5.0,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()

    @classmethod
    def from_settings(cls, settings: Settings) -> BackendClient:
        """A client for `settings.api_url` with `settings.request_timeout`."""
        return cls(settings.api_url, settings.request_timeout)

    def _request(self, method: str, path: str, *, refused: str, **kwargs: Any) -> dict[str, Any]:
        """Send one request and return its JSON object; `refused` prefixes 4xx details."""
        url = f"{self.base_url}{path}"
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.Timeout as exc:
            raise BackendError(
                f"The backend at {self.base_url} did not answer within {self.timeout:g} seconds."
            ) from exc
        except requests.ConnectionError as exc:
            raise BackendError(
                f"The backend at {self.base_url} is not reachable ({_connection_reason(exc)})."
            ) from exc
        except requests.RequestException as exc:
            raise BackendError(
                f"The request to the backend at {self.base_url} failed ({type(exc).__name__})."
            ) from exc
        if 400 <= response.status_code < 500:
            raise BackendError(f"{refused}: {_detail(response)}")
        if response.status_code >= 500:
            raise BackendError(
                f"The backend failed with HTTP {response.status_code}: {_detail(response)}"
            )
        try:
            body = response.json()
        except ValueError as exc:
            raise BackendError(
                f"The backend at {self.base_url} sent an answer that is not JSON "
                f"(HTTP {response.status_code})."
            ) from exc
        if not isinstance(body, dict):
            raise BackendError(f"The backend at {self.base_url} sent an unexpected answer.")
        return body

    @staticmethod
    def _require(body: dict[str, Any], keys: tuple[str, ...], what: str) -> dict[str, Any]:
        missing = [k for k in keys if k not in body]
        if missing:
            raise BackendError(f"The backend sent {what} without {', '.join(missing)}.")
        return body

    def health(self) -> dict[str, Any]:
        """`GET /health`: {"status", "model_loaded", "model_version"}."""
        body = self._request("GET", "/health", refused="The backend refused the health check")
        return self._require(body, ("status",), "a health answer")

    def random_sample(self) -> dict[str, Any]:
        """`GET /samples/random`: {"name", "true_label", "media_type", "image_base64"}."""
        body = self._request(
            "GET", "/samples/random", refused="The backend could not give a sample image"
        )
        return self._require(body, ("name", "true_label", "media_type", "image_base64"), "a sample")

    def predict(
        self, image_bytes: bytes, filename: str, content_type: str | None = None
    ) -> dict[str, Any]:
        """`POST /predict` with the image as multipart field `file`."""
        filename = filename or "image"
        content_type = (
            content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        )
        body = self._request(
            "POST",
            "/predict",
            refused="The backend refused the image",
            files={"file": (filename, image_bytes, content_type)},
        )
        body = self._require(body, ("label", "confidence", "probabilities"), "a prediction")
        if not isinstance(body["probabilities"], dict):
            raise BackendError("The backend sent a prediction with malformed probabilities.")
        return body
