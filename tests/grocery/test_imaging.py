"""Safe decoding of untrusted images: limits, formats, bombs, corrupt data."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from PIL import Image

from grocery.imaging import (
    DEFAULT_FORMATS,
    ImageError,
    ImageTooLarge,
    InvalidImage,
    UnsupportedImageFormat,
    decode_image,
    sniff_format,
)
from shared_support import png_declaring


def encode(size: tuple[int, int] = (32, 24), fmt: str = "PNG", mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").convert(mode).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_decodes_allowed_formats_fully(fmt: str) -> None:
    image = decode_image(encode((32, 24), fmt))
    assert image.size == (32, 24)
    assert image.format == fmt
    assert image.mode == "RGB"
    assert np.asarray(image).shape == (24, 32, 3)


def test_decodes_other_modes() -> None:
    image = decode_image(encode((10, 10), "PNG", mode="LA"))
    assert image.mode == "LA"


def test_too_many_bytes_is_413_before_decoding() -> None:
    with pytest.raises(ImageTooLarge) as info:
        decode_image(b"not even an image" * 100, max_bytes=1000)
    assert info.value.status_code == 413
    assert "1000" in info.value.message


def test_byte_limit_is_inclusive() -> None:
    data = encode()
    assert decode_image(data, max_bytes=len(data)).size == (32, 24)
    with pytest.raises(ImageTooLarge):
        decode_image(data, max_bytes=len(data) - 1)


def test_too_many_pixels_is_413() -> None:
    with pytest.raises(ImageTooLarge) as info:
        decode_image(encode((40, 40)), max_pixels=40 * 40 - 1)
    assert info.value.status_code == 413
    assert "40x40" in info.value.message
    assert decode_image(encode((40, 40)), max_pixels=40 * 40).size == (40, 40)


def test_pixel_limit_is_checked_from_the_header_before_decoding() -> None:
    # The pixel data is garbage: a full decode would fail with 400, so 413 proves the
    # header check ran first.
    with pytest.raises(ImageTooLarge):
        decode_image(png_declaring(5000, 5000))


@pytest.mark.parametrize("side", [10_000, 100_000])
def test_decompression_bombs_are_refused_even_above_our_pixel_limit(side: int) -> None:
    # max_pixels is set huge so that only Pillow's bomb protection can stop these:
    # 10000^2 triggers DecompressionBombWarning, 100000^2 DecompressionBombError.
    bomb = png_declaring(side, side)
    assert len(bomb) < 200
    with pytest.raises(ImageTooLarge) as info:
        decode_image(bomb, max_pixels=10**12)
    assert "decompression bomb" in info.value.message


def test_bomb_warning_is_an_error_even_when_warnings_are_reset() -> None:
    with warnings.catch_warnings():
        warnings.resetwarnings()
        with pytest.raises(ImageTooLarge):
            decode_image(png_declaring(10_000, 10_000), max_pixels=10**12)


def test_truncated_png_is_400() -> None:
    data = encode((64, 64))
    with pytest.raises(InvalidImage) as info:
        decode_image(data[: len(data) // 2])
    assert info.value.status_code == 400


def test_truncated_jpeg_is_400() -> None:
    data = encode((64, 64), "JPEG")
    with pytest.raises(InvalidImage):
        decode_image(data[: len(data) // 2])


def test_corrupt_png_checksum_is_400() -> None:
    data = bytearray(encode((64, 64)))
    data[60] ^= 0xFF  # inside the first IDAT chunk's data
    with pytest.raises(InvalidImage):
        decode_image(bytes(data))


@pytest.mark.parametrize(
    "data", [b"", b"hello world", b"\x89PNG\r\n\x1a\n", b'{"file": 1}', bytes(range(256))]
)
def test_non_images_are_400(data: bytes) -> None:
    with pytest.raises(InvalidImage) as info:
        decode_image(data)
    assert info.value.status_code == 400
    assert info.value.message


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF", "WEBP", "ICO"])
def test_disallowed_formats_are_415(fmt: str) -> None:
    with pytest.raises(UnsupportedImageFormat) as info:
        decode_image(encode((16, 16), fmt))
    assert info.value.status_code == 415
    assert fmt in info.value.message
    assert "PNG" in info.value.message


def test_allowed_formats_can_be_changed() -> None:
    gif = encode((16, 16), "GIF")
    assert decode_image(gif, formats=["gif"]).size == (16, 16)
    with pytest.raises(UnsupportedImageFormat):
        decode_image(encode(), formats=["JPEG"])


def test_errors_share_a_base_class_with_status() -> None:
    for cls, status in ((InvalidImage, 400), (ImageTooLarge, 413), (UnsupportedImageFormat, 415)):
        assert issubclass(cls, ImageError)
        assert cls("x").status_code == status
    assert DEFAULT_FORMATS == ("PNG", "JPEG")


def test_sniff_format() -> None:
    assert sniff_format(encode()) == "PNG"
    assert sniff_format(encode(fmt="GIF")) == "GIF"
    assert sniff_format(b"nothing") is None


def progressive_jpeg(size: tuple[int, int] = (256, 192)) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(encode(size, "PNG"))).save(buffer, "JPEG", progressive=True)
    return buffer.getvalue()


def test_a_jpeg_with_more_scans_than_allowed_is_refused_before_decoding() -> None:
    data = progressive_jpeg()
    scans = data.count(b"\xff\xda")
    assert scans > 3, "libjpeg writes several scans for a progressive JPEG"
    assert decode_image(data, max_jpeg_scans=scans).size == (256, 192)
    with pytest.raises(ImageTooLarge, match=rf"JPEG has {scans} scans; the limit is 3"):
        decode_image(data, max_jpeg_scans=3)


def test_a_large_jpeg_is_decoded_at_a_reduced_scale_no_smaller_than_the_target() -> None:
    image = decode_image(progressive_jpeg((1024, 768)), target=(64, 64))
    assert image.size == (128, 96), "1/8 scale: the smallest DCT scale still >= 64 per side"
    assert decode_image(encode((1024, 768), "PNG"), target=(64, 64)).size == (1024, 768)


def test_the_exif_orientation_is_applied_as_in_training() -> None:
    """A phone photo stored landscape with `rotate 90` in its EXIF is served upright."""
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    Image.open(io.BytesIO(encode((40, 20), "PNG"))).save(buffer, "JPEG", exif=exif)
    assert decode_image(buffer.getvalue()).size == (20, 40)


def test_scans_are_counted_in_the_jpeg_only_not_in_data_after_it() -> None:
    """A phone's motion photo carries a video after EOI: random bytes hold 0xFFDA pairs."""
    from grocery.imaging import jpeg_scans

    data = encode((64, 48), "JPEG")
    tail = np.random.default_rng(1).integers(0, 256, 4 << 20, dtype=np.uint8).tobytes()
    assert tail.count(b"\xff\xda") > 10
    assert jpeg_scans(data + tail) == jpeg_scans(data) == 1
    assert decode_image(data + tail, max_jpeg_scans=1).size == (64, 48)


def test_an_mpo_jpeg_gets_the_same_scan_limit() -> None:
    """Pillow calls a JPEG with a multi-picture index MPO: it is limited like any JPEG."""
    buffer = io.BytesIO()
    image = Image.open(io.BytesIO(progressive_jpeg()))
    image.save(buffer, "MPO", save_all=True, append_images=[image], progressive=True)
    assert Image.open(io.BytesIO(buffer.getvalue())).format == "MPO"
    with pytest.raises(ImageTooLarge, match=r"scans; the limit is 3"):
        decode_image(buffer.getvalue(), max_jpeg_scans=3, formats=("PNG", "JPEG", "MPO"))


def test_an_animated_png_costs_one_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    """Frames multiply nothing: only the first frame of an APNG is decoded; the others are
    never seeked to, however many the file declares."""
    from PIL import PngImagePlugin

    frames = [Image.new("RGB", (512, 512), (i, 255 - i, 40)) for i in range(0, 200, 2)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "PNG", save_all=True, append_images=frames[1:])
    assert Image.open(io.BytesIO(buffer.getvalue())).n_frames == 100  # a real APNG
    seeks: list[int] = []
    original = PngImagePlugin.PngImageFile._seek

    def counted(self, frame: int, *args: object) -> None:
        seeks.append(frame)
        original(self, frame, *args)

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "_seek", counted)
    image = decode_image(buffer.getvalue(), target=(64, 64))
    assert image.getpixel((0, 0)) == (0, 255, 40)  # the first frame's colour
    assert [frame for frame in seeks if frame != 0] == []
