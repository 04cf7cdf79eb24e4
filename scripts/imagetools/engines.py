"""The container engines: one class each, owning every flag that differs between them.

`engine_for(cfg)` gives a Docker or a Podman object. Both talk to their client through
`run()`, which names the images' platform on build, pull, run and create. `ensure()` makes
the engine answer: an engine that already answers (local, DOCKER_HOST or a docker context) is
used as it is; with none, on Debian/Ubuntu as root, Debian's docker.io (Engine 20.10 with
BuildKit) or podman is installed and started, saying so; elsewhere it explains what to do.
Nothing outside this module asks which engine it is talking to.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

from .common import ROOT, ScriptError, note, step, stop
from .config import Config

# What engines call their architecture, as a platform's architecture.
ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
PLATFORM_COMMANDS = ("build", "pull", "run", "create")


def install(packages: list[str]) -> None:
    subprocess.run([str(ROOT / "scripts" / "ensure-apt.sh"), *packages], check=True)


class Engine:
    """A container engine's client. Subclasses say how their engine differs."""

    name = ""
    arch_format = ""
    # Is an image's ID the same on every machine that builds the same inputs?
    bit_reproducible = False
    # How many tools may commit containers through docker_api() at once.
    api_commits_at_once = 3

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg

    def client(self) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    @cached_property
    def command(self) -> tuple[list[str], dict[str, str]]:
        return self.client()

    def platform_flags(self, command: str) -> list[str]:
        return [f"--platform={self.cfg.platform}"]

    def argv(self, args: list[str]) -> list[str]:
        """The client's command line for args, the platform named where it applies."""
        if args and args[0] in PLATFORM_COMMANDS and not any(a.startswith("--platform")
                                                             for a in args):  # fmt: skip
            args = [args[0], *self.platform_flags(args[0]), *args[1:]]
        return [*self.command[0], *args]

    def run(self, args: list[str], **kwargs) -> subprocess.CompletedProcess:
        """Run the client with args; kwargs go to subprocess.run (check=False by default)."""
        env = dict(os.environ, **self.command[1], **kwargs.pop("env", {}))
        kwargs.setdefault("check", False)
        return subprocess.run(self.argv(args), env=env, **kwargs)

    def output(self, args: list[str], **kwargs) -> str:
        """stdout of a command that must succeed (one readable line when it does not)."""
        result = self.run(args, capture_output=True, text=True, **kwargs)
        if result.returncode != 0:
            reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise ScriptError(f"`{self.name} {' '.join(args[:3])}` failed: {reason}")
        return result.stdout.strip()

    def build(self, args: list[str], log: Path, what: str) -> tuple[float, str]:
        """Run a build (args: `build`, flags, the context), its output into log; return the
        seconds it took and the image's ID, or fail with the log's last error line."""
        log.parent.mkdir(parents=True, exist_ok=True)
        iidfile = log.with_suffix(".iid")
        iidfile.unlink(missing_ok=True)
        start = time.monotonic()
        with log.open("w") as handle:
            result = self.run([args[0], "--iidfile", str(iidfile), *args[1:]], stdout=handle,
                              stderr=subprocess.STDOUT)  # fmt: skip
        seconds = time.monotonic() - start
        if result.returncode != 0 or not iidfile.is_file():
            lines = [ln for ln in log.read_text().splitlines() if ln.strip()] or ["no output"]
            reason = next((ln for ln in reversed(lines) if "error" in ln.lower()), lines[-1])
            raise ScriptError(f"{what} failed: {reason.strip()[:300]} (full log: {log})")
        return seconds, iidfile.read_text().strip()

    def answers(self) -> bool:
        try:
            return self.run(["info"], capture_output=True, timeout=30).returncode == 0
        except (ScriptError, subprocess.TimeoutExpired):
            return False

    def inspect(self, ref: str, template: str) -> str:
        """A field of an image (Go template), or "" when there is no such image."""
        result = self.run(["image", "inspect", "--format", template, ref],
                          capture_output=True, text=True)  # fmt: skip
        return result.stdout.strip() if result.returncode == 0 else ""

    def image_id(self, ref: str) -> str:
        return self.inspect(ref, "{{.Id}}")

    def exists(self, ref: str) -> bool:
        return bool(self.image_id(ref))

    def name_first(self, ref: str) -> None:
        """Make the tag ref the image's first name, where the engine writes that into the
        images built on it (Podman); no-op by default."""

    def layers(self, ref: str) -> list[str]:
        """The image's layers (diff IDs, base first); [] when there is no such image."""
        return json.loads(self.inspect(ref, "{{json .RootFS.Layers}}") or "[]") or []

    def tags(self) -> dict[str, str]:
        """Every tagged image: {repository:tag: image ID}."""
        result = self.run(["images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"],
                          capture_output=True, text=True)  # fmt: skip
        pairs = (line.split() for line in result.stdout.splitlines())
        return {p[0].removeprefix("localhost/"): p[1] for p in pairs if len(p) == 2}

    def remove(self, *refs: str) -> None:
        # Each name once: `podman rmi --force NAME NAME` deletes the image with all its tags.
        if refs:
            self.run(["rmi", "--force", *dict.fromkeys(refs)], capture_output=True)

    def build_flags(self, base: str = "") -> list[str]:
        """Flags of every image build (reproducibility, progress); base: the image it is
        built on, when it has one."""
        return []

    def cache_flags(self, ref: str) -> list[str]:
        """Build flags that take the layer cache from CACHE_REPO (ref: the image's name
        there) and, where the engine can, give it back."""
        return []

    def export_cache(self, image: str, ref: str) -> None:
        """Hand a built image's cache to CACHE_REPO, where the build flags did not."""

    def save(self, ref: str, path: Path) -> None:
        result = self.run(["save", "--output", str(path), *self.save_flags(), ref],
                          capture_output=True, text=True)  # fmt: skip
        if result.returncode != 0:
            raise ScriptError(f"saving {ref} failed: {result.stderr.strip()}")

    def save_flags(self) -> list[str]:
        return []

    def trim_cache(self) -> None:
        """Keep the builder's cache bounded after --no-cache builds (no-op by default)."""

    def push(self, ref: str) -> str:
        """Push ref to its registry; return the manifest digest the registry stored."""
        raise NotImplementedError

    def skopeo_destination(self, ref: str) -> list[str]:
        """skopeo's name for ref in this engine's storage, and the flags copying there needs."""
        raise NotImplementedError

    def trust_loopback_registry(self, addr: str) -> None:
        """Let the engine talk plain HTTP to a registry on this machine's loopback."""

    def compose(self) -> list[str]:
        raise NotImplementedError

    @contextmanager
    def docker_api(self) -> Iterator[dict[str, str]]:
        """The environment in which a tool that speaks the Docker Engine API (syft's
        `docker:` source, container-structure-test) sees this engine's images."""
        yield {}

    def start(self) -> None:
        raise NotImplementedError

    def ensure(self) -> None:
        """Make sure the engine answers, installing and starting it on a fresh Debian."""
        step(f"checking the container engine ({self.name})")
        self.start()
        result = self.run(["info", "--format", self.arch_format], capture_output=True,
                          text=True, timeout=30)  # fmt: skip
        native, wanted = result.stdout.strip(), self.cfg.platform.split("/")[1]
        if native and ARCHES.get(native, native) != wanted:
            note(
                f"this {self.name} engine runs on {native}: the images are built and run for "
                f"{self.cfg.platform} under emulation (several times slower). If a step fails "
                "with 'exec format error', turn emulation on: Docker Desktop has it built in "
                "(Apple silicon: Settings > General > Rosetta); on Linux install "
                "qemu-user-static"
            )


def _client_version(client: str) -> str:
    try:
        result = subprocess.run([client, "--version"], capture_output=True, text=True,
                                check=False, timeout=30)  # fmt: skip
    except (subprocess.TimeoutExpired, OSError):
        return ""
    found = re.search(r"version (\d+\.\d+\.\d+)", result.stdout)  # "Docker version 20.10.24+..."
    return found[1] if found else ""


class Docker(Engine):
    name = "docker"
    arch_format = "{{.Architecture}}"
    log = Path(os.environ.get("DOCKERD_LOG", "/var/log/grocery-dockerd.log"))
    dockerd = "/usr/sbin/dockerd"
    pidfile = Path("/var/run/docker.pid")
    containerd_pidfile = Path("/run/docker/containerd/containerd.pid")

    def client(self) -> tuple[list[str], dict[str, str]]:
        """Docker builds need BuildKit (RUN --mount). A client with the buildx plugin drives
        it; so does a pre-23 client (Debian's docker.io 20.10) with DOCKER_BUILDKIT=1. The
        28.x client without buildx cannot, so it is skipped for another client here."""
        candidates = [os.environ["DOCKER"]] if os.environ.get("DOCKER") else []
        candidates += [c for c in (shutil.which("docker"), "/usr/bin/docker") if c]
        for client in dict.fromkeys(candidates):
            version = _client_version(client) if shutil.which(client) else ""
            if not version:
                continue
            major = version.split(".")[0]
            if (major.isdigit() and int(major) < 23) or subprocess.run(
                [client, "buildx", "version"], capture_output=True, check=False, timeout=30
            ).returncode == 0:
                return [client], {"DOCKER_BUILDKIT": "1"}
        raise ScriptError(
            "no docker client here can drive BuildKit: install the buildx plugin, or Debian's "
            "docker.io (its 20.10 client works with DOCKER_BUILDKIT=1), or use ENGINE=podman"
        )

    def build_flags(self, base: str = "") -> list[str]:
        return ["--progress=plain"]

    def trim_cache(self) -> None:
        """BuildKit keeps every no-cache build's layers as cache records: a few dozen cold
        builds of the torch images fill tens of GB. Keep the most recently used
        BUILD_CACHE_KEEP (20GB by default); the images themselves are never touched."""
        keep = os.environ.get("BUILD_CACHE_KEEP", "20GB")
        self.run(["builder", "prune", "--force", "--keep-storage", keep], capture_output=True)

    def push(self, ref: str) -> str:
        # Engine 20.10 trusts loopback registries over HTTP; its last line has the digest.
        found = re.findall(r"digest: (sha256:[0-9a-f]{64})", self.output(["push", ref]))
        if not found:
            raise ScriptError(f"`docker push {ref}` named no digest")
        return found[-1]

    def cache_flags(self, ref: str) -> list[str]:
        # Engine 20.10's BuildKit has no registry cache exporter without buildx: the image
        # itself carries its cache (inline, the final stage's steps only), pushed to ref.
        return ["--build-arg=BUILDKIT_INLINE_CACHE=1", f"--cache-from={ref}"]

    def export_cache(self, image: str, ref: str) -> None:
        self.output(["tag", image, ref])
        self.push(ref)

    def skopeo_destination(self, ref: str) -> list[str]:
        # The daemon keeps no signatures: the policy checks them on the way in.
        return [f"docker-daemon:{ref}", "--remove-signatures"]

    def compose(self) -> list[str]:
        """`docker compose` (v2 plugin) or `docker-compose` (Debian's, installed if missing)."""
        command, _ = self.command
        if self.run(["compose", "version"], capture_output=True).returncode == 0:
            return [*command, "compose"]
        if not shutil.which("docker-compose") and os.geteuid() == 0:
            step("installing Debian's docker-compose")
            install(["docker-compose"])
        if shutil.which("docker-compose"):
            return ["docker-compose"]
        raise ScriptError("neither `docker compose` nor docker-compose is installed")

    def start(self) -> None:
        try:
            has_client = bool(self.command)
        except ScriptError:
            has_client = False
        if has_client and self.answers():
            where = os.environ.get("DOCKER_HOST") or "the local socket or current docker context"
            note(f"docker engine answers at {where}; using it as it is")
            return
        if os.environ.get("DOCKER_HOST"):
            raise ScriptError(f"DOCKER_HOST={os.environ['DOCKER_HOST']} does not answer")
        if os.geteuid() != 0 or not Path("/usr/bin/apt-get").exists():
            raise ScriptError(
                "no docker engine answers; start one (or set DOCKER_HOST), or run as root on "
                "Debian/Ubuntu so `make images` can install docker.io, or use ENGINE=podman"
            )
        step("no docker engine answers: installing Debian's docker.io and starting dockerd")
        install(["docker.io"])
        self.__dict__.pop("command", None)
        if not self.answers():
            self.launch_dockerd()
        note(f"dockerd started (log: {self.log}); it stops with this machine's session")

    def launch_dockerd(self, wait: float = 90) -> None:
        """Start dockerd and wait until it answers. A dockerd killed with its machine's
        session leaves its pid file behind, and a new one refuses to start ("pid file found");
        a pid file whose process is gone, or is no dockerd, is stale and removed first. A
        dockerd that runs but does not answer is named, not replaced."""
        if self.pidfile.exists() and not _stale_pidfile(self.pidfile, "dockerd"):
            pid = self.pidfile.read_text().strip()
            raise ScriptError(f"a dockerd (pid {pid}) runs but does not answer; see {self.log}, "
                              f"stop it (kill {pid}) and run this again")  # fmt: skip
        for pidfile, name in ((self.pidfile, "dockerd"), (self.containerd_pidfile, "containerd")):
            if _stale_pidfile(pidfile, name):
                note(f"removing {pidfile}: its {name} is no longer running")
                pidfile.unlink()
        with self.log.open("ab") as log:
            start = log.tell()
            process = subprocess.Popen([self.dockerd], stdout=log, stderr=log,
                                       start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + wait
        while not self.answers():
            if process.poll() is not None:
                said = _last_line(self.log, start) or "(nothing)"
                raise ScriptError(f"dockerd exited ({process.returncode}): {said}; "
                                  f"see {self.log}")  # fmt: skip
            if time.monotonic() > deadline:
                raise ScriptError(f"dockerd did not answer within {wait:.0f} s; see {self.log}")
            time.sleep(1)


def _stale_pidfile(pidfile: Path, name: str) -> bool:
    """pidfile exists and names no running process called name (a zombie, killed but not yet
    reaped, runs no more)."""
    try:
        pid = int(pidfile.read_text().strip() or 0)
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text() if pid > 0 else ""
    except OSError:
        return True
    # "pid (comm) state ...": comm may hold spaces and parentheses, the state follows the last ")"
    comm, _, rest = stat.partition("(")[2].rpartition(")")
    return comm != name or rest.split()[:1] == ["Z"]


def _last_line(path: Path, start: int) -> str:
    """The last non-empty line written to path after offset start."""
    with path.open("rb") as handle:
        handle.seek(start)
        lines = handle.read().decode(errors="replace").splitlines()
    return next((line.strip() for line in reversed(lines) if line.strip()), "")


# Rootful Podman raises every container's open-files and process limits to these values
# unless containers.conf sets others; where this process may not raise its own limits that
# far (some VMs and CI sandboxes), every `podman run` fails with "error setting rlimit".
PODMAN_RLIMITS = ((resource.RLIMIT_NOFILE, 1_048_576), (resource.RLIMIT_NPROC, 4_194_304))
PODMAN_ULIMITS_CONF = Path("/etc/containers/containers.conf.d/50-grocery-ulimits.conf")


def _can_raise(limit: int, value: int) -> bool:
    code = f"import resource; resource.setrlimit({limit}, ({value}, {value}))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


LOOPBACK = re.compile(r"(?:^|[=@\s])(?:127\.0\.0\.1|localhost):\d+/")


class Podman(Engine):
    name = "podman"
    arch_format = "{{.Host.Arch}}"
    bit_reproducible = True
    # Podman 4.3's API, committing containers for two clients at once, loses the empty layer
    # now and then ("locating layer for blob sha256:5f70bf18...: layer not known").
    api_commits_at_once = 1

    def client(self) -> tuple[list[str], dict[str, str]]:
        if not shutil.which("podman"):
            raise ScriptError("podman is not installed (Debian/Ubuntu: apt-get install podman)")
        return ["podman"], {}

    def platform_flags(self, command: str) -> list[str]:
        # With a platform, Podman's default pull policy becomes "newer": a tag that also
        # exists in a registry would be replaced by the registry's image before it runs.
        never = ["--pull=never"] if command in ("run", "create") else []
        return [*super().platform_flags(command), *never]

    def build_flags(self, base: str = "") -> list[str]:
        # --timestamp pins every layer's file times and the image's created time, and the OCI
        # format records no build-container id or hostname: the same inputs give the same
        # image ID. PODMAN_FORMAT=docker keeps HEALTHCHECK (OCI has no field for it) at the
        # price of those two per-build fields in the config.
        # On a base, the time is the base's own, not the commit's: buildah does not key its
        # layer cache on --timestamp, so a step reused from an earlier commit's build would
        # keep that build's times beside this one's, an image no build from nothing makes.
        # One time per base keeps every build on it in agreement (a new base misses the
        # cache anyway); the commit's time is in the `created` label.
        stamp = self.created(base) if base else self.cfg.source_date_epoch
        return ["--timestamp", str(stamp), "--layers", "--format", self.cfg.podman_format]

    def name_first(self, ref: str) -> None:
        # buildah writes the base's first name in storage into every image built on it (the
        # history's "FROM <name>"), so the same base under another first name gives another
        # image ID. A pull by digest puts its own name first (a registry test, verify-published,
        # a user's pull), a tag goes last: untag, then tag with ref first.
        image = self.image_id(ref)
        tags = json.loads(self.inspect(image, "{{json .RepoTags}}") or "[]") or [] if image else []
        # The stored form of ref (localhost/..., docker.io/library/...); none for a digest.
        forms = (ref, f"localhost/{ref}", f"docker.io/library/{ref}", f"docker.io/{ref}")
        wanted = next((form for form in forms if form in tags), "")
        if not wanted:
            return
        self.output(["untag", image])
        try:
            self.output(["tag", image, wanted, *(t for t in tags if t != wanted)])
        except ScriptError:
            self.run(["tag", image, *tags], capture_output=True)  # its names back, as they were
            raise

    def created(self, ref: str) -> int:
        """When the image says it was created, in seconds since the epoch."""
        found = self.inspect(ref, "{{.Created.Unix}}")
        if not found.isdigit():
            raise ScriptError(f"cannot read the creation time of {ref} (is it there?)")
        return int(found)

    def cache_flags(self, ref: str) -> list[str]:
        # One repository for every step of every image (tags: buildah's cache keys). Podman
        # 4.3 pushes there but never pulls from it (--cache-from is read by 4.4 and later).
        repository = ref.rsplit("/", 1)[0]
        return [f"--cache-from={repository}", f"--cache-to={repository}"]

    def save_flags(self) -> list[str]:
        return ["--format", "docker-archive"]

    def run(self, args: list[str], **kwargs) -> subprocess.CompletedProcess:
        # A registry on this machine's loopback speaks plain HTTP (make registry, the tests):
        # Podman asks for TLS unless told not to.
        if args and args[0] in ("build", "pull", "push") and any(map(LOOPBACK.search, args)):
            args = [args[0], "--tls-verify=false", *args[1:]]
        return super().run(args, **kwargs)

    def push(self, ref: str) -> str:
        digestfile = Path(f"/tmp/imagetools-digest-{os.getpid()}")  # noqa: S108 - private name
        try:
            self.output(["push", "--quiet", "--digestfile", str(digestfile), ref])
            return digestfile.read_text().strip()
        finally:
            digestfile.unlink(missing_ok=True)

    def trust_loopback_registry(self, addr: str) -> None:
        """For the user's own podman commands: registries.conf marks make registry's address
        as plain HTTP (the tooling passes --tls-verify=false itself)."""
        conf = Path(f"/etc/containers/registries.conf.d/50-grocery-{addr.replace(':', '-')}.conf")
        if os.geteuid() == 0 and not conf.exists():
            conf.parent.mkdir(parents=True, exist_ok=True)
            conf.write_text(f'# Written by grocery-ml-containers: its local registry (HTTP).\n'
                            f'[[registry]]\nlocation = "{addr}"\ninsecure = true\n')  # fmt: skip
            note(f"podman may use the registry at {addr} over HTTP: wrote {conf}")

    def skopeo_destination(self, ref: str) -> list[str]:
        # Signatures kept in storage would make a later push of the same image refuse to
        # recompress it ("would invalidate signatures"): the policy checks them on the way in.
        return [f"containers-storage:{ref}", "--remove-signatures"]

    def compose(self) -> list[str]:
        if not shutil.which("podman-compose") and os.geteuid() == 0:
            step("installing Debian's podman-compose")
            install(["podman-compose"])
        # Services find each other by name: on CNI networks (Debian 12's Podman 4.3) only
        # with the dnsname plugin, which apt installs as a mere recommendation.
        backend = self.output(["info", "--format", "{{.Host.NetworkBackend}}"]).strip()
        if backend == "cni" and not Path(CNI_DNSNAME).exists():
            if os.geteuid() != 0:
                raise ScriptError(f"{CNI_DNSNAME} is missing: the services cannot find each "
                                  f"other by name (apt-get install {DNSNAME_PACKAGE})")  # fmt: skip
            step(f"installing Debian's {DNSNAME_PACKAGE} (container names on CNI networks)")
            install([DNSNAME_PACKAGE])
        if not shutil.which("podman-compose"):
            raise ScriptError("podman-compose is not installed (apt-get install podman-compose)")
        # Debian 12's podman-compose 1.0.3 ignores pids_limit (later releases read it): give
        # every container compose.yaml's limit (256 for each service; the stack test checks it).
        return ["podman-compose", "--podman-run-args=--pids-limit=256"]

    @contextmanager
    def docker_api(self) -> Iterator[dict[str, str]]:
        """Podman serves the Docker API on a socket of its own while the tool runs."""
        with tempfile.TemporaryDirectory(prefix="podman-api-") as folder:
            socket, log = Path(folder) / "podman.sock", Path(folder) / "service.log"
            with log.open("w") as sink:
                service = subprocess.Popen(
                    [*self.command[0], "system", "service", "--time=0", f"unix://{socket}"],
                    stdout=subprocess.DEVNULL, stderr=sink)  # fmt: skip
            try:
                deadline = time.monotonic() + 30
                while not socket.exists():
                    if service.poll() is not None or time.monotonic() > deadline:
                        service.kill()
                        why = log.read_text().strip()
                        raise ScriptError(f"`podman system service` did not start: {why[-300:]}")
                    time.sleep(0.1)
                yield {"DOCKER_HOST": f"unix://{socket}"}
            finally:
                stop(service, timeout=30)

    def start(self) -> None:
        if not shutil.which("podman"):
            step("podman is missing: installing Debian's podman")
            install(["podman"])
            self.__dict__.pop("command", None)
        if not self.answers():
            raise ScriptError("podman is installed but `podman info` fails")
        if not all(_can_raise(*limit) for limit in PODMAN_RLIMITS):
            self._write_ulimits()
        note("podman answers")

    @staticmethod
    def _write_ulimits() -> None:
        """Where Podman's default limits cannot be set, give containers ones that can."""
        if PODMAN_ULIMITS_CONF.exists() or os.geteuid() != 0:
            return
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        PODMAN_ULIMITS_CONF.parent.mkdir(parents=True, exist_ok=True)
        PODMAN_ULIMITS_CONF.write_text(
            "# Written by grocery-ml-containers (scripts/imagetools): this machine does not let\n"
            "# Podman raise containers' limits to its defaults (1048576 files, 4194304 procs).\n"
            f'[containers]\ndefault_ulimits = ["nofile={nofile}:{nofile}", "nproc=4096:4096"]\n'
        )
        note(f"this machine caps resource limits below Podman's defaults: wrote "
             f"{PODMAN_ULIMITS_CONF}")  # fmt: skip


CNI_DNSNAME = "/usr/lib/cni/dnsname"
DNSNAME_PACKAGE = "golang-github-containernetworking-plugin-dnsname"


def engine_for(cfg: Config) -> Engine:
    return {"docker": Docker, "podman": Podman}[cfg.engine](cfg)
