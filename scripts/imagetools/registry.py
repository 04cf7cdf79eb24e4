"""A registry of one's own, and publishing to any: `make registry`, `make registry-down`,
`make push REGISTRY=host[:port]/prefix`.

`registry` starts Debian's `docker-registry` (CNCF distribution 2.8, installed when missing)
on REGISTRY_ADDR (127.0.0.1:5000) with its storage under build/registry/. `push` tags every
image as `<registry>/<prefix><app>:<variant>` and `:<variant>-<revision>`, pushes both, and
records in build/published.json what is now there: repository, tags, manifest digest, config
digest (the image ID), platform, revision, SOURCE_DATE_EPOCH, the sha256 of the lock, and the
base it was built on: BASE_IMAGE as pinned, or the local base, pushed beside the images
(`<registry>/<LOCAL_BASE>`) so that `verify-published` rebuilds on exactly that base, here or
on any machine. An image is recorded only once its push has finished and the registry serves
its manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

from . import explain
from .apps import parse_selection
from .common import ROOT, ScriptError, note, read_json, shown, step, write_json
from .config import Config
from .engines import Engine, engine_for
from .images import OCI
from .signing import reason, skopeo

MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])  # fmt: skip
CONFIG = """version: 0.1
log: {{level: warn}}
storage:
  filesystem: {{rootdirectory: {root}}}
  delete: {{enabled: true}}
http: {{addr: "{addr}"}}
"""


# What an engine's failed push says, and what it means (Docker 20.10 and Podman 4.3 wording).
PUSH_FAILURES = (
    (("connection refused", "no such host", "i/o timeout", "network is unreachable",
      "server misbehaving", "no route to host"), "cannot reach the registry {host}"),
    (("unauthorized", "authentication required", "no basic auth credentials", "denied"),
     "the registry {host} refused the credentials: log in with `{engine} login {host}`, "
     "with an account that may push to {repository}"),
    (("500 internal server error", "502 bad gateway", "503 service unavailable",
      "507 insufficient storage", "no space left"),
     "the registry {host} failed to store it (a server error: a full disk or broken storage "
     "on its side, which its log names)"),
)  # fmt: skip


def push_failure(error: str, engine: str, ref: str) -> str:
    """One line for a failed push of ref: what it means, then what the engine said."""
    repository = ref.rsplit(":", 1)[0]
    host = repository.split("/")[0]
    for needles, meaning in PUSH_FAILURES:
        if any(needle in error.lower() for needle in needles):
            what = meaning.format(host=host, engine=engine, repository=repository)
            return f"pushing {ref}: {what}; nothing recorded for it ({error})"
    return f"pushing {ref} failed; nothing recorded for it ({error})"


def registry_dir(cfg: Config) -> Path:
    return cfg.build_dir / "registry"


def api(registry: str, path: str, method: str = "GET") -> tuple[dict, bytes]:
    """(headers, body) of a registry API call over plain HTTP (a loopback registry)."""
    host = registry.split("/")[0]
    request = urllib.request.Request(f"http://{host}/v2/{path}", method=method,
                                     headers={"Accept": MANIFEST_TYPES})  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - http by design
        return dict(response.headers), response.read()


def answers(addr: str) -> bool:
    try:
        api(addr, "")
    except urllib.error.HTTPError as exc:
        return exc.code == 401  # a registry that wants credentials
    except (OSError, urllib.error.URLError):
        return False
    return True


def start(cfg: Config, addr: str, root: Path, htpasswd: Path | None = None) -> None:
    """Start a registry on addr with its data in root, unless one answers there already;
    with htpasswd (bcrypt entries), it answers only the accounts listed there."""
    if answers(addr):
        note(f"a registry answers at {addr}; using it as it is")
        return
    subprocess.run([str(ROOT / "scripts" / "ensure-apt.sh"), "docker-registry"], check=True)
    root.mkdir(parents=True, exist_ok=True)
    config = CONFIG.format(root=root / "data", addr=addr)
    if htpasswd:
        config += f"auth: {{htpasswd: {{realm: grocery, path: {htpasswd}}}}}\n"
    (root / "config.yml").write_text(config)
    with (root / "registry.log").open("ab") as log:
        server = subprocess.Popen(["docker-registry", "serve", str(root / "config.yml")],
                                  stdout=log, stderr=log, start_new_session=True)  # fmt: skip
    (root / "registry.pid").write_text(f"{server.pid}\n")
    deadline = time.monotonic() + 30
    while not answers(addr):
        if server.poll() is not None or time.monotonic() > deadline:
            raise ScriptError(
                f"the registry did not start on {addr}; see {shown(root)}/registry.log"
            )
        time.sleep(0.2)
    note(f"registry at {addr}, data in {shown(root / 'data')} (make registry-down stops it)")


def stop(root: Path) -> None:
    pidfile = root / "registry.pid"
    if not pidfile.is_file():
        note("no registry started here is running")
        return
    pid = int(pidfile.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)
    except ProcessLookupError:
        pass
    pidfile.unlink()
    note(f"registry stopped; its data stays in {shown(root / 'data')}")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def blobs(root: Path) -> dict[str, int]:
    """{digest: size} of the blobs a local registry stores (to count what a push uploaded)."""
    found = (root / "data").glob("docker/registry/v2/blobs/sha256/*/*/data")
    return {p.parent.name: p.stat().st_size for p in found}


def push_refs(engine: Engine, image: str, refs: list[str]) -> str:
    """Tag image as each of refs and push them; return the manifest digest (one line on failure)."""
    digest = ""
    for ref in refs:
        engine.output(["tag", image, ref])
        try:
            digest = engine.push(ref)
        except ScriptError as exc:
            raise ScriptError(push_failure(str(exc), engine.name, ref)) from None
    return digest


def recorded_base(engine: Engine, app: str, variant: str, image: str) -> str:
    """The ID of the base image was built on, from its build record (explain), or "" when
    there is no record of that image."""
    try:
        record = json.loads(explain.record_path(engine.cfg, app, variant).read_text())
    except (OSError, ValueError):
        return ""
    recorded = str(record.get("image_id") or "")
    if not image or not recorded or not image.endswith(recorded[-64:]):
        return ""
    found = {s.get("base image") for s in record.get("steps", {}).values() if isinstance(s, dict)}
    found.discard(None)
    return found.pop() if len(found) == 1 else ""


def published_base(engine: Engine, app: str, variant: str,
                   pushed: dict[str, str]) -> tuple[str, str]:  # fmt: skip
    """The base the image was built on, as others can pull it, and the name it was built FROM
    (buildah writes that name into the image's history): BASE_IMAGE (pinned by digest by
    default), or LOCAL_BASE pushed to REGISTRY once (pushed: base ID -> ref@digest). Its
    build record says which; without one, the base whose layers the image starts with (the
    multistage runtime starts from scratch: it needs the record)."""
    cfg = engine.cfg
    tag = cfg.tag(app, variant)
    layers, built_on = engine.layers(tag), recorded_base(engine, app, variant, engine.image_id(tag))
    for base in (cfg.base_image, cfg.local_base):
        if built_on:
            if not built_on.endswith(engine.image_id(base)[-64:] or "-"):
                continue
        else:
            base_layers = engine.layers(base)
            if not base_layers or layers[: len(base_layers)] != base_layers:
                continue
        if base == cfg.base_image:
            return base, base
        base_id = engine.image_id(base)
        if base_id not in pushed:
            tagged = ":" in base.split("/")[-1]
            name = base.rpartition(":")[0] if tagged else base
            first = name.split("/")[0]
            if "/" in name and ("." in first or ":" in first or first == "localhost"):
                name = name.split("/", 1)[1]  # its own registry's host: not part of the path
            repository = f"{cfg.registry}/{name}"
            ref = f"{repository}:{base.rpartition(':')[2] if tagged else 'latest'}"
            step(f"pushing the local base {base} to {ref} (a rebuild needs the same base)")
            pushed[base_id] = f"{repository}@{push_refs(engine, base, [ref])}"
        return pushed[base_id], base
    raise ScriptError(f"{tag} is not built on BASE_IMAGE ({cfg.base_image}) or LOCAL_BASE "
                      f"({cfg.local_base}) as they are now (the base was rebuilt since, or the "
                      "image has no build record here): `make images` builds it again; nothing "
                      "recorded for it")  # fmt: skip


def push(cfg: Config, apps: list[str], variants: list[str], out: Path) -> list[dict]:
    if not cfg.registry:
        raise ScriptError("set REGISTRY=host[:port]/prefix, e.g. REGISTRY=127.0.0.1:5000/grocery")
    engine, short = engine_for(cfg), cfg.revision[:12]
    published = read_json(out, {})
    local = registry_dir(cfg)
    records, bases = [], {}
    for app in apps:
        lock = sha256(ROOT / "requirements" / f"{app}.txt")
        for variant in variants:
            tag = cfg.tag(app, variant)
            image = engine.image_id(tag)
            if not image:
                raise ScriptError(f"{tag} does not exist: run `make images` first")
            # The revision and time the image says it was built at: Make keeps an image whose
            # inputs did not change since an earlier commit, and it is published as that.
            labels = json.loads(engine.inspect(tag, "{{json .Config.Labels}}") or "{}") or {}
            revision = labels.get(f"{OCI}.revision") or cfg.revision
            created = labels.get(f"{OCI}.created")
            epoch = (int(datetime.strptime(created, "%Y-%m-%dT%H:%M:%S%z").timestamp())
                     if created else cfg.source_date_epoch)  # fmt: skip
            if revision != cfg.revision:
                note(f"{tag} was built at {revision[:12]}, not at {short}: published as such")
            base, base_name = published_base(engine, app, variant, bases)
            repository = f"{cfg.registry}/{cfg.image_prefix}{app}"
            refs = [f"{repository}:{variant}", f"{repository}:{variant}-{revision[:12]}"]
            before, started = blobs(local), time.monotonic()
            step(f"pushing {tag} to {refs[0]} and {refs[1]}")
            digest = push_refs(engine, tag, refs)
            # skopeo reads the manifest as the engine would: its credentials, TLS, tokens.
            served = skopeo(["inspect", "--raw", f"docker://{repository}@{digest}"])
            if served.returncode != 0:
                raise ScriptError(f"{refs[0]}: the registry does not serve {digest}: "
                                  f"{reason(served)}; nothing recorded for it")  # fmt: skip
            manifest = json.loads(served.stdout)
            size = sum(layer["size"] for layer in manifest["layers"]) + manifest["config"]["size"]
            uploaded = sum(s for d, s in blobs(local).items() if d not in before)
            note(f"{refs[0]}@{digest[:19]}: {time.monotonic() - started:.1f} s, "
                 f"{size / 1e6:.0f} MB compressed, {uploaded / 1e6:.0f} MB uploaded")  # fmt: skip
            record = {"repository": repository, "tags": [r.split(":")[-1] for r in refs],
                      "digest": digest, "config_digest": manifest["config"]["digest"],
                      "image_id": image, "platform": cfg.platform, "revision": revision,
                      "source_date_epoch": epoch, "lock_sha256": lock, "base": base,
                      "base_name": base_name, "base_id": engine.image_id(base_name),
                      "engine": cfg.engine, "compressed_bytes": size}  # fmt: skip
            published[f"{repository}:{variant}"] = record
            write_json(out, published)
            records.append(record)
    return records


def main(cfg: Config, command: str, argv: list[str]) -> int:
    addr = os.environ.get("REGISTRY_ADDR") or "127.0.0.1:5000"
    if command == "registry":
        step(f"starting a local registry on {addr}")
        start(cfg, addr, registry_dir(cfg))
        engine_for(cfg).trust_loopback_registry(addr)
    elif command == "registry-down":
        stop(registry_dir(cfg))
    else:
        args, apps, variants = parse_selection(command, argv, cfg.build_dir / "published.json")
        records = push(cfg, apps, variants, args.out)
        step(f"pushed {len(records)} image(s); recorded in {shown(args.out)}")
    return 0
