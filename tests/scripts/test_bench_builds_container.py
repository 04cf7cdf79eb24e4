"""imagetools bench-builds for real on the flask image: a test of the harness, not of speed.

One uv build with a code-only change (after an unmeasured priming build), its image measured,
time to healthy, report and charts written, and no bench image or container left behind.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from imagetools.common import ROOT
from imagetools.config import Config
from imagetools.engines import engine_for

pytestmark = pytest.mark.container


def test_quick_run_writes_a_complete_report(tmp_path: Path) -> None:
    assert (ROOT / "artifacts" / "tabular").is_dir(), (
        "the flask image needs artifacts/tabular: run `make train` (or `make images`) first"
    )
    prefix = f"benchtest-{uuid.uuid4().hex[:6]}-"  # never clashes with a `make bench-builds`
    out = tmp_path / "bench"
    done = subprocess.run(
        [sys.executable, "-m", "imagetools", "bench-builds", "--apps", "flask", "--variants",
         "uv", "--scenarios", "code", "--repeat", "1", "--out", str(out), "--prefix", prefix],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT / "scripts")),
    )  # fmt: skip
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert re.search(r"^\[1/1\] flask uv code #1 \.\.\. \d+\.\d s", done.stdout, re.M), done.stdout

    latest = out / "latest"
    runs = [p for p in out.iterdir() if p.name != "latest" and p.is_dir()]
    assert len(runs) == 1 and (runs[0] / "results.json").is_file()
    results = json.loads((latest / "results.json").read_text())
    assert {"machine", "config", "builds", "images", "health", "summary", "goals", "charts",
            "started", "finished", "duration_s"} <= results.keys()  # fmt: skip
    assert results["machine"]["cores"] >= 1 and results["machine"]["memory_bytes"] > 0
    assert results["machine"]["engine_server_version"] not in ("", "unknown")

    (build,) = results["builds"]
    assert (build["app"], build["variant"], build["scenario"]) == ("flask", "uv", "code")
    assert build["wall_s"] > 0 and build["tag"] == f"{prefix}flask:uv"
    assert build["steps"] >= 2 and build["cached_steps"] >= 1, "the install step was rebuilt"
    assert "install_s" not in build, "a code-only change must not reinstall the dependencies"
    command = " ".join(build["command"])
    assert "build" in command and "uv.Dockerfile" in command and "--no-cache" not in command
    assert (latest / build["log"]).is_file()

    (image,) = results["images"]
    assert 0 < image["compressed_bytes"] < image["size_bytes"]
    assert image["layers"] > image["base_layers"] >= 1
    assert image["wasted_bytes"] >= 0 and 0 < image["efficiency"] <= 1  # dive's verdict
    (health,) = results["health"]
    assert health["ok"], health
    assert 0 < health["seconds"] < 120

    goals = {g["id"]: g for g in results["goals"]}
    assert goals["code-rebuild"]["status"] in ("met", "not met")
    assert goals["uv-speed"]["status"] == "not measured"

    report = (latest / "report.md").read_text()
    assert "| flask | code | uv |" in report
    assert "| flask | uv |" in report  # the images table
    assert "wasted (dive)" in report and "efficient)" in report
    assert "## Goals" in report and "cores" in report
    assert set(results["charts"]) == {"image_size.png", "code_rebuild.png", "time_to_healthy.png"}
    for name in results["charts"]:
        data = (latest / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 1000
        assert f"]({name})" in report

    cfg = Config.from_env()
    engine = engine_for(cfg)
    left = engine.output(["ps", "--all", "--quiet", "--filter", f"name={prefix}"])
    assert left == "", "a health-check container was left running"
    assert not [t for t in engine.tags() if t.startswith(prefix)], "bench images were left"
    work = list((cfg.build_dir / "bench-work").glob(f"*/context/*/{prefix}*"))
    assert not work, "the private build folder was left"


def test_lab_and_cache_install_from_the_bench_index(tmp_path: Path) -> None:
    """The installers' scenarios for real (uv; multistage has none): the labs' command
    resolves and downloads from the bench's index over the host network, timed, and the
    images are removed at once."""
    prefix = f"benchtest-{uuid.uuid4().hex[:6]}-"
    out = tmp_path / "bench"
    done = subprocess.run(
        [sys.executable, "-m", "imagetools", "bench-builds", "--apps", "flask", "--variants",
         "uv", "multistage", "--scenarios", "lab", "cache", "--repeat", "1", "--out", str(out),
         "--prefix", prefix],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT / "scripts")),
    )  # fmt: skip
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "package index of" in done.stdout
    results = json.loads((out / "latest" / "results.json").read_text())
    lab, cache = results["builds"]
    assert [(b["scenario"], b["variant"]) for b in (lab, cache)] == [("lab", "uv"), ("cache", "uv")]
    for build in (lab, cache):
        command = " ".join(build["command"])
        assert "--network=host" in command and "installers.Dockerfile" in command
        assert f"--target uv-{build['scenario']}" in command
        assert "--build-arg=INDEX_URL=http://127.0.0.1:" in command
        assert 0 < build["install_s"] < build["wall_s"]
        log = (out / "latest" / build["log"]).read_text()
        assert re.search(r"(Installed|Resolved) \d+ packages", log), log[-2000:]
    # the cache build installed the moved pin, the one it was given
    moved = results["dep_change"]["flask"]
    assert f"{moved['package']}=={moved['to']}" in (out / "latest" / cache["log"]).read_text()
    goals = {g["id"]: g for g in results["goals"]}
    assert goals["uv-lab"]["status"] == "not measured"  # no pip build
    engine = engine_for(Config.from_env())
    for build in (lab, cache):
        assert build["image_id"] and not engine.exists(build["image_id"]), "an image was left"
