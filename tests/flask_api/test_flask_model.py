"""The skops loader: trusted types only, clear errors."""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile

import numpy as np
import pytest
import skops.io as sio
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from flask_api.model import (
    ModelFilesMissingError,
    ModelLoadError,
    UntrustedModelError,
    check_untrusted_types,
    load_model,
)


def test_loads_the_trained_model(model_dir):
    estimator, metadata = load_model(model_dir)
    assert metadata["dataset"] == "iris"
    probabilities = estimator.predict_proba(np.array([[5.1, 3.5, 1.4, 0.2]]))
    assert probabilities.shape == (1, 3)
    assert probabilities.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("missing", ["model.skops", "metadata.json"])
def test_missing_file_is_a_clear_error(model_dir, tmp_path, missing):
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    (copy / missing).unlink()
    with pytest.raises(ModelFilesMissingError, match=missing) as info:
        load_model(copy)
    assert isinstance(info.value, FileNotFoundError)


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="MODEL_DIR"):
        load_model(tmp_path / "nowhere")


def _with_model_bytes(model_dir, tmp_path, data: bytes):
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    (copy / "model.skops").write_bytes(data)
    return copy


def test_refuses_a_model_with_a_dangerous_function(model_dir, tmp_path):
    crafted = sio.dumps(make_pipeline(FunctionTransformer(func=os.system)))
    assert sio.get_untrusted_types(data=crafted)  # skops itself flags it
    folder = _with_model_bytes(model_dir, tmp_path, crafted)
    with pytest.raises(UntrustedModelError, match=r"system"):
        load_model(folder)


def test_refuses_a_tampered_schema(model_dir, tmp_path):
    """Swap the saved class for subprocess.Popen inside a real model file."""
    source = zipfile.ZipFile(model_dir / "model.skops")
    schema = json.loads(source.read("schema.json"))
    schema["__module__"], schema["__class__"] = "subprocess", "Popen"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        for name in source.namelist():
            data = json.dumps(schema).encode() if name == "schema.json" else source.read(name)
            target.writestr(name, data)
    folder = _with_model_bytes(model_dir, tmp_path, buffer.getvalue())
    with pytest.raises(UntrustedModelError, match=r"subprocess\.Popen"):
        load_model(folder)


def test_allow_list_is_exact():
    assert check_untrusted_types(["sklearn.tree._tree.Tree"]) == ["sklearn.tree._tree.Tree"]
    for name in ("numpy.load", "sklearn.evil", "builtins.eval", "sklearn.tree._tree"):
        with pytest.raises(UntrustedModelError):
            check_untrusted_types(["sklearn.tree._tree.Tree", name])


def test_garbage_model_file_is_a_load_error(model_dir, tmp_path):
    folder = _with_model_bytes(model_dir, tmp_path, b"not a zip file")
    with pytest.raises(ModelLoadError, match="skops"):
        load_model(folder)


def test_metadata_that_does_not_match_the_model_is_refused(model_dir, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    metadata = json.loads((copy / "metadata.json").read_text())
    metadata["n_features"] = 5
    (copy / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ModelLoadError, match="features"):
        load_model(copy)
