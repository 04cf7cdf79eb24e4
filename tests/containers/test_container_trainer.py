"""The trainer image writes its models into a mounted folder, as the host's user."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from containers_support import VARIANTS, engine, image_ref, require_image, unique_name

pytestmark = pytest.mark.container


def run_trainer(variant: str, out: Path, *command: str) -> str:
    ref = image_ref("trainer", variant)
    require_image(ref)
    out.chmod(0o777)
    args = [
        "run", "--rm", "--network=none", "--name", unique_name(f"trainer-{variant}"),
        "--user", f"{os.getuid()}:{os.getgid()}", "--volume", f"{out}:/artifacts",
    ]  # fmt: skip
    return engine([*args, ref, *command], timeout=400)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.images(apps=["trainer"])
def test_tabular_writes_model_and_report(variant: str, tmp_path: Path) -> None:
    log = run_trainer(variant, tmp_path, "tabular", "--out", "/artifacts/tabular")
    out = tmp_path / "tabular"
    for name in ("model.skops", "metrics.json", "confusion_matrix.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, f"{name}: {log}"
        assert (out / name).stat().st_uid == os.getuid()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics, "empty metrics"
    assert (out / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "summary:" in log


@pytest.mark.images(apps=["trainer"], variants=["uv"])
def test_image_command_trains_a_tiny_cnn(tmp_path: Path) -> None:
    """`data` with a handful of images per class, then `image` for one epoch (uv variant)."""
    run_trainer("uv", tmp_path, "data", "--out", "/artifacts/data", "--per-class", "3,2,2")
    pngs = list((tmp_path / "data" / "train").glob("*/*.png"))
    assert pngs, "no training images generated"
    log = run_trainer(
        "uv", tmp_path, "image", "--data", "/artifacts/data", "--out", "/artifacts/image",
        "--epochs", "1",
    )  # fmt: skip
    out = tmp_path / "image"
    for name in ("model.safetensors", "metadata.json", "metrics.json", "confusion_matrix.png"):
        assert (out / name).is_file(), f"{name} missing; trainer said:\n{log}"
    metadata = json.loads((out / "metadata.json").read_text())
    assert sorted(p.name for p in (tmp_path / "data" / "train").iterdir()) == sorted(
        metadata["classes"]
    )


@pytest.mark.images(apps=["trainer"], variants=list(VARIANTS))
def test_artifacts_are_byte_identical_across_variants(tmp_path: Path) -> None:
    """Same code, same lock, same seed: the three trainer images write the same bytes."""
    outputs = {}
    for variant in VARIANTS:
        out = tmp_path / variant
        out.mkdir()
        run_trainer(variant, out, "tabular", "--out", "/artifacts/tabular")
        run_trainer(variant, out, "data", "--out", "/artifacts/data", "--per-class", "3,2,2")
        run_trainer(variant, out, "image", "--data", "/artifacts/data", "--out",
                    "/artifacts/image", "--epochs", "1")  # fmt: skip
        outputs[variant] = {
            str(path.relative_to(out)): path.read_bytes()
            for sub in ("tabular", "image")
            for path in sorted((out / sub).rglob("*"))
            if path.is_file()
        }
    reference = outputs[VARIANTS[0]]
    assert "image/model.safetensors" in reference and "tabular/model.skops" in reference
    for variant in VARIANTS[1:]:
        assert outputs[variant].keys() == reference.keys()
        differ = [name for name in reference if outputs[variant][name] != reference[name]]
        assert not differ, f"{variant} differs from {VARIANTS[0]} in {differ}"
