"""Fixtures for the frontend tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from frontend_support import StubBackend, start_stub


@pytest.fixture
def stub_backend() -> Iterator[StubBackend]:
    """A running stub backend on a free loopback port, stopped after the test."""
    stub, stop = start_stub()
    try:
        yield stub
    finally:
        stop()
