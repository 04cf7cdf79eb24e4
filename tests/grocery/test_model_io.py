"""GroceryCNN save/load round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from grocery import CLASSES
from grocery.model import (
    METADATA_FILE,
    WEIGHTS_FILE,
    GroceryCNN,
    load_model,
    save_model,
    weights_sha256,
)


def _model(seed: int = 0, width: int = 8) -> GroceryCNN:
    torch.manual_seed(seed)
    model = GroceryCNN(num_classes=len(CLASSES), width=width)
    # move BatchNorm running stats away from their defaults so they are checked too
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 32, 32))
    return model.eval()


def test_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    model = _model()
    meta = {"classes": list(CLASSES), "input_size": 32, "width": 8, "seed": 3}
    save_model(model, tmp_path, meta)
    loaded, metadata = load_model(tmp_path)
    assert not loaded.training
    assert metadata["classes"] == list(CLASSES)
    assert metadata["seed"] == 3
    assert metadata["weights_sha256"] == weights_sha256(tmp_path)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])


def test_saving_twice_gives_the_same_bytes(tmp_path: Path) -> None:
    meta = {"classes": list(CLASSES), "input_size": 32, "width": 8}
    save_model(_model(), tmp_path / "a", meta)
    save_model(_model(), tmp_path / "b", meta)
    for name in (WEIGHTS_FILE, METADATA_FILE):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    save_model(_model(seed=1), tmp_path / "c", meta)
    assert weights_sha256(tmp_path / "c") != weights_sha256(tmp_path / "a")
    assert json.loads((tmp_path / "c" / METADATA_FILE).read_text())["weights_sha256"] == (
        weights_sha256(tmp_path / "c")
    )


def test_metadata_must_describe_the_model(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="width"):
        save_model(_model(), tmp_path, {"classes": ["a"], "input_size": 32})


def test_load_missing_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="model file not found"):
        load_model(tmp_path)
