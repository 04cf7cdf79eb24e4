"""Safe decoding of untrusted image uploads, with Pillow only.

Checks run cheapest first: byte size, then the format from the header, then the pixel count
from the header and a JPEG's scan count, and only then the full decode. A JPEG is decoded at
the smallest DCT scale that still covers `target` (Pillow's draft mode: up to 8x less work
per side), so a large photo costs about what its thumbnail does; a progressive JPEG with
more scans than any encoder writes (each scan is a pass over the whole image) is refused.
The EXIF orientation is applied, as the training data loader does. Decompression bombs,
truncated or corrupt data and formats outside the allowed list all raise an `ImageError`
carrying an HTTP status.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable

from PIL import Image, ImageOps

DEFAULT_FORMATS: tuple[str, ...] = ("PNG", "JPEG")
DEFAULT_MAX_BYTES = 5 * 1024 * 1024
DEFAULT_MAX_PIXELS = 4096 * 4096
# libjpeg's progressive scripts write about 10 scans; a crafted file can hold thousands,
# each of which re-reads the whole coefficient buffer.
DEFAULT_MAX_JPEG_SCANS = 64

# Leading bytes of common formats, used only to tell "valid but not allowed" (415) from
# "not an image at all" (400) without handing the data to more Pillow plugins.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"8BPS", "PSD"),
    (b"%PDF", "PDF"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG2000"),
    (b"\xff\x4f\xff\x51", "JPEG2000"),
)


class ImageError(ValueError):
    """An upload that cannot be accepted; `status_code` is the HTTP status to answer with."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidImage(ImageError):
    """Empty, corrupt, truncated or non-image data."""

    status_code = 400


class ImageTooLarge(ImageError):
    """Too many bytes or too many pixels (including decompression bombs)."""

    status_code = 413


class UnsupportedImageFormat(ImageError):
    """A recognisable image in a format that is not allowed."""

    status_code = 415


def sniff_format(data: bytes) -> str | None:
    """Name of the format the leading bytes look like, or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    for signature, name in _SIGNATURES:
        if data.startswith(signature):
            return name
    return None


def jpeg_scans(data: bytes) -> int:
    """Start-of-scan markers of the JPEG's own segments, from SOI to EOI.

    Marker segments are skipped by their lengths and entropy-coded data up to the next real
    marker, so bytes inside an APPn payload (EXIF, a thumbnail) or after EOI (a phone's
    motion video) are not counted.
    """
    scans, at, end = 0, 2, len(data)
    while at + 4 <= end:
        if data[at] != 0xFF:
            break
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker == 0xD9:  # EOI
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # RSTn, TEM: no length
            at += 2
            continue
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
        if marker == 0xDA:  # SOS: entropy-coded data runs to the next non-RST marker
            scans += 1
            while at + 1 < end and not (
                data[at] == 0xFF and data[at + 1] not in (0x00, *range(0xD0, 0xD8))
            ):
                at = data.find(b"\xff", at + 1) if data[at] == 0xFF else data.find(b"\xff", at)
                if at < 0:
                    return scans
    return scans


def _refuse_bomb_warnings() -> None:
    """Make Pillow's DecompressionBombWarning an error (idempotent, process-wide)."""
    action = ("error", None, Image.DecompressionBombWarning, None, 0)
    if action not in warnings.filters:
        warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


def decode_image(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    formats: Iterable[str] = DEFAULT_FORMATS,
    max_jpeg_scans: int = DEFAULT_MAX_JPEG_SCANS,
    target: tuple[int, int] | None = None,
) -> Image.Image:
    """Decode `data` into a fully loaded, EXIF-oriented PIL image, or raise an `ImageError`.

    With `target`, a JPEG may be decoded at a reduced scale no smaller than `target`.
    """
    allowed = tuple(name.upper() for name in formats)
    if len(data) > max_bytes:
        raise ImageTooLarge(f"image is {len(data)} bytes; the limit is {max_bytes} bytes")
    if not data:
        raise InvalidImage("the uploaded file is empty")

    _refuse_bomb_warnings()
    try:
        image = Image.open(io.BytesIO(data), formats=list(allowed))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(f"image refused as a decompression bomb: {exc}") from exc
    except Image.UnidentifiedImageError as exc:
        found = sniff_format(data)
        if found is not None and found not in allowed:
            raise UnsupportedImageFormat(
                f"image format {found} is not supported; allowed: {', '.join(allowed)}"
            ) from exc
        raise InvalidImage(f"not a valid image ({', '.join(allowed)} expected)") from exc
    except Exception as exc:  # any parser failure on untrusted data is a 400
        raise InvalidImage(f"cannot read image header: {exc}") from exc

    try:
        width, height = image.size
        if width <= 0 or height <= 0:
            raise InvalidImage(f"image has an invalid size {width}x{height}")
        if width * height > max_pixels:
            raise ImageTooLarge(
                f"image is {width}x{height} = {width * height} pixels; "
                f"the limit is {max_pixels} pixels"
            )
        if image.format in ("JPEG", "MPO"):  # MPO: a JPEG with an extra-image index
            scans = jpeg_scans(data)
            if scans > max_jpeg_scans:
                raise ImageTooLarge(
                    f"JPEG has {scans} scans; the limit is {max_jpeg_scans} (each scan "
                    "decodes the whole image again)"
                )
            if target is not None:
                image.draft("RGB", target)
        try:
            image.load()
            ImageOps.exif_transpose(image, in_place=True)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageTooLarge(f"image refused as a decompression bomb: {exc}") from exc
        except Exception as exc:  # truncated/corrupt data raises many types
            raise InvalidImage(f"corrupt or truncated image: {exc}") from exc
    except ImageError:
        image.close()
        raise
    return image
