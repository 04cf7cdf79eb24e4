"""Helpers every test package shares: a free loopback port, PNG bytes, the environment's tools.

tests/ is on pytest's `pythonpath` (pyproject.toml), so any test file or *_support module
imports this one by name: `from shared_support import free_port`.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import struct
import sys
import zlib
from pathlib import Path

from PIL import Image as PILImage

from imagetools.apps import load_apps
from imagetools.config import VARIANTS


def free_port() -> int:
    """A loopback port that was free a moment ago (nothing listens on it now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def png_bytes(width: int = 8, height: int = 8, rgb: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    """A valid solid-colour RGB PNG, written by Pillow (the same bytes on every call)."""
    buffer = io.BytesIO()
    PILImage.new("RGB", (width, height), rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb's shape).

    Written chunk by chunk because its header lies: Pillow would have to hold the pixels it
    declares to write it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024, 9)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def tool(name: str) -> Path:
    """An executable of the environment running the tests: beside sys.executable as it is (a
    venv's bin/, not the resolved interpreter's), else on PATH. When neither has it, a path
    that does not exist, for the test to name in its failure."""
    beside = Path(sys.executable).parent / name
    found = shutil.which(name)
    return beside if beside.is_file() or found is None else Path(found)


AppVariant = tuple[str, str]
ALL_IMAGES = frozenset((app, variant) for app in load_apps() for variant in VARIANTS)


def chosen_images() -> frozenset[AppVariant]:
    """The images the container tests may use: TEST_APPS x TEST_VARIANTS (the Makefile sets
    them from APPS and VARIANTS; tests/conftest.py selects by them); unset: all."""
    apps = os.environ.get("TEST_APPS", "").split() or [app for app, _ in ALL_IMAGES]
    variants = os.environ.get("TEST_VARIANTS", "").split() or list(VARIANTS)
    return frozenset((app, variant) for app in apps for variant in variants) & ALL_IMAGES
