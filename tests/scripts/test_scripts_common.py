"""imagetools.common: JSON records and caches, and stopping a child process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from imagetools.common import ScriptError, read_json, stop, write_json


def test_a_record_is_written_whole_and_read_back(tmp_path: Path) -> None:
    record = tmp_path / "new" / "published.json"
    write_json(record, {"b": 1, "a": [1, 2]})
    assert record.read_text() == '{\n "a": [\n  1,\n  2\n ],\n "b": 1\n}\n'
    assert read_json(record) == {"a": [1, 2], "b": 1}
    assert [p.name for p in record.parent.iterdir()] == ["published.json"]  # no partial file


def test_a_failed_write_keeps_the_old_record(tmp_path: Path) -> None:
    record = tmp_path / "published.json"
    write_json(record, {"kept": True})
    with pytest.raises(TypeError):
        write_json(record, {"bad": object()})
    assert json.loads(record.read_text()) == {"kept": True}
    assert [p.name for p in tmp_path.iterdir()] == ["published.json"]


def test_a_missing_file_is_the_default(tmp_path: Path) -> None:
    assert read_json(tmp_path / "none.json", {}) == {}
    assert read_json(tmp_path / "none.json", {}, cache=True) == {}


def test_a_corrupt_record_is_an_error_and_a_corrupt_cache_is_dropped(tmp_path: Path) -> None:
    cut = tmp_path / "published.json"
    cut.write_text('{"ghcr.io/x:uv": {"digest": "sha')
    with pytest.raises(ScriptError, match=r"published\.json is not valid JSON .*: fix or remove"):
        read_json(cut, {})
    assert read_json(cut, {}, cache=True) == {}
    assert cut.read_text().startswith('{"ghcr.io')  # nothing was overwritten


def test_stop_ends_a_child_that_ignores_terminate() -> None:
    code = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print(1, flush=True); time.sleep(60)")  # fmt: skip
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    child.stdout.readline()  # its handler is set
    stop(child, timeout=0.5)
    assert child.returncode == -9
