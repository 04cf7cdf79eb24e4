"""Checks on files uploaded in the browser before they are sent to the backend."""

from __future__ import annotations

import base64
import binascii

# Leading bytes of common image formats (the backend checks again, fully).
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)
# What the backend accepts.
ALLOWED_MEDIA_TYPES = ("image/png", "image/jpeg")
ACCEPTED_FORMATS = "PNG or JPEG"


class UploadError(ValueError):
    """The upload cannot be sent; `message` is a sentence to show on the page."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def image_media_type(data: bytes) -> str | None:
    """The media type of `data` judged by its first bytes, or None if it is no known image."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for signature, media_type in _SIGNATURES:
        if data.startswith(signature):
            return media_type
    return None


def _megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def decode_upload(contents: str, filename: str | None, max_bytes: int) -> tuple[bytes, str]:
    """Decode a dcc.Upload data URL; return (bytes, media type) or raise UploadError."""
    name = filename or "The file"
    header, sep, payload = (contents if isinstance(contents, str) else "").partition(",")
    if not sep or not header.startswith("data:") or not header.endswith(";base64"):
        raise UploadError(f"{name} could not be read as an uploaded file.")
    # Refuse before decoding: base64 holds 3 bytes per 4 characters.
    if len(payload) // 4 * 3 > max_bytes + 3:
        approx = len(payload) // 4 * 3
        raise UploadError(
            f"{name} is too large (about {_megabytes(approx)}); "
            f"the limit is {_megabytes(max_bytes)}."
        )
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UploadError(f"{name} could not be decoded.") from exc
    if not data:
        raise UploadError(f"{name} is empty.")
    if len(data) > max_bytes:
        raise UploadError(
            f"{name} is too large ({_megabytes(len(data))}); the limit is {_megabytes(max_bytes)}."
        )
    media_type = image_media_type(data)
    if media_type is None:
        raise UploadError(f"{name} is not an image; please upload a {ACCEPTED_FORMATS} file.")
    if media_type not in ALLOWED_MEDIA_TYPES:
        kind = media_type.removeprefix("image/").upper()
        raise UploadError(f"{name} is a {kind} image; please upload a {ACCEPTED_FORMATS} file.")
    return data, media_type
