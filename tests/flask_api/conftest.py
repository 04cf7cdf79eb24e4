"""Fixtures in the Flask tutorial's style: a model trained once, then ``app`` and ``client``."""

from __future__ import annotations

import pytest

from flask_api import create_app
from trainer.tabular import run_tabular


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """An Iris model trained once for the whole session (about a second)."""
    out = tmp_path_factory.mktemp("flask_model") / "tabular"
    run_tabular(out, "iris", progress=lambda _line: None)
    return out


@pytest.fixture
def app(model_dir):
    return create_app({"TESTING": True, "MODEL_DIR": str(model_dir)})


@pytest.fixture
def client(app):
    return app.test_client()
