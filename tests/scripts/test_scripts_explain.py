"""scripts/explain.py: the engine's decisions, one line per step, and the stale-reuse guard."""

from __future__ import annotations

import json

import pytest

import explain

BUILDKIT_LOG = """\
#5 [job 2/3] RUN --mount=type=bind,source=lock.txt,target=/tmp/build/lock.txt echo "dependency inputs: sha256:${DEPS_SHA256}" && date
#5 CACHED

#6 [job 3/3] COPY app/ /app/
#6 DONE 0.1s
"""  # noqa: E501
PODMAN_LOG = """\
[1/3] STEP 4/4: RUN --mount=type=bind,source=prune_rootfs.py,target=/tmp/prune_rootfs.py echo "runtime-root inputs: sha256:${ROOTFS_SHA256}"
--> Using cache 5c727762a51cbef0
[2/3] STEP 4/4: RUN --mount=type=bind,source=lock.txt,target=/tmp/build/lock.txt echo "dependency inputs: sha256:${DEPS_SHA256}"
dependency inputs: sha256:abc
bench-mark begin 1.2
--> 97fbe98ca67
[3/3] STEP 11/13: COPY app/ /app/
--> Using cache 6c216ca5496c
"""  # noqa: E501


def test_buildkit_decisions() -> None:
    assert explain.decisions(BUILDKIT_LOG) == {"deps": "cached", "app": "ran"}


def test_podman_decisions() -> None:
    assert explain.decisions(PODMAN_LOG) == {"rootfs": "cached", "deps": "ran", "app": "cached"}


def record(lock: dict[str, str], base: str = "sha256:base", source: str = "s1") -> dict:
    return {
        "steps": {
            "deps": {"base image": base, "requirements/backend.txt": json.dumps(lock)},
            "app": {"base image": base, "src/backend/app.py": source},
        },
        "pins": {"requirements/backend.txt": lock},
    }


OLD = record({"fastapi": "0.115.0", "uvicorn": "0.30.0"})


@pytest.mark.parametrize(
    ("current", "found", "expected"),
    [
        (record({"fastapi": "0.115.2", "uvicorn": "0.30.0"}), {"deps": "ran", "app": "cached"},
         ["backend:uv deps: re-ran, requirements/backend.txt: fastapi 0.115.0 -> 0.115.2",
          "backend:uv app: cached"]),
        (record({"fastapi": "0.115.0"}), {"deps": "ran", "app": "cached"},
         ["backend:uv deps: re-ran, requirements/backend.txt: -uvicorn 0.30.0",
          "backend:uv app: cached"]),
        (record(OLD["pins"]["requirements/backend.txt"], source="s2"),
         {"deps": "cached", "app": "ran"},
         ["backend:uv deps: cached", "backend:uv app: re-ran, src/backend/app.py changed"]),
        (record(OLD["pins"]["requirements/backend.txt"], base="sha256:new"),
         {"deps": "ran", "app": "ran"},
         ["backend:uv deps: re-ran, base image changed",
          "backend:uv app: re-ran, base image changed"]),
    ],
)  # fmt: skip
def test_each_re_run_names_its_input(current: dict, found: dict, expected: list[str]) -> None:
    lines, errors, warnings = explain.analyse("backend:uv", OLD, current, found, None, "k")
    assert (lines, errors, warnings) == (expected, [], [])


def test_a_re_run_with_no_input_changed_is_a_warning() -> None:
    lines, errors, warnings = explain.analyse("backend:uv", OLD, OLD, {"deps": "ran"}, None, "k")
    assert lines[0] == "backend:uv deps: re-ran with no input changed"
    assert warnings and warnings[0].startswith("backend:uv deps: re-ran although no input changed")
    assert errors == []


def test_a_reuse_of_an_earlier_identical_build_is_explained_not_refused() -> None:
    """Undoing an edit gives the layer of an earlier build back: right, and said so."""
    current = record({"fastapi": "0.115.2", "uvicorn": "0.30.0"})
    lines, errors, _ = explain.analyse("backend:uv", OLD, current, {"deps": "cached"}, "k", "k")
    assert errors == []
    assert lines[0].startswith("backend:uv deps: cached, a layer built earlier from these same")


def test_the_recorded_dependency_key_is_read_from_the_history() -> None:
    history = "RUN |1 DEPS_SHA256=" + "ab" * 32 + " /bin/sh -c echo\nCOPY app/ /app/\n"
    assert explain.recorded_deps_key(history) == "ab" * 32
    assert explain.recorded_deps_key("COPY app/ /app/") is None


def test_source_names_are_the_users_paths() -> None:
    spec = {"model": "image"}
    names = {
        rel: explain.source_name("backend", spec, rel)
        for rel in (
            "app/backend/app.py",
            "app/model/model.safetensors",
            "app/launch.json",
            "app/launch.py",
            "lock.txt",
            "tools.txt",
            "prune.txt",
            "wheels/a-1-py3-none-any.whl",
            "scrub_venv.py",
        )
    }
    assert names == {
        "app/backend/app.py": "src/backend/app.py",
        "app/model/model.safetensors": "artifacts/image/model.safetensors",
        "app/launch.json": "dockerfiles/apps.toml [backend] command/env/port/health",
        "app/launch.py": "dockerfiles/runtime/launch.py",
        "lock.txt": "requirements/backend.txt",
        "tools.txt": "requirements/tools.txt",
        "prune.txt": "dockerfiles/apps.toml [backend].prune",
        "wheels/a-1-py3-none-any.whl": "build/wheelhouse/a-1-py3-none-any.whl",
        "scrub_venv.py": "dockerfiles/runtime/scrub_venv.py",
    }  # fmt: skip
