"""Static checks of the three shared Dockerfiles that hadolint cannot make.

hadolint's pip rules do not see `uv pip`, nor the hermetic-install flags this project relies
on. These tests read the Dockerfiles with dockerfile-parse (instructions with continuations
joined, comments apart, stages, ARGs, LABELs) and split each RUN into its shell commands with
shlex, honouring quoting. The important checks are `check_*` functions that also run on a
broken copy of a Dockerfile (test_a_check_catches_a_broken_dockerfile): a check that cannot
fail proves nothing.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser
from dockerfile_parse.parser import image_from
from dockerfile_parse.util import get_key_val_dictionary

from imagetools import images, makefile
from imagetools.config import DEFAULT_BASE, Config

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = ROOT / "dockerfiles"
VARIANT_NAMES = ("pip", "uv", "multistage")
WHEELS = "/tmp/build/deps"  # each dependency layer's wheels and lock part
LAYER_LOCK = "/tmp/build/deps/lock.txt"
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
FLAGS = re.compile(r"((?:--\S+\s+)*)(.*)", re.DOTALL)  # leading --name=value flags, the rest
CONTROL_OPERATORS = {"&&", "||", ";", "|", "&"}
# A lone control operator in quotes or escaped (`find -exec ... \;`) reads like the operator
# itself once shlex has removed the quoting: refuse it rather than misread it.
QUOTED_OPERATOR = re.compile(r"""(["'])(?:&&|\|\||;|\||&)\1|\\;|\\&|\\\|""")
DIGEST_REF = re.compile(r"^[^\s@]+:[^\s@]+@sha256:[0-9a-f]{64}$")
MOUNT_ALIASES = {"src": "source", "dst": "target", "destination": "target"}


def shell_commands(script: str) -> list[list[str]]:
    """The simple commands of a shell script (split on && || ; | &), each as its words.

    shlex in its shell mode (punctuation_chars) keeps `"a && b"` one word and returns an
    unquoted operator as a token of its own, even without spaces around it (`a&&b`).
    """
    assert not QUOTED_OPERATOR.search(script), f"a quoted or escaped operator in: {script}"
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    found: list[list[str]] = [[]]
    for token in lexer:
        if token in CONTROL_OPERATORS:
            found.append([])
        else:
            found[-1].append(token)
    return [words for words in found if words]


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: RUN, COPY, ...
    value: str  # the arguments, continuations joined (dockerfile-parse's `value`)
    line: int  # where it starts (1-based)

    @property
    def flags(self) -> list[str]:
        """Leading `--name=value` flags (RUN --mount=..., COPY --from=...)."""
        return FLAGS.fullmatch(self.value.strip())[1].split()

    @property
    def body(self) -> str:
        """The arguments after the leading flags."""
        return FLAGS.fullmatch(self.value.strip())[2]

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction, else None."""
        try:
            value = json.loads(self.body)
        except ValueError:
            return None
        return value if isinstance(value, list) else None

    def commands(self) -> list[list[str]]:
        """A shell-form RUN's simple commands, each as shell words."""
        assert self.keyword == "RUN" and self.exec_form() is None, self
        return shell_commands(self.body)

    def mounts(self) -> list[dict[str, str]]:
        """RUN --mount flags as {field: value}; `type` defaults to bind, as in BuildKit."""
        found = []
        for flag in self.flags:
            if flag.startswith("--mount="):
                fields = {"type": "bind"}
                for item in flag.removeprefix("--mount=").split(","):
                    key, _, value = item.partition("=")
                    fields[MOUNT_ALIASES.get(key, key)] = value
                found.append(fields)
        return found

    def key_values(self) -> dict[str, str]:
        """ARG / LABEL / ENV as {name: value}, unquoted, variables left as they are."""
        return get_key_val_dictionary(self.value)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction]

    def of(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


@dataclass
class Dockerfile:
    name: str
    instructions: list[Instruction]

    @cached_property
    def stages(self) -> list[Stage]:
        stages: list[Stage] = []
        for inst in self.instructions:
            if inst.keyword == "FROM":
                base, name = image_from(inst.value)
                stages.append(Stage(base, name, []))
            elif stages:
                stages[-1].instructions.append(inst)
        return stages

    @property
    def final(self) -> Stage:
        """The image's own stage, `job`: the `service` target only adds EXPOSE on top."""
        jobs = [stage for stage in self.stages if stage.name == "job"]
        assert len(jobs) == 1, f"{self.name}: one stage named `job`"
        return jobs[0]

    def of(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str, name: str) -> Dockerfile:
    """The instructions of a Dockerfile's text, comments dropped, by dockerfile-parse."""
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()), env_replace=False)
    instructions = [
        Instruction(item["instruction"], item["value"], item["startline"] + 1)
        for item in parser.structure
        if item["instruction"] != "COMMENT"
    ]
    return Dockerfile(name, instructions)


def read_dockerfile(variant: str) -> Dockerfile:
    path = DOCKERFILES / f"{variant}.Dockerfile"
    return parse_dockerfile(path.read_text(), path.name)


@pytest.fixture(params=VARIANT_NAMES)
def dockerfile(request: pytest.FixtureRequest) -> Dockerfile:
    """Each of the three shared Dockerfiles, parsed."""
    return read_dockerfile(request.param)


def env_and_argv(words: list[str]) -> tuple[dict[str, str], list[str]]:
    """`A=1 B=2 cmd args` -> ({A: 1, B: 2}, [cmd, args])."""
    env = {}
    while words and ENV_ASSIGNMENT.match(words[0]):
        key, _, value = words[0].partition("=")
        env[key] = value
        words = words[1:]
    return env, words


def option(argv: list[str], name: str) -> str | None:
    """The value of `--name value` or `--name=value` in argv."""
    for index, word in enumerate(argv):
        if word == name and index + 1 < len(argv):
            return argv[index + 1]
        if word.startswith(f"{name}="):
            return word.split("=", 1)[1]
    return None


def is_pip_install(argv: list[str]) -> bool:
    """pip, python -m pip, or python running pip from its wheel (`.../pip.whl/pip`)."""
    if "install" not in argv:
        return False
    exe = Path(argv[0]).name
    module_pip = any(a == "-m" and b == "pip" for a, b in pairwise(argv))
    from_wheel = len(argv) > 1 and argv[1].endswith(".whl/pip")
    return exe.startswith("pip") or module_pip or from_wheel


def is_uv(argv: list[str]) -> bool:
    return bool(argv) and Path(argv[0]).name == "uv"


def is_uv_pip_install(argv: list[str]) -> bool:
    return is_uv(argv) and argv[1:3] == ["pip", "install"]


def installs(dockerfile: Dockerfile) -> list[tuple[Instruction, dict[str, str], list[str]]]:
    """Every pip / uv pip install command: (its RUN, env prefix, argv)."""
    found = []
    for run in dockerfile.of("RUN"):
        for words in run.commands():
            env, argv = env_and_argv(words)
            if argv and (is_pip_install(argv) or is_uv_pip_install(argv)):
                found.append((run, env, argv))
    return found


def pip_installs(dockerfile: Dockerfile) -> list[tuple[Instruction, list[str]]]:
    return [(run, argv) for run, _, argv in installs(dockerfile) if is_pip_install(argv)]


def stage_of(dockerfile: Dockerfile, instruction: Instruction) -> Stage:
    return next(s for s in dockerfile.stages if instruction in s.instructions)


def copy_sources(instruction: Instruction) -> list[str]:
    return shlex.split(instruction.body)[:-1]


def from_stage(instruction: Instruction) -> str | None:
    return next((f.split("=", 1)[1] for f in instruction.flags if f.startswith("--from=")), None)


def declared_args(instructions: list[Instruction]) -> set[str]:
    return {name for inst in instructions if inst.keyword == "ARG" for name in inst.key_values()}


def test_parser_joins_continuations_drops_comments_and_honours_quoting() -> None:
    parsed = parse_dockerfile(
        "# header\nFROM a AS b\n"
        "RUN --mount=type=bind,src=x,dst=/y \\\n    # inside\n"
        "    echo \"one && two; three\" \\\n && A=1 cmd 'q|r'|tee f ;last\n"
        "USER 1:1\n",
        "x.Dockerfile",
    )
    assert [(i.keyword, i.line) for i in parsed.instructions] == [
        ("FROM", 2), ("RUN", 3), ("USER", 7),
    ]  # fmt: skip
    assert (parsed.stages[0].base, parsed.stages[0].name) == ("a", "b")
    run = parsed.instructions[1]
    assert run.flags == ["--mount=type=bind,src=x,dst=/y"]
    assert run.mounts() == [{"type": "bind", "source": "x", "target": "/y"}]
    assert run.commands() == [
        ["echo", "one && two; three"], ["A=1", "cmd", "q|r"], ["tee", "f"], ["last"],
    ]  # fmt: skip
    with pytest.raises(AssertionError, match="quoted or escaped operator"):
        shell_commands(r"find / -exec chmod ug-s {} \;")


# ---- the checks ---------------------------------------------------------------------------


def check_installs_are_hermetic(dockerfile: Dockerfile) -> None:
    """Every pip / uv pip install: hash-checked, offline, no dependency resolution."""
    found = installs(dockerfile)
    assert found, f"{dockerfile.name}: no pip/uv install found (parser out of date?)"
    for _, _, argv in found:
        command = " ".join(argv)
        for flag in ("--require-hashes", "--no-index", "--no-deps"):
            assert flag in argv, f"{dockerfile.name}: `{command}` lacks {flag}"
        assert option(argv, "--find-links") == WHEELS, f"`{command}` must use {WHEELS}"
        assert option(argv, "--index-url") is None and option(argv, "-i") is None
        assert option(argv, "-r") and option(argv, "-r").startswith("/tmp/build/")


def check_inputs_come_by_bind_mount_only(dockerfile: Dockerfile) -> None:
    """The locks and wheels are bind-mounted into the installing RUN, never copied."""
    for run, _, argv in installs(dockerfile):
        mounts = {m["target"]: m for m in run.mounts()}
        assert all(m["type"] == "bind" for m in mounts.values()), mounts
        for path in (option(argv, "-r"), option(argv, "--find-links")):
            where = next((m for m in mounts if path == m or path.startswith(f"{m}/")), None)
            assert where, f"{dockerfile.name}: {path} is not bind-mounted"
        assert re.fullmatch(r"deps/\d", mounts[WHEELS]["source"]), mounts[WHEELS]
    locks = {option(argv, "-r") for _, _, argv in installs(dockerfile)}
    assert locks == {LAYER_LOCK}, locks
    for inst in [*dockerfile.of("COPY"), *dockerfile.of("ADD")]:
        for source in copy_sources(inst):
            name = source.rstrip("/").split("/")[-1]
            forbidden = {"deps", "tools", "wheels", "lock.txt", "tools.txt", "wheelhouse"}
            assert name not in forbidden, f"{dockerfile.name}: copies {source}"
            assert not name.endswith(".whl"), f"{dockerfile.name}: copies {source}"


# A context with one file under every mounted source, for images.step_inputs.
CONTEXT = {"tools/tools.txt": "1", "buildtime/layer.py": "2", "buildtime/prune_rootfs.py": "3",
           "prune.txt": "4", "deps/1/lock.txt": "5", "deps/2/lock.txt": "6",
           "deps/3/lock.txt": "7", "app/launch.py": "8", "lock.txt": "9"}  # fmt: skip


def run_key(run: Instruction) -> str:
    """The build arg a RUN echoes as its inputs' digest (`sha256:${KEY}`), or ''."""
    found = re.search(r"sha256:\$\{(\w+)\}", run.body)
    return found[1] if found else ""


def check_mounts_reach_the_cache_key(dockerfile: Dockerfile) -> None:
    """Podman keys a RUN on its text, args and parent only: a RUN that mounts files uses one
    ARG of its stage, declared before it, whose value (images.step_inputs) changes whenever a
    file under any of its mounts changes; app/ and lock.txt are never mounted."""
    checked = 0
    for stage in dockerfile.stages:
        for index, run in enumerate(stage.instructions):
            if run.keyword != "RUN" or not run.mounts():
                continue
            key = run_key(run)
            for mount in run.mounts():
                source = mount["source"]
                where = f"{dockerfile.name}: {source}"
                assert not source.startswith("app"), f"{where}: app/ is copied, never mounted"
                assert source != "lock.txt", f"{where}: the whole lock is never mounted"
                assert key, f"{dockerfile.name}: the RUN mounting {source} uses no key ARG"
                declared = declared_args(stage.instructions[:index])
                assert key in declared, f"{dockerfile.name}: {source} is mounted without ARG {key}"
                files = [n for n in CONTEXT if n == source or n.startswith(f"{source}/")]
                assert files, f"{where}: not a file or folder of the build context"
                for name in files:
                    before = images.step_inputs(CONTEXT)[key]
                    after = images.step_inputs({**CONTEXT, name: "changed"})[key]
                    assert before != after, f"{where}: a change to {name} leaves {key} alone"
                checked += 1
    assert checked >= 4


def check_final_stage_is_unprivileged_with_python_entrypoint_and_probe(
    dockerfile: Dockerfile,
) -> None:
    final = dockerfile.final
    users = final.of("USER")
    assert users and users[-1].body == "65532:65532", f"{dockerfile.name}: not USER 65532:65532"
    last_run = max((final.instructions.index(i) for i in final.of("RUN")), default=-1)
    assert final.instructions.index(users[-1]) > last_run, f"{dockerfile.name}: RUN after USER"
    entrypoints = final.of("ENTRYPOINT")
    assert len(entrypoints) == 1, f"{dockerfile.name}: one ENTRYPOINT"
    argv = entrypoints[0].exec_form()
    assert argv and Path(argv[0]).name.startswith("python"), entrypoints[0].value
    assert argv[1:] == ["/app/launch.py"]
    healthchecks = final.of("HEALTHCHECK")
    assert len(healthchecks) == 1, f"{dockerfile.name}: one HEALTHCHECK in the final stage"
    keyword, _, rest = healthchecks[0].body.partition(" ")
    assert keyword == "CMD", f"{dockerfile.name}: HEALTHCHECK {healthchecks[0].body}"
    probe = Instruction("CMD", rest, healthchecks[0].line).exec_form()
    assert probe and Path(probe[0]).name.startswith("python"), healthchecks[0].value
    assert probe[1:] == ["/app/healthcheck.py"]


def check_oci_labels(dockerfile: Dockerfile) -> None:
    """source, revision and created are set in the last stage (the image: after all content,
    so that Podman's cache, which keys a LABEL on its text, re-runs them whenever the content
    changed), from ARGs of that stage the build passes."""
    last = dockerfile.stages[-1]
    labels = {key: value for inst in last.of("LABEL") for key, value in inst.key_values().items()}
    declared = declared_args(last.instructions)
    for key in ("source", "revision", "created"):
        value = labels.get(f"org.opencontainers.image.{key}")
        assert value, f"{dockerfile.name}: label org.opencontainers.image.{key} missing"
        for arg in re.findall(r"\$\{(\w+)\}", value):
            assert arg in declared, f"{arg} is not an ARG of the last stage: the label is empty"
    # That the build passes those ARGs: tests/scripts/test_scripts_images.py, on the command.


# ---- the tests ----------------------------------------------------------------------------


def test_every_install_is_hash_checked_offline_and_without_dependencies(
    dockerfile: Dockerfile,
) -> None:
    check_installs_are_hermetic(dockerfile)


def test_pip_skips_its_cache_and_leaves_bytecode_to_layer_py(dockerfile: Dockerfile) -> None:
    """pip runs from the locked wheel in the pip variant only, into /opt/venv, without its
    cache or its own (timestamped) bytecode; the uv variants run no pip at all."""
    found = pip_installs(dockerfile)
    if dockerfile.name != "pip.Dockerfile":
        assert found == [], f"{dockerfile.name}: uv installs, pip does not"
        return
    assert len(found) == 3, "one pip install per dependency layer"
    for _, argv in found:
        command = " ".join(argv)
        assert argv[0] == "/opt/venv/bin/python", f"`{command}` installs elsewhere"
        assert argv[1] == "/tmp/build/tools/pip.whl/pip", f"`{command}`: not the locked pip"
        for flag in ("--no-cache-dir", "--no-compile"):
            assert flag in argv, f"{dockerfile.name}: `{command}` lacks {flag}"


def test_uv_runs_without_cache_and_without_python_downloads(dockerfile: Dockerfile) -> None:
    uv_commands = [
        env_and_argv(words)
        for run in dockerfile.of("RUN")
        for words in run.commands()
        if is_uv(env_and_argv(words)[1])
    ]
    if dockerfile.name == "pip.Dockerfile":
        assert uv_commands == [], "the pip variant is the plain-pip baseline"
        return
    assert any(argv[1] == "venv" for _, argv in uv_commands), "uv creates /opt/venv"
    assert any(is_uv_pip_install(argv) for _, argv in uv_commands)
    for env, argv in uv_commands:
        command = " ".join(argv)
        assert env.get("UV_NO_CACHE") == "1" or "--no-cache" in argv, f"`{command}` caches"
        if argv[1] == "venv":
            assert env.get("UV_PYTHON_DOWNLOADS") == "never", f"`{command}` may download Python"
            assert option(argv, "--python"), "uv venv must name the base image's python"


def test_each_layer_is_finished_after_its_install(dockerfile: Dockerfile) -> None:
    """Every install into /opt/venv is followed, in its RUN, by `layer.py finish /opt/venv`,
    which compiles that layer's bytecode hash-based (tests/dockerfiles/test_dockerfile_layer.py)."""
    app_installs = [(run, argv) for run, _, argv in installs(dockerfile)
                    if argv[0] == "/opt/venv/bin/python"
                    or option(argv, "--python") == "/opt/venv/bin/python"]  # fmt: skip
    assert len(app_installs) == 3, f"{dockerfile.name}: one install per dependency layer"
    for run, install in app_installs:
        steps = [env_and_argv(words)[1] for words in run.commands()]
        after = steps[steps.index(install) + 1 :]
        finish = ["python3", "/tmp/build/bin/layer.py", "finish", "/opt/venv"]
        assert [argv for argv in after if argv[:4] == finish], f"{dockerfile.name}: {install}"


def test_lock_and_wheels_come_in_by_bind_mount_only(dockerfile: Dockerfile) -> None:
    check_inputs_come_by_bind_mount_only(dockerfile)


def test_every_bind_mounted_input_reaches_the_cache_key(dockerfile: Dockerfile) -> None:
    check_mounts_reach_the_cache_key(dockerfile)


def test_cache_key_args_are_the_ones_the_dockerfiles_use() -> None:
    """Every key images.step_inputs computes is used by a RUN of some Dockerfile, and each
    layer's key moves with its own inputs only: a bump in the last layer leaves the others'
    keys (and so their cached layers) alone; app/ and the whole lock move none."""
    args = images.step_inputs(CONTEXT)
    used = {run_key(run) for v in VARIANT_NAMES for run in read_dockerfile(v).of("RUN")}
    assert set(args) == used - {""}

    def moved(name: str) -> set[str]:
        after = images.step_inputs({**CONTEXT, name: "changed"})
        return {key for key in args if after[key] != args[key]}

    assert moved("deps/3/lock.txt") == {"DEPS3_SHA256"}
    assert moved("deps/1/lock.txt") == {"DEPS1_SHA256"}
    assert moved("prune.txt") == {"DEPS1_SHA256", "DEPS2_SHA256", "DEPS3_SHA256"}
    assert moved("tools/tools.txt") == set(args) - {"ROOTFS_SHA256"}
    assert moved("buildtime/prune_rootfs.py") == set(args)  # mounted with buildtime/ too
    assert moved("app/launch.py") == moved("lock.txt") == set()


def test_base_image_is_pinned_by_digest_everywhere_alike(
    dockerfile: Dockerfile, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = [i for i in dockerfile.of("ARG") if "BASE_IMAGE" in i.key_values()]
    assert len(args) == 1, "one BASE_IMAGE ARG, before the first FROM"
    assert args[0].line < dockerfile.of("FROM")[0].line
    default = args[0].key_values()["BASE_IMAGE"]
    assert DIGEST_REF.match(default), f"{default} is not pinned by @sha256: digest"
    assert default == DEFAULT_BASE, "the Dockerfile's default differs from imagetools.config"
    # Make's default comes from build/apps.mk, which `imagetools makefile` writes.
    assert makefile.main(Config(), "makefile", []) == 0
    assert f"BASE_IMAGE ?= {default}" in capsys.readouterr().out.splitlines()
    # And Make uses it: `make help` shows the value Make has, with BASE_IMAGE unset.
    env = {k: v for k, v in os.environ.items() if k not in ("BASE_IMAGE", "MAKEFLAGS")}
    shown = subprocess.run(["make", "-s", "-C", str(ROOT), "help", f"BUILD_DIR={tmp_path}"],
                           env=env, capture_output=True, text=True, check=True).stdout  # fmt: skip
    (row,) = [ln.split() for ln in shown.splitlines() if ln.split()[:1] == ["BASE_IMAGE"]]
    assert row == ["BASE_IMAGE", default]


def test_every_from_is_the_pinned_base_a_stage_or_scratch(dockerfile: Dockerfile) -> None:
    names: set[str] = set()
    for stage in dockerfile.stages:
        kind = {"${KIND}"} if {"job", "service"} <= names else set()  # a stage, by KIND
        assert stage.base in {"${BASE_IMAGE}", "scratch"} | names | kind, stage.base
        if stage.name:
            names.add(stage.name)


def test_dependencies_are_installed_before_the_source_is_copied(dockerfile: Dockerfile) -> None:
    copy_app = [c for c in dockerfile.of("COPY") if copy_sources(c) == ["app/"]]
    assert len(copy_app) == 1 and copy_app[0] in dockerfile.final.instructions
    install_lines = [run.line for run, _, _ in installs(dockerfile)]
    assert max(install_lines) < copy_app[0].line
    # In the final stage nothing dependency-related may follow the source either.
    after = dockerfile.final.instructions[dockerfile.final.instructions.index(copy_app[0]) :]
    assert not [i for i in after if i.keyword in {"RUN", "ADD"} or from_stage(i)], after


def test_final_stage_runs_unprivileged_with_exec_form_entrypoint_and_python_probe(
    dockerfile: Dockerfile,
) -> None:
    check_final_stage_is_unprivileged_with_python_entrypoint_and_probe(dockerfile)


def test_no_curl_or_wget_anywhere(dockerfile: Dockerfile) -> None:
    for inst in dockerfile.instructions:
        assert not re.search(r"\b(curl|wget)\b", inst.value), f"line {inst.line}: {inst.value}"


def test_oci_labels_source_revision_created(dockerfile: Dockerfile) -> None:
    check_oci_labels(dockerfile)


def test_no_add_no_latest_no_whole_context_copy(dockerfile: Dockerfile) -> None:
    assert dockerfile.of("ADD") == []
    for inst in dockerfile.instructions:
        assert not re.search(r":latest\b", inst.value, re.IGNORECASE), inst.value
    for inst in dockerfile.of("COPY"):
        assert not {".", "./", "*"} & set(copy_sources(inst)), inst.value


def test_multistage_final_stage_is_scratch_with_only_runtime_venv_and_app() -> None:
    parsed = read_dockerfile("multistage")
    assert len(parsed.stages) >= 2
    final = parsed.final
    assert final.base == "scratch"
    copies = {tuple(copy_sources(c)): from_stage(c) for c in final.of("COPY")}
    layers = {(f"/tmp/layers/{n}/",): "builder" for n in (1, 2, 3)}  # one COPY per layer
    assert copies == {("/runtime/",): "runtime-root", **layers, ("app/",): None}
    assert final.of("RUN") == [], "a scratch-based stage has no shell to RUN anything"
    prune = [w for s in parsed.stages if s.name == "runtime-root" for r in s.of("RUN")
             for w in r.commands()]  # fmt: skip
    assert ["python3", "/tmp/prune_rootfs.py", "/runtime"] in prune
    for stage in parsed.stages:
        if stage.name in ("builder", "runtime-root"):  # build stages never run as services
            assert [h.body for h in stage.of("HEALTHCHECK")] == ["NONE"], stage.name


def test_the_last_stage_is_service_or_job_as_kind_says(dockerfile: Dockerfile) -> None:
    """Services build with KIND=service (EXPOSE from apps.toml's port), jobs with KIND=job; the
    image is the last stage (Podman drops --label unless the target is the last stage), with
    nothing of its own but the labels' ARGs and the one LABEL step (check_oci_labels)."""
    *_, service, image = dockerfile.stages
    assert (service.base, service.name) == ("job", "service")
    assert [(i.keyword, i.body) for i in service.instructions] == [
        ("ARG", "PORT=8000"),
        ("EXPOSE", "${PORT}"),
    ]
    assert (image.base, image.name) == ("${KIND}", "image")
    assert [i.keyword for i in image.instructions] == ["ARG"] * 4 + ["LABEL"]
    assert not [stage.name for stage in dockerfile.stages[:-1] if stage.of("LABEL")]
    first = next(n for n, i in enumerate(dockerfile.instructions) if i.keyword == "FROM")
    assert ("ARG", "KIND=service") in [(i.keyword, i.body) for i in dockerfile.instructions[:first]]


# ---- the checks fail on a broken Dockerfile -----------------------------------------------
# Each case: variant, check, text to replace, its replacement, the failure the check reports.
unprivileged = check_final_stage_is_unprivileged_with_python_entrypoint_and_probe
BREAKAGES = [
    pytest.param("pip", check_installs_are_hermetic, "--require-hashes --no-deps", "--no-deps",
                 "lacks --require-hashes", id="pip-install-unhashed"),
    pytest.param("uv", check_installs_are_hermetic,
                 "--no-index --find-links /tmp/build/deps --require",
                 "--find-links /tmp/build/deps --require", "lacks --no-index",
                 id="uv-install-online"),
    # An install after a quoted `&&` (and an unspaced one) is still a command of its own.
    pytest.param("multistage", check_installs_are_hermetic, "      --stage /tmp/layers --last",
                 '      --stage /tmp/layers --last && echo "done && ok"&&pip install flask',
                 "`pip install flask` lacks --require-hashes",
                 id="multistage-install-after-quoted-operator"),
    pytest.param("uv", check_inputs_come_by_bind_mount_only, "COPY app/ /app/",
                 "COPY lock.txt /tmp/build/lock.txt\nCOPY app/ /app/", "copies lock.txt",
                 id="uv-lock-copied"),
    pytest.param("pip", check_mounts_reach_the_cache_key, "sha256:${DEPS2_SHA256}",
                 "sha256:unset", "uses no key ARG", id="pip-deps-sha256-unused"),
    pytest.param("multistage", check_mounts_reach_the_cache_key, "ARG ROOTFS_SHA256=unset\n",
                 "", "prune_rootfs.py is mounted without ARG ROOTFS_SHA256",
                 id="multistage-rootfs-sha256-undeclared"),
    # Layer 3's RUN keyed on layer 1's digest: its own lock part would not reach the key.
    pytest.param("uv", check_mounts_reach_the_cache_key, "sha256:${DEPS3_SHA256}",
                 "sha256:${DEPS1_SHA256}", "a change to deps/3/lock.txt leaves DEPS1_SHA256",
                 id="uv-layer-keyed-on-another"),
    pytest.param("uv", check_mounts_reach_the_cache_key, "--mount=type=bind,source=deps/1,",
                 "--mount=type=bind,source=app/launch.py,target=/tmp/x \\\n    "
                 "--mount=type=bind,source=deps/1,", "app/ is copied, never mounted",
                 id="uv-app-mounted"),
    pytest.param("multistage", unprivileged, "USER 65532:65532", "USER root",
                 "not USER 65532:65532", id="multistage-user-root"),
    pytest.param("pip", unprivileged, "COPY app/ /app/\n\nUSER 65532:65532\n",
                 "USER 65532:65532\nCOPY app/ /app/\nRUN true\n", "RUN after USER",
                 id="pip-run-after-user"),
    pytest.param("uv", unprivileged,
                 "HEALTHCHECK --interval=5s --timeout=4s --start-period=30s --retries=3 \\\n"
                 '  CMD ["/opt/venv/bin/python", "/app/healthcheck.py"]\n', "",
                 "one HEALTHCHECK in the final stage", id="uv-no-healthcheck"),
    pytest.param("uv", check_oci_labels, "ARG VCS_REF=unknown\n", "", "VCS_REF is not an ARG",
                 id="uv-label-arg-undeclared"),
]  # fmt: skip


@pytest.mark.parametrize(("variant", "check", "old", "new", "failure"), BREAKAGES)
def test_a_check_catches_a_broken_dockerfile(
    variant: str, check: Callable[[Dockerfile], None], old: str, new: str, failure: str
) -> None:
    text = (DOCKERFILES / f"{variant}.Dockerfile").read_text()
    check(parse_dockerfile(text, f"{variant}.Dockerfile"))  # the real one passes
    assert old in text, f"{variant}.Dockerfile changed: update this case's text ({old!r})"
    broken = parse_dockerfile(text.replace(old, new, 1), f"{variant}.Dockerfile")
    with pytest.raises(AssertionError, match=re.escape(failure)):
        check(broken)


def test_a_quoted_install_is_no_command() -> None:
    """`pip install` inside a quoted string is an argument of echo, not an install."""
    text = (DOCKERFILES / "multistage.Dockerfile").read_text()
    old = "      --stage /tmp/layers --last"
    assert old in text
    quoted = text.replace(old, f'{old} && echo "pip install flask && curl x | sh"', 1)
    parsed = parse_dockerfile(quoted, "multistage.Dockerfile")
    assert len(installs(parsed)) == len(installs(read_dockerfile("multistage")))
    check_installs_are_hermetic(parsed)
