"""Static checks of the three shared Dockerfiles that hadolint cannot make.

hadolint's pip rules do not see `uv pip`, nor the hermetic-install flags this project relies
on: these tests read the instructions (continuations joined) and check them directly.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from functools import cached_property
from itertools import pairwise
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = ROOT / "dockerfiles"
VARIANT_NAMES = ("pip", "uv", "multistage")
WHEELS = "/tmp/build/wheels"
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
SEPARATORS = re.compile(r"\s*(?:&&|\|\||;)\s*")
DIGEST_REF = re.compile(r"^[^\s@]+:[^\s@]+@sha256:[0-9a-f]{64}$")


@dataclass
class Instruction:
    keyword: str  # upper case: RUN, COPY, ...
    args: str  # the rest, continuations joined into one line
    line: int  # where it starts (1-based)

    @property
    def flags(self) -> list[str]:
        """Leading `--name=value` flags (RUN --mount=..., COPY --from=...)."""
        out = []
        for word in self.args.split():
            if not word.startswith("--"):
                break
            out.append(word)
        return out

    @property
    def body(self) -> str:
        """The arguments after the leading flags."""
        words = self.args.split()
        return " ".join(words[len(self.flags) :])

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction, else None."""
        try:
            value = json.loads(self.body)
        except ValueError:
            return None
        return value if isinstance(value, list) else None


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def of(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


@dataclass
class Dockerfile:
    path: Path
    instructions: list[Instruction]

    @cached_property
    def stages(self) -> list[Stage]:
        stages: list[Stage] = []
        for inst in self.instructions:
            if inst.keyword == "FROM":
                words = inst.body.split()
                name = words[2] if len(words) == 3 and words[1].lower() == "as" else None
                stages.append(Stage(words[0], name))
            elif stages:
                stages[-1].instructions.append(inst)
        return stages

    @property
    def final(self) -> Stage:
        """The image's own stage, `job`: the `service` target only adds EXPOSE on top."""
        return next(stage for stage in self.stages if stage.name == "job")

    def of(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(path: Path) -> Dockerfile:
    """Instructions of a Dockerfile: comments dropped, `\\` continuations joined."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # comment lines may sit inside a continued instruction too
        if not pending:
            start = number
        continued = stripped.endswith("\\")
        pending.append(stripped[:-1].strip() if continued else stripped)
        if not continued:
            keyword, _, args = " ".join(pending).partition(" ")
            instructions.append(Instruction(keyword.upper(), args.strip(), start))
            pending = []
    assert not pending, f"{path.name}: the last instruction ends with a continuation"
    return Dockerfile(path, instructions)


@pytest.fixture(params=VARIANT_NAMES)
def dockerfile(request: pytest.FixtureRequest) -> Dockerfile:
    """Each of the three shared Dockerfiles, parsed."""
    return parse_dockerfile(DOCKERFILES / f"{request.param}.Dockerfile")


def commands(run: Instruction) -> list[list[str]]:
    """The simple commands of a RUN (split on && || ;), each as shell words."""
    return [shlex.split(part) for part in SEPARATORS.split(run.body) if part.strip()]


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
    if "install" not in argv:
        return False
    exe = Path(argv[0]).name
    module_pip = any(a == "-m" and b == "pip" for a, b in pairwise(argv))
    return exe.startswith("pip") or module_pip


def is_uv(argv: list[str]) -> bool:
    return bool(argv) and Path(argv[0]).name == "uv"


def is_uv_pip_install(argv: list[str]) -> bool:
    return is_uv(argv) and argv[1:3] == ["pip", "install"]


def installs(dockerfile: Dockerfile) -> list[tuple[Instruction, dict[str, str], list[str]]]:
    """Every pip / uv pip install command: (its RUN, env prefix, argv)."""
    found = []
    for run in dockerfile.of("RUN"):
        for words in commands(run):
            env, argv = env_and_argv(words)
            if argv and (is_pip_install(argv) or is_uv_pip_install(argv)):
                found.append((run, env, argv))
    return found


def pip_installs(dockerfile: Dockerfile) -> list[tuple[Instruction, list[str]]]:
    return [(run, argv) for run, _, argv in installs(dockerfile) if is_pip_install(argv)]


def stage_of(dockerfile: Dockerfile, instruction: Instruction):
    return next(s for s in dockerfile.stages if instruction in s.instructions)


def copy_sources(instruction: Instruction) -> list[str]:
    return instruction.body.split()[:-1]


def from_stage(instruction: Instruction) -> str | None:
    return next((f.split("=", 1)[1] for f in instruction.flags if f.startswith("--from=")), None)


def test_parser_joins_continuations_and_drops_comments(tmp_path: Path) -> None:
    path = tmp_path / "x.Dockerfile"
    path.write_text(
        "# header\nFROM a AS b\nRUN one \\\n    # inside\n    && two \\\n  three\nUSER 1:1\n"
    )
    parsed = parse_dockerfile(path)
    assert [(i.keyword, i.args, i.line) for i in parsed.instructions] == [
        ("FROM", "a AS b", 2),
        ("RUN", "one && two three", 3),
        ("USER", "1:1", 7),
    ]
    assert parsed.stages[0].name == "b"
    assert commands(parsed.instructions[1]) == [["one"], ["two", "three"]]


def test_every_install_is_hash_checked_offline_and_without_dependencies(
    dockerfile: Dockerfile,
) -> None:
    found = installs(dockerfile)
    assert found, f"{dockerfile.path.name}: no pip/uv install found (parser out of date?)"
    for _, _, argv in found:
        command = " ".join(argv)
        for flag in ("--require-hashes", "--no-index", "--no-deps"):
            assert flag in argv, f"{dockerfile.path.name}: `{command}` lacks {flag}"
        assert option(argv, "--find-links") == WHEELS, f"`{command}` must use {WHEELS}"
        assert option(argv, "--index-url") is None and option(argv, "-i") is None
        assert option(argv, "-r") and option(argv, "-r").startswith("/tmp/build/")


def test_pip_skips_its_cache_and_leaves_bytecode_to_compileall(dockerfile: Dockerfile) -> None:
    found = pip_installs(dockerfile)
    assert found, f"{dockerfile.path.name}: pip installs uv (or the app) in every variant"
    for run, argv in found:
        command = " ".join(argv)
        assert "--no-cache-dir" in argv, f"{dockerfile.path.name}: `{command}` caches"
        if "--no-compile" in argv:
            continue
        # Without --no-compile pip writes timestamped .pyc files: allowed only into a
        # throw-away installer venv under /tmp that never reaches the final image.
        venv = str(Path(argv[0]).parent.parent)
        assert venv.startswith("/tmp/"), f"`{command}` compiles bytecode into {venv}"
        stage = stage_of(dockerfile, run)
        if stage is dockerfile.final:
            removed = [w for w in commands(run) if w[:2] == ["rm", "-rf"] and venv in w]
            assert removed, f"{dockerfile.path.name}: {venv} stays in the image"
        else:
            copied = [s for c in dockerfile.final.of("COPY") for s in copy_sources(c)]
            assert not any(venv.startswith(s.rstrip("/")) for s in copied if s != "/")
    app_installs = [argv for _, argv in found if "/opt/venv" in " ".join(argv)]
    for argv in app_installs:
        assert "--no-compile" in argv, "pip installing into /opt/venv must use --no-compile"


def test_uv_runs_without_cache_and_without_python_downloads(dockerfile: Dockerfile) -> None:
    uv_commands = [
        env_and_argv(words)
        for run in dockerfile.of("RUN")
        for words in commands(run)
        if is_uv(env_and_argv(words)[1])
    ]
    if dockerfile.path.name == "pip.Dockerfile":
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


def test_bytecode_is_compiled_hash_based_after_the_install(dockerfile: Dockerfile) -> None:
    app_installs = [(run, argv) for run, _, argv in installs(dockerfile) if "/opt/venv" in argv
                    or option(argv, "--python") == "/opt/venv/bin/python"]  # fmt: skip
    assert app_installs, f"{dockerfile.path.name}: nothing installs into /opt/venv"
    for run, install in app_installs:
        steps = [env_and_argv(words)[1] for words in commands(run)]
        after = steps[steps.index(install) + 1 :]
        compiles = [argv for argv in after if argv[:3] == ["python3", "-m", "compileall"]]
        assert compiles, f"{dockerfile.path.name}: the app's venv is not byte-compiled"
        assert option(compiles[0], "--invalidation-mode") == "unchecked-hash", compiles[0]
        assert compiles[0][-1].startswith("/opt/venv"), compiles[0]


def test_lock_and_wheels_come_in_by_bind_mount_only(dockerfile: Dockerfile) -> None:
    for run, _, argv in installs(dockerfile):
        mounts = {}
        for flag in run.flags:
            if flag.startswith("--mount="):
                fields = dict(f.split("=", 1) for f in flag[len("--mount=") :].split(","))
                mounts[fields["target"]] = fields
        assert all(m.get("type") == "bind" for m in mounts.values()), mounts
        used = {option(argv, "-r"), option(argv, "--find-links")}
        for path in used:
            assert path in mounts, f"{dockerfile.path.name}: {path} is not bind-mounted"
        assert mounts[WHEELS]["source"] == "wheels"
    locks = {m for run, _, argv in installs(dockerfile) for m in [option(argv, "-r")]}
    assert "/tmp/build/lock.txt" in locks
    for inst in [*dockerfile.of("COPY"), *dockerfile.of("ADD")]:
        for source in copy_sources(inst):
            name = source.rstrip("/").split("/")[-1]
            assert name not in {"wheels", "lock.txt", "tools.txt", "wheelhouse"}, inst.args
            assert not name.endswith(".whl"), inst.args


# The build arg carrying each mounted file's sha256 into the cache key (scripts/build.py
# step_inputs): DEPS_SHA256 covers every context file outside app/, ROOTFS_SHA256 one file.
MOUNT_KEYS = {"prune_rootfs.py": "ROOTFS_SHA256"}


@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_every_bind_mounted_input_reaches_the_cache_key(variant: str) -> None:
    """Podman keys a RUN on its text, args and parent only: a mounted file must be in an ARG
    of the same stage, declared before the RUN and used by it."""
    dockerfile = parse_dockerfile(DOCKERFILES / f"{variant}.Dockerfile")
    checked = 0
    for stage in dockerfile.stages:
        declared: set[str] = set()
        for inst in stage.instructions:
            if inst.keyword == "ARG":
                declared.add(inst.body.split("=")[0])
            if inst.keyword != "RUN":
                continue
            for flag in inst.flags:
                if not flag.startswith("--mount="):
                    continue
                fields = dict(f.split("=", 1) for f in flag[len("--mount=") :].split(","))
                source = fields["source"]
                assert not source.startswith("app"), f"{variant}: app/ is copied, never mounted"
                key = MOUNT_KEYS.get(source, "DEPS_SHA256")
                assert key in declared, f"{variant}: {source} is mounted without ARG {key}"
                assert f"${{{key}}}" in inst.body, f"{variant}: the RUN does not use {key}"
                checked += 1
    assert checked >= 2


def test_base_image_is_pinned_by_digest_everywhere_alike(
    dockerfile: Dockerfile, scripts_on_path: Path
) -> None:
    import base

    args = [i.body for i in dockerfile.of("ARG") if i.body.startswith("BASE_IMAGE=")]
    assert len(args) == 1, "one BASE_IMAGE ARG, before the first FROM"
    assert dockerfile.of("ARG")[0].line < dockerfile.of("FROM")[0].line
    default = args[0].split("=", 1)[1]
    assert DIGEST_REF.match(default), f"{default} is not pinned by @sha256: digest"
    assert default == base.DEFAULT_BASE
    makefile = (ROOT / "Makefile").read_text()
    make_default = re.search(r"^BASE_IMAGE \?= (\S+)$", makefile, re.MULTILINE)
    assert make_default and make_default[1] == default


def test_every_from_is_the_pinned_base_a_stage_or_scratch(dockerfile: Dockerfile) -> None:
    names: set[str] = set()
    for stage in dockerfile.stages:
        assert stage.base in {"${BASE_IMAGE}", "scratch"} | names, stage.base
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
    final = dockerfile.final
    users = final.of("USER")
    assert users and users[-1].body == "65532:65532"
    assert final.instructions.index(users[-1]) > max(
        (final.instructions.index(i) for i in final.of("RUN")), default=-1
    )
    (entrypoint,) = final.of("ENTRYPOINT")
    argv = entrypoint.exec_form()
    assert argv and Path(argv[0]).name.startswith("python"), entrypoint.args
    (healthcheck,) = final.of("HEALTHCHECK")
    keyword, _, rest = healthcheck.body.partition(" ")
    assert keyword == "CMD"
    probe = Instruction("CMD", rest, healthcheck.line).exec_form()
    assert probe and Path(probe[0]).name.startswith("python"), healthcheck.args
    assert probe[1:] == ["/app/healthcheck.py"]
    assert argv[1:] == ["/app/launch.py"]


def test_no_curl_or_wget_anywhere(dockerfile: Dockerfile) -> None:
    for inst in dockerfile.instructions:
        assert not re.search(r"\b(curl|wget)\b", inst.args), f"line {inst.line}: {inst.args}"


def test_oci_labels_source_revision_created(dockerfile: Dockerfile) -> None:
    final = dockerfile.final
    labels = dict(
        word.split("=", 1) for inst in final.of("LABEL") for word in shlex.split(inst.args)
    )
    declared = {i.body.split("=", 1)[0] for i in final.of("ARG")}
    build_py = (ROOT / "scripts" / "build.py").read_text()
    for key in ("source", "revision", "created"):
        value = labels.get(f"org.opencontainers.image.{key}")
        assert value, f"{dockerfile.path.name}: label org.opencontainers.image.{key} missing"
        for arg in re.findall(r"\$\{(\w+)\}", value):
            assert arg in declared, f"{arg} is not an ARG of the final stage: the label is empty"
            assert f'f"{arg}=' in build_py, f"scripts/build.py does not pass --build-arg {arg}"


def test_no_add_no_latest_no_whole_context_copy(dockerfile: Dockerfile) -> None:
    assert dockerfile.of("ADD") == []
    for inst in dockerfile.instructions:
        assert not re.search(r":latest\b", inst.args, re.IGNORECASE), inst.args
    for inst in dockerfile.of("COPY"):
        assert not {".", "./", "*"} & set(copy_sources(inst)), inst.args


def test_multistage_final_stage_is_scratch_with_only_runtime_venv_and_app() -> None:
    parsed = parse_dockerfile(DOCKERFILES / "multistage.Dockerfile")
    assert len(parsed.stages) >= 2
    final = parsed.final
    assert final.base == "scratch"
    copies = {tuple(copy_sources(c)): from_stage(c) for c in final.of("COPY")}
    assert copies == {("/runtime/",): "runtime-root", ("/opt/venv",): "builder", ("app/",): None}
    assert final.of("RUN") == [], "a scratch-based stage has no shell to RUN anything"
    prune = [w for s in parsed.stages if s.name == "runtime-root" for r in s.of("RUN")
             for w in commands(r)]  # fmt: skip
    assert ["python3", "/tmp/prune_rootfs.py", "/runtime"] in prune
    for stage in parsed.stages:
        if stage.name in ("builder", "runtime-root"):  # build stages never run as services
            assert [h.body for h in stage.of("HEALTHCHECK")] == ["NONE"], stage.name


def test_service_target_only_declares_the_port(dockerfile: Dockerfile) -> None:
    """Services build `--target service` (EXPOSE from apps.toml's port), jobs `--target job`."""
    service = dockerfile.stages[-1]
    assert (service.base, service.name) == ("job", "service")
    assert [(i.keyword, i.body) for i in service.instructions] == [
        ("ARG", "PORT=8000"),
        ("EXPOSE", "${PORT}"),
    ]
