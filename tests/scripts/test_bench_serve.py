"""imagetools.bench_serve: a short real run, the failure line and the percentile maths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from grocery import CLASSES
from grocery.model import GroceryCNN, save_model
from imagetools.bench_serve import percentile
from imagetools.common import ROOT


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("bench") / "image"
    torch.manual_seed(0)
    save_model(
        GroceryCNN(num_classes=len(CLASSES)),
        directory,
        {"classes": list(CLASSES), "input_size": 64, "width": 16},
    )
    sample = directory / "samples" / CLASSES[0] / "0.png"  # as the trainer saves them
    sample.parent.mkdir(parents=True)
    Image.new("RGB", (64, 64), (200, 180, 40)).save(sample)
    return directory


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "imagetools", "bench-serve", *args],
                          capture_output=True, text=True, timeout=180, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT / "scripts")))  # fmt: skip


def test_missing_model_dir_fails_with_one_line(tmp_path: Path) -> None:
    result = run("--model-dir", str(tmp_path / "nothing"), "--out", str(tmp_path / "o.json"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("imagetools: error: no model in")
    assert not (tmp_path / "o.json").exists()


def test_short_run_writes_a_report(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = run(
        "--model-dir", str(model_dir), "--duration", "1.5", "--warmup", "0.5",
        "--workers", "1", "--concurrency", "2", "--hostile", "8", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    results = report["results"]
    assert results["requests"] > 0
    assert results["errors"] == 0
    latency = results["latency_ms"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    assert results["requests_per_s"] == pytest.approx(
        results["requests"] / results["measured_s"], rel=0.01
    )
    assert report["load"]["concurrency"] == 2
    assert report["machine"]["cores"] >= 1
    assert report["server"]["model_version"]
    assert "req/s" in result.stdout
    assert "p99 ms" in result.stdout
    # The mixed run: the same load with hostile clients holding half requests alongside.
    mixed = report["mixed"]
    assert mixed["hostile_clients"] == 8
    assert mixed["hostile_connections_opened"] >= 8
    assert mixed["results"]["requests"] > 0 and mixed["results"]["errors"] == 0
    assert set(mixed["goal"]) >= {"share_of_clean_requests_per_s", "p99_over_p50", "met"}
    assert "+8 hostile" in result.stdout and "hostile connections opened" in result.stdout


def test_bad_arguments_are_refused(model_dir: Path, tmp_path: Path) -> None:
    assert run("--concurrency", "0").returncode == 2
    assert run("--hostile", "-1").returncode == 2
    missing = run("--model-dir", str(model_dir), "--image", str(tmp_path / "none.png"))
    assert missing.returncode == 1 and "none.png is not a file" in missing.stderr


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert [percentile(values, q) for q in (50, 90, 99)] == [50.0, 90.0, 99.0]
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0], 50) == 1.0
