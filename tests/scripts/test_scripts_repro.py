"""imagetools.repro without an engine: the content comparison of two builds (the builds
themselves are tests/containers/test_container_repro.py)."""

from __future__ import annotations

from imagetools import repro


def test_content_comparison_reports_what_differs():
    """The comparison itself can fail: a changed file and a changed mode are named."""
    config = {"architecture": "amd64", "config": {"Env": ["A=1"]}}
    layer = {"app/x.py": ("0", "0o644", 0, 0, 3, "aaa"), "app/y": ("2", "0o777", 0, 0, 0, "x")}
    changed = {"app/x.py": ("0", "0o644", 0, 0, 3, "bbb"), "app/y": ("2", "0o755", 0, 0, 0, "x")}
    assert repro.compare_content((config, [layer]), (config, [dict(layer)])) == []
    diffs = repro.compare_content((config, [layer]), (config, [changed]))
    assert diffs == ["layer 1: /app/x.py differs (content)", "layer 1: /app/y differs (mode)"]
    other = {"architecture": "amd64", "config": {"Env": ["A=2"]}}
    assert repro.compare_content((config, []), (other, [])) == [
        "config differs in: config.Env (\"['A=1']\" vs \"['A=2']\")"
    ]
