"""imagetools.explain: the engine's decisions, one line per step, and the stale-reuse guard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagetools import explain
from imagetools.common import ScriptError
from imagetools.config import Config

BUILDKIT_LOG = """\
#5 [job 2/6] RUN --mount=type=bind,source=tools,target=/tmp/build/tools echo "setup inputs: sha256:${TOOLS_SHA256}" && find /
#5 CACHED

#6 [job 3/6] RUN --mount=type=bind,source=deps/1,target=/tmp/build/deps echo "dependency layer 1 inputs: sha256:${DEPS1_SHA256}" && python3
#6 CACHED

#7 [job 4/6] RUN --mount=type=bind,source=deps/2,target=/tmp/build/deps echo "dependency layer 2 inputs: sha256:${DEPS2_SHA256}" && python3
#7 CACHED

#8 [job 5/6] RUN --mount=type=bind,source=deps/3,target=/tmp/build/deps echo "dependency layer 3 inputs: sha256:${DEPS3_SHA256}" && python3
#8 0.1 layer.py: tools ready in 0.05 s @1.2
#8 DONE 1.5s

#9 [job 6/6] COPY app/ /app/
#9 DONE 0.1s
"""  # noqa: E501
PODMAN_LOG = """\
[1/3] STEP 4/4: RUN --mount=type=bind,source=buildtime/prune_rootfs.py,target=/tmp/prune_rootfs.py echo "runtime-root inputs: sha256:${ROOTFS_SHA256}"
--> Using cache 5c727762a51cbef0
[2/3] STEP 4/9: RUN --mount=type=bind,source=tools,target=/tmp/build/tools echo "setup inputs: sha256:${TOOLS_SHA256}"
--> Using cache 1c727762a51cbef0
[2/3] STEP 6/9: RUN --mount=type=bind,source=deps/1,target=/tmp/build/deps echo "dependency layer 1 inputs: sha256:${DEPS1_SHA256}"
--> Using cache 2c727762a51cbef0
[2/3] STEP 8/9: RUN --mount=type=bind,source=deps/2,target=/tmp/build/deps echo "dependency layer 2 inputs: sha256:${DEPS2_SHA256}"
dependency layer 2 inputs: sha256:abc
layer.py: tools ready in 0.05 s @1.2
--> 97fbe98ca67
[2/3] STEP 9/9: RUN --mount=type=bind,source=deps/3,target=/tmp/build/deps echo "dependency layer 3 inputs: sha256:${DEPS3_SHA256}"
--> 17fbe98ca67
[3/3] STEP 11/13: COPY app/ /app/
--> Using cache 6c216ca5496c
"""  # noqa: E501
LAYERS = ["deps-torch", "deps-numeric", "deps-rest"]  # dockerfiles/apps.toml [[layer]]


def test_buildkit_decisions() -> None:
    assert explain.decisions(BUILDKIT_LOG, "uv") == {
        "setup": "cached", "deps-torch": "cached", "deps-numeric": "cached", "deps-rest": "ran",
        "app": "ran"}  # fmt: skip


def test_podman_decisions() -> None:
    assert explain.decisions(PODMAN_LOG, "multistage") == {
        "rootfs": "cached", "setup": "cached", "deps-torch": "cached", "deps-numeric": "ran",
        "deps-rest": "ran", "app": "cached"}  # fmt: skip


def record(lock: dict[str, str], base: str = "sha256:base", source: str = "s1") -> dict:
    return {
        "steps": {
            "deps-rest": {"base image": base, "requirements/backend.txt": json.dumps(lock)},
            "app": {"base image": base, "src/backend/app.py": source},
        },
        "pins": {"requirements/backend.txt": lock},
    }


OLD = record({"fastapi": "0.115.0", "uvicorn": "0.30.0"})
KEYS = {"DEPS3_SHA256": "k"}


@pytest.mark.parametrize(
    ("current", "found", "expected"),
    [
        (record({"fastapi": "0.115.2", "uvicorn": "0.30.0"}),
         {"deps-rest": "ran", "app": "cached"},
         ["backend:uv deps-rest: re-ran, requirements/backend.txt: fastapi 0.115.0 -> 0.115.2",
          "backend:uv app: cached"]),
        (record({"fastapi": "0.115.0"}), {"deps-rest": "ran", "app": "cached"},
         ["backend:uv deps-rest: re-ran, requirements/backend.txt: -uvicorn 0.30.0",
          "backend:uv app: cached"]),
        (record(OLD["pins"]["requirements/backend.txt"], source="s2"),
         {"deps-rest": "cached", "app": "ran"},
         ["backend:uv deps-rest: cached", "backend:uv app: re-ran, src/backend/app.py changed"]),
        (record(OLD["pins"]["requirements/backend.txt"], base="sha256:new"),
         {"deps-rest": "ran", "app": "ran"},
         ["backend:uv deps-rest: re-ran, base image changed",
          "backend:uv app: re-ran, base image changed"]),
    ],
)  # fmt: skip
def test_each_re_run_names_its_input(current: dict, found: dict, expected: list[str]) -> None:
    lines, errors, warnings = explain.analyse("backend:uv", OLD, current, found, {}, KEYS)
    assert (lines, errors, warnings) == (expected, [], [])


def test_a_re_run_with_no_input_changed_is_a_warning() -> None:
    lines, errors, warnings = explain.analyse("backend:uv", OLD, OLD, {"deps-rest": "ran"}, {},
                                              KEYS)  # fmt: skip
    assert lines[0] == "backend:uv deps-rest: re-ran with no input changed"
    assert warnings[0].startswith("backend:uv deps-rest: re-ran although no input changed")
    assert errors == []


def test_a_reuse_of_an_earlier_identical_build_is_explained_not_refused() -> None:
    """Undoing an edit gives the layer of an earlier build back: right, and said so."""
    current = record({"fastapi": "0.115.2", "uvicorn": "0.30.0"})
    lines, errors, _ = explain.analyse("backend:uv", OLD, current, {"deps-rest": "cached"},
                                       {"DEPS3_SHA256": "k"}, KEYS)  # fmt: skip
    assert errors == []
    assert lines[0].startswith("backend:uv deps-rest: cached, a layer built earlier from these")


def test_a_reused_layer_built_from_other_inputs_is_refused() -> None:
    """The layer's history names another key than this build's inputs give: stale."""
    current = record({"fastapi": "0.115.2", "uvicorn": "0.30.0"})
    _, errors, _ = explain.analyse("backend:uv", OLD, current, {"deps-rest": "cached"},
                                   {"DEPS3_SHA256": "old"}, KEYS)  # fmt: skip
    assert errors == ["backend:uv deps-rest: the engine reused a layer built from other inputs "
                      "(DEPS3_SHA256 old, now k) although requirements/backend.txt: fastapi "
                      "0.115.0 -> 0.115.2: refusing it"]  # fmt: skip


def test_the_recorded_keys_are_read_from_the_history() -> None:
    history = ("RUN |2 TOOLS_SHA256=" + "ab" * 32 + " DEPS1_SHA256=" + "cd" * 32
               + " /bin/sh -c echo\nCOPY app/ /app/\n")  # fmt: skip
    assert explain.recorded_keys(history) == {"TOOLS_SHA256": "ab" * 32, "DEPS1_SHA256": "cd" * 32}
    assert explain.recorded_keys("COPY app/ /app/") == {}


def test_source_names_are_the_users_paths() -> None:
    spec = {"model": "image"}
    names = {
        rel: explain.source_name("backend", spec, rel)
        for rel in (
            "app/backend/app.py",
            "app/model/model.safetensors",
            "app/launch.json",
            "app/launch.py",
            "deps/3/lock.txt",
            "tools/tools.txt",
            "tools/pip.whl",
            "prune.txt",
            "deps/1/a-1-py3-none-any.whl",
            "buildtime/scrub_venv.py",
        )
    }
    assert names == {
        "app/backend/app.py": "src/backend/app.py",
        "app/model/model.safetensors": "artifacts/image/model.safetensors",
        "app/launch.json": "dockerfiles/apps.toml [backend] command/env/port/health",
        "app/launch.py": "dockerfiles/runtime/launch.py",
        "deps/3/lock.txt": "requirements/backend.txt",
        "tools/tools.txt": "requirements/tools.txt",
        "tools/pip.whl": "pip's wheel",
        "prune.txt": "dockerfiles/apps.toml [backend].prune",
        "deps/1/a-1-py3-none-any.whl": "build/wheelhouse/a-1-py3-none-any.whl",
        "buildtime/scrub_venv.py": "dockerfiles/buildtime/scrub_venv.py",
    }  # fmt: skip


DIGESTS = {"deps/1/lock.txt": "1" * 64, "deps/3/lock.txt": "4" * 64,
           "buildtime/prune_rootfs.py": "2" * 64, "app/backend/app.py": "3" * 64}  # fmt: skip


@pytest.mark.parametrize("variant", ["pip", "uv", "multistage"])
def test_step_inputs_name_each_steps_inputs(variant: str) -> None:
    spec = {"model": "image"}
    steps = explain.step_inputs("backend", spec, variant, DIGESTS, "sha256:base")
    rootfs = ["rootfs"] if variant == "multistage" else []
    assert list(steps) == [*rootfs, "setup", *LAYERS, "app"]
    dockerfile = f"dockerfiles/{variant}.Dockerfile"
    assert steps["deps-torch"]["requirements/backend.txt"] == "1" * 64
    assert steps["deps-rest"]["requirements/backend.txt"] == "4" * 64
    assert "requirements/backend.txt" not in steps["deps-numeric"]
    assert steps["app"]["src/backend/app.py"] == "3" * 64
    for step, inputs in steps.items():
        assert inputs["base image"] == "sha256:base"
        assert f"{dockerfile} (up to the {step} step)" in inputs
    if variant == "multistage":
        assert steps["rootfs"]["dockerfiles/buildtime/prune_rootfs.py"] == "2" * 64
    # Each step after the first depends on the ones before it: a change in the torch layer
    # is an input of the rest layer too.
    moved = explain.step_inputs("backend", spec, variant, {**DIGESTS, "deps/1/lock.txt": "5" * 64},
                                "sha256:base")  # fmt: skip
    assert moved["deps-rest"] != steps["deps-rest"] and moved["setup"] == steps["setup"]


def test_no_step_is_keyed_on_the_build_args_that_only_set_labels() -> None:
    """A new revision changes labels only (BuildKit's config, Podman's --label step): no
    layer step names VCS_REF or CREATED among its inputs, so none is expected to re-run."""
    steps = explain.step_inputs("backend", {}, "uv", DIGESTS, "sha256:base")
    assert not [name for inputs in steps.values() for name in inputs if "build arg" in name]


def test_record_path_is_per_engine_and_prefix(tmp_path: Path) -> None:
    cfg = Config(build_dir=tmp_path, engine="podman", image_prefix="ci-")
    assert explain.record_path(cfg, "flask", "uv") == tmp_path / "explain/podman/ci-flask-uv.json"


def test_main_prints_the_lines_of_the_recorded_build(tmp_path: Path, capsys) -> None:
    cfg = Config(build_dir=tmp_path)
    path = explain.record_path(cfg, "flask", "pip")
    path.parent.mkdir(parents=True)
    saved = {"lines": ["flask:pip deps: cached", "flask:pip app: re-ran, x changed"],
             "warnings": ["flask:pip app: something"], "image": "flask:pip"}  # fmt: skip
    path.write_text(json.dumps(saved))
    assert explain.main(cfg, "explain", ["flask", "pip"]) == 0
    assert capsys.readouterr().out.splitlines() == [*saved["lines"], "warning: flask:pip app: "
                                                    "something"]  # fmt: skip
    assert explain.main(cfg, "explain", ["flask", "pip", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == saved


def test_main_without_a_recorded_build_says_how_to_make_one(tmp_path: Path) -> None:
    cfg = Config(build_dir=tmp_path, engine="podman")
    with pytest.raises(ScriptError, match=r"no build of flask:uv recorded in .*: run `make image "
                       r"APP=flask VARIANT=uv ENGINE=podman` first"):  # fmt: skip
        explain.main(cfg, "explain", ["flask", "uv"])
    with pytest.raises(ScriptError, match=r"unknown variant 'alpine'"):
        explain.main(cfg, "explain", ["flask", "alpine"])
