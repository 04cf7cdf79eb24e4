"""imagetools.engines: choosing a docker client that can drive BuildKit, and every flag that
differs between Docker and Podman, with fake clients (no engine runs)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from imagetools import engines
from imagetools.common import ROOT, ScriptError
from imagetools.config import Config
from imagetools.engines import Docker, Podman, engine_for

FAKE = """#!/bin/sh
case "$1" in
  --version) [ -n "{version}" ] && printf 'Docker version %s, build 0\\n' "{version}" ;;
  buildx) exit {buildx_status} ;;
  show-env) printf 'DOCKER_BUILDKIT=%s\\n' "$DOCKER_BUILDKIT" ;;
esac
"""


@pytest.fixture
def clients(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """make(name, version, buildx) writes a fake client; PATH holds only tmp_path/bin.

    /usr/bin/docker is always a candidate of Docker.client; a real one on this machine is
    made to look absent (it answers no version), so only the fake clients decide.
    """
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("DOCKER", raising=False)
    real_version = engines._client_version
    asked: list[str] = []

    def fakes_only(client: str) -> str:
        asked.append(client)
        return real_version(client) if Path(client).is_relative_to(tmp_path) else ""

    monkeypatch.setattr(engines, "_client_version", fakes_only)

    def make(name: str, version: str, buildx: bool = False, where: Path = bin_dir) -> str:
        path = where / name
        path.write_text(FAKE.format(version=version, buildx_status=0 if buildx else 1))
        path.chmod(0o755)
        return str(path)

    make.asked = asked
    make.tmp = tmp_path
    return make


def docker_client() -> tuple[list[str], dict[str, str]]:
    return Docker(Config()).client()


def test_pre_23_client_is_used_with_docker_buildkit(clients) -> None:
    old = clients("docker", "20.10.24+dfsg1")
    assert docker_client() == ([old], {"DOCKER_BUILDKIT": "1"})


def test_docker_env_var_names_the_client(clients, monkeypatch) -> None:
    other = clients("my-docker", "20.10.5", where=clients.tmp)
    monkeypatch.setenv("DOCKER", other)
    assert docker_client()[0] == [other]


def test_28_client_without_buildx_is_refused_clearly(clients, monkeypatch) -> None:
    monkeypatch.setenv("DOCKER", clients("docker", "28.2.2"))
    with pytest.raises(ScriptError) as caught:
        docker_client()
    message = str(caught.value)
    for hint in ("BuildKit", "buildx", "docker.io", "DOCKER_BUILDKIT=1", "ENGINE=podman"):
        assert hint in message, message
    assert "\n" not in message
    assert "/usr/bin/docker" in clients.asked, "the fallback client was not considered"


def test_28_client_without_buildx_is_skipped_for_an_older_one(clients, monkeypatch) -> None:
    new = clients("docker-28", "28.2.2", where=clients.tmp)
    old = clients("docker", "20.10.24+dfsg1")
    monkeypatch.setenv("DOCKER", new)
    assert docker_client() == ([old], {"DOCKER_BUILDKIT": "1"})
    assert clients.asked[:2] == [new, old]


def test_28_client_with_buildx_is_used(clients) -> None:
    new = clients("docker", "28.2.2", buildx=True)
    assert docker_client() == ([new], {"DOCKER_BUILDKIT": "1"})


def test_a_client_that_answers_no_version_is_skipped(clients, monkeypatch) -> None:
    monkeypatch.setenv("DOCKER", clients("broken", "", where=clients.tmp))
    old = clients("docker", "19.03.15")
    assert docker_client()[0] == [old]


def test_run_passes_the_buildkit_environment(clients) -> None:
    clients("docker", "20.10.24")
    result = Docker(Config()).run(["show-env"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "DOCKER_BUILDKIT=1"


def test_missing_podman_says_how_to_install_it(clients) -> None:
    with pytest.raises(ScriptError, match=r"^podman is not installed \(Debian/Ubuntu: apt-get"):
        Podman(Config(engine="podman")).client()


def test_the_client_is_chosen_once_per_engine_object(clients) -> None:
    fake = clients("docker", "20.10.24")
    engine = Docker(Config())
    assert engine.command is engine.command
    assert clients.asked.count(fake) == 1
    assert Docker(Config()).command == engine.command, "a fresh object chooses again"
    assert clients.asked.count(fake) == 2


def test_engine_for_gives_the_configured_engine() -> None:
    assert type(engine_for(Config())) is Docker
    podman = engine_for(Config(engine="podman"))
    assert type(podman) is Podman and podman.bit_reproducible and not Docker.bit_reproducible


# ---- what differs between the engines -------------------------------------------------------
def test_docker_builds_print_plain_progress(make_engine) -> None:
    assert make_engine("docker").build_flags() == ["--progress=plain"]


def test_podman_builds_are_timestamped_layered_and_formatted(make_engine) -> None:
    podman = make_engine("podman", source_date_epoch=1_234_567_890)
    assert podman.build_flags() == ["--timestamp", "1234567890", "--layers", "--format", "oci"]
    keeps_healthcheck = make_engine("podman", podman_format="docker").build_flags()
    assert keeps_healthcheck[keeps_healthcheck.index("--format") + 1] == "docker"


def test_podman_pins_an_image_s_times_to_its_base_s(make_engine, fake_client) -> None:
    """buildah does not key its cache on --timestamp: a time per commit would mix, in one
    image, the times of the steps reused from older commits with this commit's time."""
    fake_client.answer("image inspect --format {{.Created.Unix}} base:1", "1700000000\n")
    podman = make_engine("podman", source_date_epoch=1_234_567_890)
    assert podman.build_flags("base:1")[:2] == ["--timestamp", "1700000000"]
    with pytest.raises(ScriptError, match="cannot read the creation time of gone:1"):
        podman.build_flags("gone:1")


TAGS = '["127.0.0.1:5000/g/grocery-base:1", "localhost/grocery-base:1"]'


@pytest.mark.parametrize(("ref", "first"), [
    ("grocery-base:1", "localhost/grocery-base:1"),  # stored under localhost/
    ("127.0.0.1:5000/g/grocery-base:1", "127.0.0.1:5000/g/grocery-base:1"),  # a registry's
])  # fmt: skip
def test_podman_makes_the_base_s_stored_name_its_first(make_engine, fake_client, ref: str,
                                                       first: str) -> None:  # fmt: skip
    """buildah writes an image's first name into what is built on it ("FROM <name>"): the
    base gets its names back with the chosen one first, in the form Podman stored it."""
    fake_client.answer(f"image inspect --format {{{{.Id}}}} {ref}", "abc\n")
    fake_client.answer("image inspect --format {{json .RepoTags}} abc", TAGS + "\n")
    make_engine("podman").name_first(ref)
    others = [t for t in json.loads(TAGS) if t != first]
    assert fake_client.calls[-2:] == [["untag", "abc"], ["tag", "abc", first, *others]]


def test_podman_leaves_no_base_nameless(make_engine, fake_client) -> None:
    """A failed tag after the untag gives every name back, then says what failed."""
    fake_client.answer("image inspect --format {{.Id}} grocery-base:1", "abc\n")
    fake_client.answer("image inspect --format {{json .RepoTags}} abc", TAGS + "\n")
    fake_client.answer("tag abc localhost/grocery-base:1", err="Error: no space\n", code=125)
    with pytest.raises(ScriptError, match="no space"):
        make_engine("podman").name_first("grocery-base:1")
    assert fake_client.calls[-1] == ["tag", "abc", *json.loads(TAGS)]


def test_a_digest_or_an_engine_without_names_changes_nothing(make_engine, fake_client) -> None:
    fake_client.answer("image inspect --format {{.Id}}", "abc\n")
    fake_client.answer("image inspect --format {{json .RepoTags}} abc", TAGS + "\n")
    make_engine("podman").name_first(f"127.0.0.1:5000/g/grocery-base@sha256:{'1' * 64}")
    make_engine("docker").name_first("grocery-base:1")
    assert not [c for c in fake_client.calls if c[0] in ("untag", "tag")]


def test_save_writes_a_docker_archive_with_either_engine(make_engine, fake_client,
                                                         tmp_path: Path) -> None:  # fmt: skip
    out = tmp_path / "image.tar"
    make_engine("docker").save("grocery-flask:uv", out)
    make_engine("podman").save("grocery-flask:uv", out)
    assert fake_client.calls == [
        ["save", "--output", str(out), "grocery-flask:uv"],
        ["save", "--output", str(out), "--format", "docker-archive", "grocery-flask:uv"],
    ]


def test_a_failed_save_is_one_line(make_engine, fake_client, tmp_path: Path) -> None:
    fake_client.answer("save", err="Error: no such image\n", code=125)
    with pytest.raises(ScriptError, match=r"^saving x:y failed: Error: no such image$"):
        make_engine("podman").save("x:y", tmp_path / "x.tar")


def test_docker_passes_docker_buildkit_and_podman_nothing(make_engine, fake_client) -> None:
    make_engine("docker").run(["info"])
    make_engine("podman").run(["info"])
    assert fake_client.envs == [{"DOCKER_BUILDKIT": "1"}, {"DOCKER_BUILDKIT": None}]


def test_only_docker_trims_the_build_cache(make_engine, fake_client, monkeypatch) -> None:
    make_engine("podman").trim_cache()
    assert fake_client.calls == []
    make_engine("docker").trim_cache()
    monkeypatch.setenv("BUILD_CACHE_KEEP", "5GB")
    make_engine("docker").trim_cache()
    prune = ["builder", "prune", "--force", "--keep-storage"]
    assert fake_client.calls == [[*prune, "20GB"], [*prune, "5GB"]]


# ---- image queries -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["docker", "podman"])
def test_inspect_image_id_and_exists(make_engine, fake_client, kind: str) -> None:
    fake_client.answer("image inspect --format {{.Id}} present", out="sha256:abc\n")
    fake_client.answer("image inspect", err="Error: no such image", code=1)
    engine = make_engine(kind)
    assert engine.image_id("present") == "sha256:abc" and engine.exists("present")
    assert engine.inspect("absent", "{{.Size}}") == "" and not engine.exists("absent")


@pytest.mark.parametrize("kind", ["docker", "podman"])
def test_tags_lists_every_tagged_image_without_podmans_localhost(make_engine, fake_client,
                                                                 kind: str) -> None:  # fmt: skip
    fake_client.answer("images --no-trunc", out="grocery-flask:uv sha256:1\n"
                       "localhost/grocery-backend:pip sha256:2\nnot-a-pair\n")  # fmt: skip
    assert make_engine(kind).tags() == {"grocery-flask:uv": "sha256:1",
                                        "grocery-backend:pip": "sha256:2"}  # fmt: skip


def test_output_fails_with_the_last_line_of_stderr(make_engine, fake_client) -> None:
    fake_client.answer("tag", err="warning\nError: image x not known\n", code=1)
    with pytest.raises(ScriptError, match=r"^`podman tag x y` failed: Error: image x not known$"):
        make_engine("podman").output(["tag", "x", "y"])
    assert make_engine("docker").output(["version"]) == ""


def test_remove_forces_and_removes_nothing_without_refs(make_engine, fake_client) -> None:
    make_engine("docker").remove()
    make_engine("docker").remove("a:b", "c:d")
    assert fake_client.calls == [["rmi", "--force", "a:b", "c:d"]]


@pytest.mark.parametrize(("kind", "native", "emulated"), [
    ("docker", "x86_64", False), ("docker", "aarch64", True),
    ("podman", "amd64", False), ("podman", "arm64", True),
])  # fmt: skip
def test_ensure_notes_emulation(make_engine, fake_client, capsys, kind: str, native: str,
                                emulated: bool) -> None:  # fmt: skip
    """The images are linux/amd64: an engine on another architecture runs them emulated."""
    engine = make_engine(kind)
    engine.start = lambda: None  # answering already: nothing to install or start
    fake_client.answer("info --format", out=f"{native}\n")
    engine.ensure()
    out = capsys.readouterr().out
    assert out.startswith(f">> checking the container engine ({kind})")
    assert ("under emulation" in out) is emulated, out
    assert fake_client.calls == [["info", "--format", engine.arch_format]]


# ---- nothing else asks which engine it talks to ------------------------------------------------
ENGINE_BRANCH = re.compile(r"""[!=]=\s*["'](?:docker|podman)["']|\bengine\s*[!=]=""")
PACKAGE = ROOT / "scripts" / "imagetools"


def test_no_engine_name_branches_outside_engines_py() -> None:
    """What differs between Docker and Podman is a method or attribute of their classes."""
    modules = sorted(p for p in PACKAGE.glob("*.py") if p.name != "engines.py")
    assert len(modules) > 10, "the package moved"
    branches = [f"{path.name}:{number}: {line.strip()}" for path in modules
                for number, line in enumerate(path.read_text().splitlines(), 1)
                if ENGINE_BRANCH.search(line)]  # fmt: skip
    assert branches == []


def test_the_engine_branch_check_finds_branches() -> None:
    for line in ('if engine == "podman":', "x = cfg.engine != 'docker'", "if engine==other:"):
        assert ENGINE_BRANCH.search(line), line
    for line in ('ENGINES = ("docker", "podman")', 'engine: str = "docker"', "engine_for(cfg)"):
        assert not ENGINE_BRANCH.search(line), line


@pytest.mark.parametrize(("args", "plain_http"), [
    (["pull", "127.0.0.1:5000/grocery/grocery-flask@sha256:ab"], True),
    (["push", "--quiet", "localhost:41234/x/grocery-flask:uv"], True),
    (["build", "--build-arg=BASE_IMAGE=127.0.0.1:40123/base@sha256:ab", "."], True),
    (["pull", "docker.io/library/python:3.11-slim"], False),
    (["run", "127.0.0.1:5000/grocery/grocery-flask:uv"], False),
])  # fmt: skip
def test_podman_talks_plain_http_only_to_a_loopback_registry(make_engine, fake_client,
                                                             args, plain_http) -> None:  # fmt: skip
    make_engine("podman").run(args, capture_output=True)
    assert ("--tls-verify=false" in fake_client.calls[0]) == plain_http
    make_engine("docker").run(args, capture_output=True)
    assert "--tls-verify=false" not in fake_client.calls[1]  # Engine 20.10 trusts loopback


def test_push_returns_the_digest_the_registry_stored(make_engine, fake_client) -> None:
    digest = "sha256:" + "a" * 64
    fake_client.answer("push 127.0.0.1:5000/g/grocery-flask:other", out="no digest here\n")
    fake_client.answer("push", out=f"uv: digest: {digest} size: 1234\n")
    assert make_engine("docker").push("127.0.0.1:5000/g/grocery-flask:uv") == digest
    with pytest.raises(ScriptError):
        make_engine("docker").push("127.0.0.1:5000/g/grocery-flask:other")


# ---- Engine.build: every image build (make's and the bench's) ------------------------------
def test_build_names_the_iidfile_and_refuses_a_stale_one(make_engine, fake_client,
                                                         tmp_path: Path) -> None:  # fmt: skip
    """A build that exits 0 but writes no image ID fails, whatever an earlier build left."""
    log = tmp_path / "logs" / "x.log"
    log.parent.mkdir()
    log.with_suffix(".iid").write_text("sha256:" + "0" * 64)  # an earlier build's
    fake_client.answer("build", "#5 DONE 1.0s\nERROR: failed to solve: exit code 2\n#6 ...\n")
    with pytest.raises(ScriptError, match=r"^building x failed: ERROR: failed to solve: exit "
                                          r"code 2 \(full log: .*x\.log\)$"):  # fmt: skip
        make_engine("docker").build(["build", "--network=none", "ctx"], log, "building x")
    (command,) = [c for c in fake_client.calls if c[0] == "build"]
    assert command == ["build", "--platform=linux/amd64", "--iidfile", str(log.with_suffix(".iid")),
                       "--network=none", "ctx"]  # fmt: skip
    assert not log.with_suffix(".iid").exists()


def test_a_build_without_output_says_so(make_engine, fake_client, tmp_path: Path) -> None:
    fake_client.answer("build", "", "", 1)
    with pytest.raises(ScriptError, match=r"^b failed: no output \(full log: "):
        make_engine("podman").build(["build", "ctx"], tmp_path / "new" / "b.log", "b")


FAKE_DOCKERD = """#!/bin/sh
# As the real one: refuses to start over an existing pid file, else writes it and serves.
[ "$1" = --exit ] && exit 0
if [ -n "$FAIL" ]; then echo "failed to start daemon: $FAIL" >&2; exit 1; fi
if [ -e "{pidfile}" ]; then
  echo 'time="..." level=info msg="Starting up"' >&2
  echo "failed to start daemon: pid file found, ensure docker is not running or delete" \
       "{pidfile}" >&2
  exit 1
fi
echo $$ > "{pidfile}"
touch "{up}"
sleep 5  # no exec: the process stays called dockerd
"""


@pytest.fixture
def dockerd(tmp_path: Path, make_engine, monkeypatch: pytest.MonkeyPatch):
    """A Docker engine whose dockerd is a fake (as the real one about its pid file) and which
    answers once that dockerd is up; pid files and log under tmp_path."""
    up = tmp_path / "dockerd-up"
    engine = make_engine("docker")
    engine.pidfile = tmp_path / "docker.pid"
    engine.containerd_pidfile = tmp_path / "containerd.pid"
    engine.log = tmp_path / "dockerd.log"
    engine.dockerd = str(tmp_path / "dockerd")  # its process is called dockerd, as the real one
    Path(engine.dockerd).write_text(FAKE_DOCKERD.format(pidfile=engine.pidfile, up=up))
    Path(engine.dockerd).chmod(0o755)
    monkeypatch.setattr(engine, "answers", up.exists)
    return engine


@pytest.mark.parametrize("stale", ["99999999", "", "not a pid", "self", "zombie"])
def test_a_stale_dockerd_pid_file_is_removed_before_dockerd_starts(dockerd, stale: str,
                                                                   capsys) -> None:  # fmt: skip
    """A dockerd killed with its session leaves /var/run/docker.pid; the next `make engine`
    failed on it ("pid file found", CI of 2026-12-05). A pid that is gone, or is not dockerd's
    (this test's own python), is stale."""
    if stale == "zombie":  # a dockerd killed, its parent not having reaped it yet
        zombie = subprocess.Popen([dockerd.dockerd, "--exit"])
        deadline = time.monotonic() + 10
        while Path(f"/proc/{zombie.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        stale = str(zombie.pid)
    dockerd.pidfile.write_text(str(os.getpid()) if stale == "self" else stale)
    dockerd.containerd_pidfile.write_text("99999999")
    dockerd.launch_dockerd(wait=20)
    assert dockerd.answers()
    assert not dockerd.containerd_pidfile.exists()
    said = capsys.readouterr().out
    assert f"removing {dockerd.pidfile}: its dockerd is no longer running" in said


def test_a_running_dockerd_s_pid_file_is_kept_and_named(dockerd, tmp_path: Path) -> None:
    """A live process called dockerd owns its pid file: it is neither removed nor raced by a
    second dockerd; the error names it."""
    live = subprocess.Popen([dockerd.dockerd])  # the fake writes its pid file and sleeps
    try:
        deadline = time.monotonic() + 10
        while not (tmp_path / "dockerd-up").exists():  # touched after the pid file is written
            assert time.monotonic() < deadline
            time.sleep(0.05)
        (tmp_path / "dockerd-up").unlink()  # it stops answering, but still runs
        said = rf"^a dockerd \(pid {live.pid}\) runs but does not answer; see .*dockerd\.log"
        with pytest.raises(ScriptError, match=rf"{said}, stop it \(kill {live.pid}\)"):
            dockerd.launch_dockerd(wait=60)
        assert dockerd.pidfile.read_text().strip() == str(live.pid)
        assert not (tmp_path / "dockerd.log").exists()  # no second dockerd was started
    finally:
        live.kill()
        live.wait()


def test_a_dockerd_that_exits_fails_at_once_with_its_last_line(dockerd, monkeypatch) -> None:
    """Not after the 90 s wait, and not only "see the log"."""
    monkeypatch.setenv("FAIL", "Error initializing network controller")
    started = time.monotonic()
    with pytest.raises(ScriptError, match=r"^dockerd exited \(1\): failed to start daemon: "
                       r"Error initializing network controller; see .*dockerd\.log$"):  # fmt: skip
        dockerd.launch_dockerd(wait=60)
    assert time.monotonic() - started < 30
