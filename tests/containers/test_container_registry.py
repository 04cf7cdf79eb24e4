"""Publishing, against a real registry (Debian's docker-registry on a free loopback port):
`make push` records what the registry serves, a second engine pulls the image by digest and
runs it healthy, and a base pinned by digest in that registry is pulled and built on (a
wrong digest is one clear line). A push to a registry that cannot be reached, refuses the
credentials or has no disk left is one line and records nothing."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import urllib.error
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from containers_support import (
    CFG,
    ENGINE,
    ENGINE_OBJ,
    PREFIX,
    ROOT,
    VENV_PYTHON,
    engine,
    free_port,
    image_ref,
    remove_prefixed,
    require_image,
    unique_name,
)

from imagetools import registry, repro, signing
from imagetools.engines import engine_for

pytestmark = pytest.mark.container
ROOTS: dict[str, Path] = {}  # registry address -> its folder

APP, VARIANT = "flask", "uv"
OTHER = "podman" if ENGINE == "docker" else "docker"


@pytest.fixture(scope="module")
def local_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    addr = f"127.0.0.1:{free_port()}"
    root = ROOTS[addr] = tmp_path_factory.mktemp("registry")
    registry.start(CFG, addr, root)
    try:
        yield addr
    finally:
        registry.stop(root)


def make(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-C", str(ROOT), *args, f"ENGINE={ENGINE}"],
                          env=dict(os.environ, **env), capture_output=True, text=True,
                          timeout=900, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def published(local_registry: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    require_image(image_ref(APP, VARIANT))
    out = tmp_path_factory.mktemp("published") / "published.json"
    cfg = CFG.replace(registry=f"{local_registry}/test{uuid.uuid4().hex[:6]}")
    records = registry.push(cfg, [APP], [VARIANT], out)
    engine(["rmi", *(f"{records[0]['repository']}:{tag}" for tag in records[0]["tags"])])
    assert len(records) == 1
    assert json.loads(out.read_text())[f"{records[0]['repository']}:{VARIANT}"] == records[0]
    return dict(records[0], published_json=str(out))


def test_push_records_what_the_registry_serves(published: dict, local_registry: str) -> None:
    name = published["repository"].split("/", 1)[1]
    for tag in published["tags"]:
        headers, _ = registry.api(local_registry, f"{name}/manifests/{tag}")
        assert headers["Docker-Content-Digest"] == published["digest"], tag
    image_id = engine(["image", "inspect", "--format", "{{.Id}}", image_ref(APP, VARIANT)])
    assert published["config_digest"].removeprefix("sha256:") in image_id
    lock = registry.sha256(ROOT / "requirements" / f"{APP}.txt")
    labels = json.loads(engine(["image", "inspect", "--format", "{{json .Config.Labels}}",
                                image_ref(APP, VARIANT)]))  # fmt: skip
    built_at = labels["org.opencontainers.image.revision"]
    assert (published["lock_sha256"], published["revision"]) == (lock, built_at)
    assert published["tags"] == [VARIANT, f"{VARIANT}-{built_at[:12]}"]
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(published["source_date_epoch"]))
    assert created == labels["org.opencontainers.image.created"]
    # The base it was built on, as others can pull it: the pinned BASE_IMAGE, or the local
    # base pushed beside it (the same image ID, served by the registry).
    local = engine_for(CFG)
    base = CFG.base_image if local.exists(CFG.base_image) else CFG.local_base
    assert local.layers(image_ref(APP, VARIANT))[: len(local.layers(base))] == local.layers(base)
    assert published["base_name"] == base  # the name it was built FROM
    if base == CFG.base_image:
        assert published["base"] == CFG.base_image
    else:
        repository, digest = published["base"].split("@")
        assert repository == f"{published['repository'].rsplit('/', 1)[0]}/{base.split(':')[0]}"
        _, body = registry.api(local_registry, f"{repository.split('/', 1)[1]}/manifests/{digest}")
        assert json.loads(body)["config"]["digest"].endswith(local.image_id(base)[-64:])


def test_a_multistage_image_names_the_base_its_build_record_names(
    local_registry: str, tmp_path: Path
) -> None:
    """The multistage runtime starts from scratch (no base layer in it): the build record
    (make explain) says which base its stages used, and that base is recorded."""
    require_image(image_ref(APP, "multistage"))
    cfg = CFG.replace(registry=f"{local_registry}/ms{uuid.uuid4().hex[:6]}")
    (record,) = registry.push(cfg, [APP], ["multistage"], tmp_path / "published.json")
    local = engine_for(CFG)
    base = CFG.base_image if local.exists(CFG.base_image) else CFG.local_base
    assert record["base_name"] == base
    assert record["base_id"].endswith(local.image_id(base)[-64:])
    engine(["rmi", *(f"{record['repository']}:{tag}" for tag in record["tags"])])


def test_an_image_whose_base_is_gone_is_not_published(local_registry: str, tmp_path: Path) -> None:
    """An image built on a base that is no longer BASE_IMAGE or LOCAL_BASE (rebuilt since)
    could not be rebuilt as published: one line, nothing pushed, nothing recorded."""
    other = f"{PREFIX}base-{uuid.uuid4().hex[:6]}:1"
    scratch_image(other, tmp_path / "ctx")
    cfg = CFG.replace(registry=f"{local_registry}/gone{uuid.uuid4().hex[:6]}", local_base=other,
                      base_image=f"grocery-absent@sha256:{'0' * 64}")  # fmt: skip
    out = tmp_path / "published.json"
    try:
        with pytest.raises(registry.ScriptError, match="is not built on BASE_IMAGE") as error:
            registry.push(cfg, [APP], [VARIANT], out)
    finally:
        engine(["rmi", other])
    assert "\n" not in str(error.value) and "nothing recorded" in str(error.value)
    assert not out.exists()
    with pytest.raises(urllib.error.HTTPError):
        name = image_ref(APP, VARIANT).split(":")[0]
        registry.api(local_registry, f"{cfg.registry.split('/', 1)[1]}/{name}/tags/list")


def test_the_other_engine_pulls_by_digest_and_runs_it(published: dict) -> None:
    other = engine_for(CFG.replace(engine=OTHER))
    ref = f"{published['repository']}@{published['digest']}"
    other.output(["pull", ref])
    name = unique_name("pulled")
    try:
        other.output(["run", "--detach", "--name", name, ref])
        deadline = time.monotonic() + 120  # its own health probe, run on the other engine
        probe = ["exec", name, VENV_PYTHON, "/app/healthcheck.py"]
        while other.run(probe, capture_output=True).returncode != 0:
            assert time.monotonic() < deadline, other.run(["logs", name], capture_output=True)
            time.sleep(0.5)
    finally:
        other.run(["rm", "--force", name], capture_output=True)
        other.remove(ref)


def test_a_base_pinned_by_digest_is_pulled_and_a_wrong_digest_is_one_line(
    local_registry: str,
) -> None:
    base = CFG.local_base if engine_for(CFG).exists(CFG.local_base) else CFG.base_image
    pushed = f"{local_registry}/base{uuid.uuid4().hex[:6]}:pinned"
    engine(["tag", base, pushed])
    digest = engine_for(CFG).push(pushed)
    engine(["rmi", pushed])
    prefix = f"regbase{uuid.uuid4().hex[:4]}-"
    pinned = f"{pushed.rsplit(':', 1)[0]}@{digest}"
    try:
        built = make("image", f"APP={APP}", f"VARIANT={VARIANT}", IMAGE_PREFIX=prefix,
                     BASE_IMAGE=pinned)  # fmt: skip
        assert built.returncode == 0, built.stdout[-2000:] + built.stderr
        # Docker pulls it; Podman may find it already, by the digest its push recorded.
        assert f"pulled base image {pinned}" in built.stdout or (
            ENGINE == "podman" and f"base image {pinned} is present" in built.stdout
        ), built.stdout
        wrong = pinned[:-8] + "deadbeef"
        failed = make("image", f"APP={APP}", f"VARIANT={VARIANT}", IMAGE_PREFIX=prefix,
                      BASE_IMAGE=wrong)  # fmt: skip
        assert failed.returncode != 0
        errors = [ln for ln in failed.stderr.splitlines() if not ln.startswith("make")]
        assert len(errors) == 1 and errors[0].startswith(
            f"imagetools: error: cannot pull BASE_IMAGE={wrong}: "
        ), failed.stderr
    finally:
        remove_prefixed(prefix)
        engine(["rmi", "--force", pinned], check=False)
        for stamp in (CFG.build_dir / "stamps" / ENGINE).glob(f"{prefix}*"):
            stamp.unlink()


def test_a_push_without_registry_is_one_clear_line(tmp_path: Path) -> None:
    result = make("push", "APPS=flask", "VARIANTS=uv", REGISTRY="")
    assert result.returncode != 0
    assert "imagetools: error: set REGISTRY=host[:port]/prefix" in result.stderr


def scratch_image(ref: str, tmp_path: Path, size: int = 4096) -> None:
    """A small image of its own: one layer of size random bytes."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "random").write_bytes(os.urandom(size))
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY random /random\n")
    engine(["build", "--quiet", "--tag", ref, str(tmp_path)])


def unsigned_image(addr: str, repository: str, tmp_path: Path) -> dict:
    """A record of a small image of its own (one random layer), pushed without a signature."""
    ref = f"{repository}:unsigned"
    scratch_image(ref, tmp_path)
    try:
        digest = engine_for(CFG).push(ref)
        image_id = engine_for(CFG).image_id(ref)
    finally:
        engine(["rmi", ref])
    return {"repository": repository, "tags": ["unsigned"], "digest": digest, "image_id": image_id}


def refused(cfg: signing.Config, record: dict) -> str:
    with pytest.raises(signing.ScriptError) as error:
        signing.pull(cfg, [record])
    assert not engine_for(cfg).exists(f"{record['repository']}:{record['tags'][0]}")
    return str(error.value)


def test_a_signed_image_pulls_and_an_unsigned_or_tampered_one_is_refused(
    published: dict, local_registry: str, tmp_path: Path
) -> None:
    cfg = CFG.replace(registry=published["repository"].rsplit("/", 1)[0], build_dir=tmp_path)
    record = {k: v for k, v in published.items() if k != "published_json"}
    signing.sign(cfg, [record], Path(published["published_json"]))
    assert len(record["signed_by"]) == 40
    assert json.loads(Path(published["published_json"]).read_text())[
        f"{record['repository']}:{VARIANT}"]["signed_by"] == record["signed_by"]  # fmt: skip
    signed_ref = f"{record['repository']}:{VARIANT}"
    try:
        signing.pull(cfg, [record])
        assert engine_for(cfg).image_id(signed_ref).endswith(record["image_id"][-64:])
        # The pulled image (here: the local one) can still be pushed: no signature kept.
        assert engine_for(cfg).push(signed_ref) == record["digest"]
    finally:
        engine(["rmi", signed_ref], check=False)

    other = unsigned_image(local_registry, record["repository"], tmp_path / "ctx")
    assert "a signature was required, but no signature exists" in refused(cfg, other).lower()
    store = tmp_path / "registry" / "signatures"
    name = record["repository"].split("/", 1)[1]
    signature = store / f"{name}@{record['digest'].replace(':', '=')}" / "signature-1"
    # The flask image's signature, presented for another image.
    moved = store / f"{name}@{other['digest'].replace(':', '=')}" / "signature-1"
    moved.parent.mkdir(parents=True)
    moved.write_bytes(signature.read_bytes())
    assert "does not match" in refused(cfg, other).lower()
    # The flask image's own signature, one byte changed.
    data = bytearray(signature.read_bytes())
    data[len(data) // 2] ^= 0x01
    signature.write_bytes(bytes(data))
    assert refused(cfg, record).startswith(f"refused {record['repository']}@{record['digest']}: ")


def test_a_tampered_blob_is_refused(local_registry: str, tmp_path: Path) -> None:
    cfg = CFG.replace(registry=f"{local_registry}/tamper", build_dir=tmp_path)
    record = unsigned_image(local_registry, f"{cfg.registry}/blob", tmp_path / "ctx")
    record["tags"] = ["signed"]
    signing.sign(cfg, [record], tmp_path / "published.json")
    _, body = registry.api(local_registry, f"tamper/blob/manifests/{record['digest']}")
    layer = json.loads(body)["layers"][0]["digest"].split(":")[1]
    blob = ROOTS[local_registry] / "data/docker/registry/v2/blobs/sha256" / layer[:2] / layer
    data = bytearray((blob / "data").read_bytes())
    data[-1] ^= 0x01
    (blob / "data").write_bytes(bytes(data))
    message = refused(cfg, record)
    assert message.startswith(f"refused {record['repository']}@") and "digest" in message.lower()


def test_a_rebuild_elsewhere_and_otherwise_matches_what_was_published(
    published: dict, tmp_path: Path
) -> None:
    """A fresh clone, umask 0002, another time zone and locale, one CPU (and a hostname of
    its own as root), --no-cache: Podman gives the published image ID, Docker its content.
    It builds on the base recorded with the image, pulled by digest: LOCAL_BASE here names
    no image at all (a machine that never made one, or made another one since)."""
    cfg = CFG.replace(registry=published["repository"].rsplit("/", 1)[0],
                      local_base=f"{PREFIX}absent-base:{uuid.uuid4().hex[:6]}")  # fmt: skip
    argv = ["--apps", APP, "--variants", VARIANT, "--artifacts", str(CFG.artifacts),
            "--published", published["published_json"], "--out", str(tmp_path)]  # fmt: skip
    assert repro.verify_published(cfg, argv) == 0
    report = json.loads((tmp_path / f"report-{ENGINE}.json").read_text())
    assert (report["revision"], report["base"]) == (published["revision"], published["base"])
    assert report["varied"]["umask"] == "0002" and report["varied"]["cpus"].startswith("1")
    assert report["varied"]["path"].startswith("build/verify/")  # not where it was built
    (result,) = report["results"]
    assert result["content_identical"] and (ENGINE != "podman" or result["bit_identical"])
    assert result["ids"][0].endswith(published["image_id"][-64:])


# ---- pushes that fail: one line, nothing recorded -------------------------------------------
def push_small(addr: str, tmp_path: Path) -> tuple[list[dict], str]:
    """Push a 4 MiB image of its own, tagged as <prefix>flask:uv, with `push` into a
    published.json that already holds one record; return (records, error line)."""
    cfg = CFG.replace(registry=f"{addr}/small", image_prefix="grocery-pushtest-")
    tag = cfg.tag(APP, VARIANT)
    cfg = cfg.replace(base_image=tag)  # its own base: no base to push before it
    scratch_image(tag, tmp_path / "ctx", size=4 << 20)
    image = ENGINE_OBJ.image_id(tag)
    out = tmp_path / "published.json"
    out.write_text('{"kept": {}}\n')
    records, message = [], ""
    try:
        records = registry.push(cfg, [APP], [VARIANT], out)
    except registry.ScriptError as exc:
        message = str(exc)
        assert json.loads(out.read_text()) == {"kept": {}}, "a failed push was recorded"
        assert "\n" not in message and "nothing recorded" in message, message
    finally:
        engine(["rmi", "--force", image], check=False)  # with every tag push gave it
    return records, message


def test_an_unreachable_registry_is_one_line(tmp_path: Path) -> None:
    addr = f"127.0.0.1:{free_port()}"
    _, message = push_small(addr, tmp_path)
    assert message.startswith(f"pushing {addr}/small/grocery-pushtest-{APP}:{VARIANT}: "
                              f"cannot reach the registry {addr}; "), message  # fmt: skip


def test_refused_credentials_are_one_line_and_accepted_ones_push(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registry that answers only an htpasswd account; the engine's own credentials (its
    config.json, REGISTRY_AUTH_FILE for Podman) are what push uses."""
    subprocess.run([str(ROOT / "scripts" / "ensure-apt.sh"), "apache2-utils"], check=True)
    htpasswd = tmp_path / "htpasswd"
    secret = uuid.uuid4().hex
    htpasswd.write_text(subprocess.run(["htpasswd", "-Bbn", "grocery", secret], check=True,
                                       capture_output=True, text=True).stdout)  # fmt: skip
    addr = f"127.0.0.1:{free_port()}"
    registry.start(CFG, addr, tmp_path / "registry", htpasswd)
    try:
        for name, password in (("wrong", secret[::-1]), ("right", secret)):
            auth = base64.b64encode(f"grocery:{password}".encode()).decode()
            config = tmp_path / name / "config.json"
            config.parent.mkdir()
            config.write_text(json.dumps({"auths": {addr: {"auth": auth}}}))
            monkeypatch.setenv("DOCKER_CONFIG", str(config.parent))
            monkeypatch.setenv("REGISTRY_AUTH_FILE", str(config))
            records, message = push_small(addr, tmp_path / name)
            if name == "wrong":
                assert f"the registry {addr} refused the credentials: log in with " \
                       f"`{ENGINE} login {addr}`" in message, message  # fmt: skip
            else:
                assert not message and records[0]["digest"].startswith("sha256:")
    finally:
        registry.stop(tmp_path / "registry")


def test_a_registry_whose_disk_is_full_is_one_line(tmp_path: Path) -> None:
    """The registry's storage is a 1 MiB tmpfs; the image's layer is 4 MiB of random bytes."""
    data = tmp_path / "registry" / "data"
    data.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(data)], check=True)
    addr = f"127.0.0.1:{free_port()}"
    try:
        registry.start(CFG, addr, tmp_path / "registry")
        _, message = push_small(addr, tmp_path)
        assert f"the registry {addr} failed to store it (a server error: a full disk" in message
    finally:
        registry.stop(tmp_path / "registry")
        subprocess.run(["umount", "--lazy", str(data)], check=True)
