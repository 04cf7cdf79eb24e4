"""Checks on uploaded files before they go to the backend."""

from __future__ import annotations

import pytest
from frontend_support import data_url

from frontend.uploads import UploadError, decode_upload, image_media_type
from shared_support import png_bytes


def test_decoding_keeps_bytes_exact() -> None:
    image = png_bytes(3, 5)
    data, media_type = decode_upload(data_url(image), "a.png", 1024)
    assert data == image
    assert media_type == "image/png"


def test_media_type_is_judged_by_content_not_by_name() -> None:
    image = png_bytes()
    data, media_type = decode_upload(data_url(image, "application/octet-stream"), "a.bin", 1024)
    assert (data, media_type) == (image, "image/png")
    with pytest.raises(UploadError, match=r"^fake\.png is not an image"):
        decode_upload(data_url(b"just text, named .png"), "fake.png", 1024)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xff\xd8\xff\xe0", "image/jpeg"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", None),
        (b"BM", "image/bmp"),
        (b"II*\x00", "image/tiff"),
        (b"%PDF-1.7", None),
        (b"", None),
    ],
)
def test_image_media_type(head: bytes, expected: str | None) -> None:
    assert image_media_type(head + b"\x00" * 16 if head else head) == expected


def test_size_limit_is_exact() -> None:
    image = png_bytes()
    assert decode_upload(data_url(image), "a.png", len(image))[0] == image
    with pytest.raises(UploadError, match=r"^a\.png is too large"):
        decode_upload(data_url(image), "a.png", len(image) - 1)


def test_huge_payload_is_refused_without_decoding() -> None:
    contents = "data:image/png;base64," + "A" * 40_000_000  # ~30 MB once decoded
    with pytest.raises(UploadError, match=r"about 28\.6 MB\); the limit is 5\.0 MB"):
        decode_upload(contents, "huge.png", 5 * 1024 * 1024)


@pytest.mark.parametrize(
    ("head", "kind"), [(b"GIF89a", "GIF"), (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "WEBP")]
)
def test_images_the_backend_does_not_take_are_named(head: bytes, kind: str) -> None:
    with pytest.raises(UploadError) as info:
        decode_upload(data_url(head + b"\x00" * 32), "anim.gif", 1024)
    assert info.value.message == f"anim.gif is a {kind} image; please upload a PNG or JPEG file."
