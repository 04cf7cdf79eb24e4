#!/usr/bin/env python3
"""Build the grocery images: `make images`, `make image APP=.. VARIANT=..`, `make train`.

    python scripts/build.py images [--apps ...] [--variants ...]   # grocery-<app>:<variant>
    python scripts/build.py context APP                            # only assemble the context
    python scripts/build.py train [--variant uv] [--out artifacts]  # run the trainer image

Each app gets a build context under build/context/<app>/ holding exactly what its image
needs: its lock, the installers' lock, the matching wheels (hard links into the
wheelhouse), the Python packages named in dockerfiles/apps.toml, the launcher and health
probe, and for the backend and Flask images the model the trainer image made. Every file's
mtime is SOURCE_DATE_EPOCH (plus content-derived nanoseconds, so an edit is always seen), so
the same inputs give the same layers. Builds run with --network=none: nothing is downloaded
while building. Every input reaches the engine's cache key (step_inputs), and each image is
checked against its lock and its app/ files before it is tagged (check_image).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import stat
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import base
import engine as engine_mod
import explain
from common import (
    BUILD,
    ROOT,
    VARIANTS,
    ScriptError,
    app_spec,
    check_variant,
    content_mtime_ns,
    engine_run,
    git_revision,
    image_exists,
    load_apps,
    main_wrapper,
    note,
    sha256_files,
    shown,
    source_date_epoch,
    step,
    target_platform,
)  # fmt: skip
from locks import read_lock
from wheels import ensure_wheelhouse

RUNTIME = ROOT / "dockerfiles" / "runtime"
CONTEXT_HASHES = "sha256.json"  # digest cache for every context, beside them
VCS_URL = os.environ.get("VCS_URL", "https://github.com/grocery-ml/grocery-ml-containers")


def image_name(app: str, variant: str) -> str:
    prefix = os.environ.get("IMAGE_PREFIX", "grocery-")
    return f"{prefix}{app}:{variant}"


def _copy_tree(src: Path, dest: Path, *ignored: str) -> None:
    """Copy files only: a symlink that would be copied is refused, since it could pull any
    file of this machine (a key, another project's data) into the image, where a service may
    serve it. Ignored names (an editor's lock-file links, caches) are not looked at."""
    skip = shutil.ignore_patterns(*ignored)

    def ignore(directory: str, names: list[str]) -> set[str]:
        skipped = skip(directory, names)
        for name in sorted(set(names) - skipped):
            if os.path.islink(os.path.join(directory, name)):
                link = shown(Path(directory, name))
                raise ScriptError(f"{link} is a symlink: the build copies regular files only; "
                                  "put the file itself there")  # fmt: skip
        return skipped

    shutil.copytree(src, dest, ignore=ignore)


def _copy_package(src: Path, dest: Path) -> None:
    _copy_tree(src, dest, "__pycache__", "*.pyc", "tests", ".*")


def _normalize(root: Path, epoch: int) -> dict[str, str]:
    """Same bytes, same metadata: fixed modes and content-derived mtimes; {path: sha256}.

    Every file gets mode 0644 and an mtime of SOURCE_DATE_EPOCH plus nanoseconds taken from
    its sha256 (common.content_mtime_ns), so that BuildKit, which resends a context file only
    when its size, mode or mtime changed, also resends a same-size edit. The wheels are hard
    links into the wheelhouse, which already gave them their mode and mtime (wheels.py):
    touching them here would change their ctime and so force hashing them again.
    """
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    digests = sha256_files(files, root.parent / CONTEXT_HASHES)
    for path in files:
        if path.parent.name == "wheels" and path.parent.parent == root:
            continue
        mtime = content_mtime_ns(epoch, digests[path])
        info = path.stat()
        if stat.S_IMODE(info.st_mode) != 0o644:
            path.chmod(0o644)
        if info.st_mtime_ns != mtime:
            os.utime(path, ns=(mtime, mtime))
    for path in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        path.chmod(0o755)
        os.utime(path, (epoch, epoch))
    os.utime(root, (epoch, epoch))
    return {path.relative_to(root).as_posix(): digest for path, digest in digests.items()}


def assemble_context(app: str, wheel_hashes: dict[str, str], artifacts: Path, epoch: int) -> Path:
    spec = app_spec(app)
    ctx = BUILD / "context" / app
    # Everything is made anew but the wheels' hard links: linking and unlinking move the
    # wheel's ctime (its link count changes), which would make every build hash them again.
    for child in ctx.iterdir() if ctx.exists() else ():
        if child.name != "wheels":
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    (ctx / "app").mkdir(parents=True)
    (ctx / "wheels").mkdir(exist_ok=True)
    wheelhouse = BUILD / "wheelhouse"
    by_hash = {digest: name for name, digest in wheel_hashes.items()}
    wanted = set()
    for lock in (f"{app}.txt", "tools.txt"):
        for pin in read_lock(ROOT / "requirements" / lock):
            name = next((by_hash[h] for h in sorted(pin.hashes) if h in by_hash), None)
            if name is None:
                raise ScriptError(f"{pin.name}=={pin.version} is not in the wheelhouse")
            wanted.add(name)
    for present in (ctx / "wheels").iterdir():
        source = wheelhouse / present.name
        if present.name not in wanted or not source.exists() or not present.samefile(source):
            present.unlink()  # not locked any more, or not the wheelhouse's file (a copy)
    for name in sorted(wanted):
        if not (ctx / "wheels" / name).exists():
            try:
                os.link(wheelhouse / name, ctx / "wheels" / name)
            except OSError:  # another file system: copy instead
                shutil.copy2(wheelhouse / name, ctx / "wheels" / name)
    shutil.copy(ROOT / "requirements" / f"{app}.txt", ctx / "lock.txt")
    shutil.copy(ROOT / "requirements" / "tools.txt", ctx / "tools.txt")
    shutil.copy(ROOT / "dockerfiles" / "context.dockerignore", ctx / ".dockerignore")
    for name in ("prune_rootfs.py", "prune_venv.py", "scrub_venv.py"):
        shutil.copy(RUNTIME / name, ctx / name)
    (ctx / "prune.txt").write_text("".join(f"{glob}\n" for glob in spec.get("prune", [])))
    for package in spec["packages"]:
        _copy_package(ROOT / "src" / package, ctx / "app" / package)
    for name in ("launch.py", "healthcheck.py"):
        shutil.copy(RUNTIME / name, ctx / "app" / name)
    launch = {key: spec[key] for key in ("command", "env", "port", "health") if key in spec}
    (ctx / "app" / "launch.json").write_text(json.dumps(launch, indent=2, sort_keys=True) + "\n")
    if "model" in spec:
        model = artifacts / spec["model"]
        if not model.is_dir():
            raise ScriptError(f"{app} needs a trained model in {model}: run `make train` first")
        _copy_tree(model, ctx / "app" / "model")
    _normalize(ctx, epoch)
    return ctx


def step_inputs(digests: dict[str, str]) -> dict[str, str]:
    """The build args that carry each RUN step's mounted inputs into the cache key.

    Why this is complete: a RUN step can read context files only through its bind mounts, and
    every mounted file lies outside app/ (a static test checks the Dockerfiles for that).
    DEPS_SHA256 digests every file outside app/ (locks, wheels, helper scripts, prune list),
    from the bytes on disk at build time; ROOTFS_SHA256 the one file the multistage
    runtime-root step mounts. app/ (sources, launch.json from apps.toml, launcher, health
    probe, model) reaches the image only by COPY, whose cache key is the copied content on
    both engines; the base image ID and the Dockerfile text are part of every key. Podman
    needs the two digests: buildah keys a RUN on its text, build args and parent layer only,
    never on bind-mounted content.
    """
    deps = hashlib.sha256()
    for name, digest in sorted(digests.items()):
        if not name.startswith("app/"):
            deps.update(f"{digest}  {name}\n".encode())
    return {"DEPS_SHA256": deps.hexdigest(), "ROOTFS_SHA256": digests["prune_rootfs.py"]}


def build_image(engine: str, app: str, variant: str, ctx: Path, base_image: str, epoch: int,
                extra_args: list[str]) -> float:  # fmt: skip
    """Build ctx into grocery-<app>:<variant>; return the engine's build time in seconds.

    The image is built untagged, checked against its inputs (check_image), and only then
    tagged: a wrong image never replaces the last good one under the tag.
    """
    tag = image_name(app, variant)
    spec = app_spec(app)
    digests = _normalize(ctx, epoch)  # the bytes on disk now, whoever changed them
    created = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    log = BUILD / "logs" / f"{app}-{variant}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    iidfile = log.with_suffix(".iid")
    iidfile.unlink(missing_ok=True)
    args = [
        "build", "--network=none", "-f", str(ROOT / "dockerfiles" / f"{variant}.Dockerfile"),
        "--build-arg", f"BASE_IMAGE={base_image}", "--build-arg", f"APP={app}",
        "--build-arg", f"VCS_REF={git_revision()}", "--build-arg", f"VCS_URL={VCS_URL}",
        "--build-arg", f"CREATED={created}", "--build-arg", f"SOURCE_DATE_EPOCH={epoch}",
        *(arg for key, value in step_inputs(digests).items()
          for arg in ("--build-arg", f"{key}={value}")),
        "--iidfile", str(iidfile),
        # A service's image declares its port (EXPOSE); a job's declares none.
        *(["--target", "service", "--build-arg", f"PORT={spec['port']}"] if "port" in spec
          else ["--target", "job"]),
    ]  # fmt: skip
    if engine == "podman":
        # --timestamp pins every layer's file times and the image's created time, and the OCI
        # format records no build-container id or hostname: the same inputs give the same
        # image ID. PODMAN_FORMAT=docker keeps HEALTHCHECK (OCI has no field for it) at the
        # price of those two per-build fields in the config.
        image_format = os.environ.get("PODMAN_FORMAT", "oci")
        args += ["--timestamp", str(epoch), "--layers", "--format", image_format]
    else:
        args += ["--progress=plain"]
    start = time.monotonic()
    with log.open("w") as handle:
        result = engine_run(engine, [*args, *extra_args, str(ctx)], stdout=handle,
                            stderr=subprocess.STDOUT)  # fmt: skip
    seconds = time.monotonic() - start
    if result.returncode != 0 or not iidfile.is_file():
        lines = [ln for ln in log.read_text().splitlines() if ln.strip()]
        reason = next((ln for ln in reversed(lines) if "rror" in ln), lines[-1] if lines else "")
        raise ScriptError(f"building {tag} failed: {reason.strip()[:300]} (full log: {log})")
    image = iidfile.read_text().strip()
    build_args = {"APP": app, "VCS_URL": VCS_URL, "VCS_REF": git_revision(), "CREATED": created}
    record = explain_build(engine, app, variant, image, base_image, ctx, log, digests,
                           build_args, extra_args)  # fmt: skip
    check_image(engine, image, tag, ctx, digests)
    result = engine_run(engine, ["tag", image, tag], capture_output=True, text=True)
    if result.returncode != 0:
        raise ScriptError(f"tagging {image} as {tag} failed: {result.stderr.strip()}")
    path = explain.record_path(engine, app, variant, BUILD)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return seconds


def explain_build(engine: str, app: str, variant: str, image: str, base_image: str, ctx: Path,
                  log: Path, digests: dict[str, str], build_args: dict[str, str],
                  extra_args: list[str]) -> dict:  # fmt: skip
    """Why each step ran or was reused (scripts/explain.py); refuse a stale reuse."""
    base_id = engine_run(engine, ["image", "inspect", "--format", "{{.Id}}", base_image],
                         capture_output=True, text=True).stdout.strip()  # fmt: skip
    path = explain.record_path(engine, app, variant, BUILD)
    try:
        previous = json.loads(path.read_text()) if path.is_file() else None
    except ValueError:
        previous = None
    found = explain.decisions(log.read_text())
    record = {
        "image": f"{app}:{variant}", "engine": engine, "image_id": image,
        "decisions": found, "extra_args": extra_args,
        "steps": explain.step_inputs(engine, app, app_spec(app), variant, digests, base_id,
                                     build_args),
        "pins": explain.lock_pins(ctx, app),
    }  # fmt: skip
    recorded = None
    if found.get("deps") == "cached" and variant != "multistage":
        history = engine_run(engine, ["history", "--no-trunc", "--format", "{{.CreatedBy}}",
                                      image], capture_output=True, text=True).stdout  # fmt: skip
        recorded = explain.recorded_deps_key(history)
    key = step_inputs(digests)["DEPS_SHA256"]
    no_cache = "--no-cache" in extra_args
    lines, errors, warnings = explain.analyse(f"{app}:{variant}", previous, record, found,
                                              recorded, key, no_cache)  # fmt: skip
    if errors:
        remove_untagged(engine, image)
        raise ScriptError("\n".join(errors))
    record |= {"lines": lines, "warnings": warnings}
    summary = " | ".join(line.split(" ", 1)[1] for line in lines)
    note(summary if len(summary) <= 200 else f"{summary[:197]}... (make explain: all of it)")
    for warning in warnings:
        note(f"warning: {warning}")
    return record


def remove_untagged(engine: str, image: str) -> None:
    tags = engine_run(engine, ["image", "inspect", "--format", "{{json .RepoTags}}", image],
                      capture_output=True, text=True).stdout.strip()  # fmt: skip
    if tags in ("[]", "null", ""):
        engine_run(engine, ["rmi", image], capture_output=True)


# Runs inside the image: its installed distributions and the sha256 of every file in /app.
PROBE = """
import hashlib, importlib.metadata as md, json, os, re
dists = sorted({re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower() + "==" + d.version
                for d in md.distributions()})
app = {}
for top, dirs, files in os.walk("/app"):
    for name in files:
        with open(os.path.join(top, name), "rb") as handle:
            rel = os.path.relpath(os.path.join(top, name), "/app")
            app[rel] = hashlib.file_digest(handle, "sha256").hexdigest()
print(json.dumps({"dists": dists, "app": app}))
"""


def check_image(engine: str, image: str, tag: str, ctx: Path, digests: dict[str, str]) -> None:
    """Refuse an image whose distributions differ from its lock or whose /app differs from
    the context's app/ (one clear line naming the image); remove it when nothing tags it.

    The check runs the image once (about a second). An image whose layers were already
    checked against the same lock and app/ files is not run again (build/checked.json), so a
    no-op rebuild costs one inspect.
    """
    expected_app = {n.removeprefix("app/"): d for n, d in digests.items() if n.startswith("app/")}
    expected_dists = sorted(f"{p.name}=={p.version}" for p in read_lock(ctx / "lock.txt"))
    layers = engine_run(engine, ["image", "inspect", "--format", "{{json .RootFS.Layers}}", image],
                        capture_output=True, text=True).stdout.strip()  # fmt: skip
    key = hashlib.sha256(layers.encode()).hexdigest()
    expected = hashlib.sha256(json.dumps([expected_dists, expected_app]).encode()).hexdigest()
    record = BUILD / "checked.json"
    try:
        checked = json.loads(record.read_text()) if record.exists() else {}
    except ValueError:
        checked = {}
    if layers and checked.get(key) == expected:
        return
    result = engine_run(engine, ["run", "--rm", "--network=none", "--entrypoint",
                                 "/opt/venv/bin/python", image, "-c", PROBE],
                        capture_output=True, text=True, timeout=300)  # fmt: skip
    problems = []
    if result.returncode != 0:
        problems.append(f"its python failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
    else:
        found = json.loads(result.stdout.strip().splitlines()[-1])
        extra = sorted(set(found["dists"]) - set(expected_dists))
        absent = sorted(set(expected_dists) - set(found["dists"]))
        if extra or absent:
            listed = [", ".join(names[:4]) or "-" for names in (extra, absent)]
            problems.append(f"distributions differ from {ctx.name}'s lock "
                            f"(not locked: {listed[0]}; missing: {listed[1]})")  # fmt: skip
        stale = sorted(n for n in set(expected_app) | set(found["app"])
                       if expected_app.get(n) != found["app"].get(n))  # fmt: skip
        if stale:
            problems.append(f"/app differs from {shown(ctx)}/app in: {', '.join(stale[:4])}")
    if problems:
        remove_untagged(engine, image)
        raise ScriptError(f"refusing to tag {tag}: the built image {image[:19]} does not match "
                          f"its inputs: {'; '.join(problems)}")  # fmt: skip
    checked[key] = expected
    partial = record.with_name(f".{record.name}.{os.getpid()}")
    partial.write_text(json.dumps(checked, indent=1, sort_keys=True) + "\n")
    partial.replace(record)


def image_size(engine: str, tag: str) -> int:
    result = engine_run(engine, ["image", "inspect", "--format", "{{.Size}}", tag],
                        capture_output=True, text=True)  # fmt: skip
    return int(result.stdout.strip() or 0)


def run_trainer(engine: str, variant: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tag = image_name("trainer", variant)
    step(f"training with {tag} into {out}")
    args = [
        "run", "--rm", "--network=none", "--user", f"{os.getuid()}:{os.getgid()}",
        "--volume", f"{out.resolve()}:/artifacts", tag, "all", "--out", "/artifacts",
    ]  # fmt: skip
    result = engine_run(engine, args)
    if result.returncode != 0:
        raise ScriptError(f"the trainer image {tag} failed (exit {result.returncode})")
    for expected in ("image/model.safetensors", "tabular/model.skops"):
        if not (out / expected).is_file():
            raise ScriptError(f"the trainer image did not write {out / expected}")
    note(f"artifacts written to {out}")


def cmd_images(args: argparse.Namespace) -> int:
    target_platform()  # an unsupported PLATFORM is refused before anything runs
    apps = args.apps or list(load_apps())
    variants = [check_variant(v) for v in (args.variants or VARIANTS)]
    for app in apps:
        app_spec(app)
    engine_mod.ensure(args.engine)
    epoch = source_date_epoch()
    base_image = base.resolve(args.engine, args.base, args.local_base, epoch)
    wheel_hashes = ensure_wheelhouse(BUILD / "wheelhouse", list(load_apps()))
    artifacts = args.artifacts.resolve()
    # The trainer comes first: the backend and Flask images carry the models it makes.
    jobs = [(app, variant) for app in sorted(apps, key=lambda a: a != "trainer")
            for variant in variants]  # fmt: skip
    models = {app_spec(a)["model"] for a in apps if "model" in app_spec(a)}
    models_missing = any(not (artifacts / m).is_dir() for m in models)
    trainer = ("trainer", args.trainer_variant)
    if models_missing and trainer not in jobs and not image_present(args.engine, trainer):
        jobs.insert(0, trainer)
    built = []
    for number, (app, variant) in enumerate(jobs, 1):
        if models_missing and "model" in app_spec(app):
            run_trainer(args.engine, args.trainer_variant, artifacts)
            models_missing = False
        tag = image_name(app, variant)
        step(f"[{number}/{len(jobs)}] building {tag}")
        ctx = assemble_context(app, wheel_hashes, artifacts, epoch)
        seconds = build_image(args.engine, app, variant, ctx, base_image, epoch, args.build_arg)
        size = image_size(args.engine, tag)
        note(f"{tag}: {seconds:.1f} s, {size / 1e6:.0f} MB")
        built.append((tag, seconds, size))
    step(f"built {len(built)} image(s) on base {base_image}")
    for tag, seconds, size in built:
        note(f"{tag:<32} {size / 1e6:8.0f} MB {seconds:8.1f} s")
    return 0


def cmd_context(args: argparse.Namespace) -> int:
    wheel_hashes = ensure_wheelhouse(BUILD / "wheelhouse", list(load_apps()))
    ctx = assemble_context(args.app, wheel_hashes, args.artifacts.resolve(), source_date_epoch())
    print(ctx)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    engine_mod.ensure(args.engine)
    if not image_present(args.engine, ("trainer", args.variant)):
        raise ScriptError(
            f"{image_name('trainer', args.variant)} does not exist: "
            f"run `make image APP=trainer VARIANT={args.variant}` first"
        )
    run_trainer(args.engine, args.variant, args.out)
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    """Remove every grocery-<app>:<variant> image (the base and wheelhouse stay)."""
    tags = [image_name(app, variant) for app in load_apps() for variant in VARIANTS]
    present = [tag for tag in tags if image_exists(args.engine, tag)]
    if present:
        step(f"removing {len(present)} image(s)")
        engine_run(args.engine, ["rmi", "--force", *present], capture_output=True)
    return 0


def image_present(engine: str, job: tuple[str, str]) -> bool:
    return image_exists(engine, image_name(*job))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", default=os.environ.get("ENGINE", "docker"))
    parser.add_argument("--artifacts", type=Path, default=ROOT / "artifacts")
    sub = parser.add_subparsers(dest="command", required=True)
    images = sub.add_parser("images", help="build images")
    images.add_argument("--apps", nargs="*", default=os.environ.get("APPS", "").split())
    images.add_argument("--variants", nargs="*", default=os.environ.get("VARIANTS", "").split())
    images.add_argument("--base", default=os.environ.get("BASE_IMAGE") or base.DEFAULT_BASE)
    images.add_argument(
        "--local-base", default=os.environ.get("LOCAL_BASE") or base.DEFAULT_LOCAL_BASE
    )
    images.add_argument("--trainer-variant", default=os.environ.get("TRAINER_VARIANT", "uv"))
    images.add_argument("--build-arg", action="append", default=[],
                        help="extra argument for the engine's build command")  # fmt: skip
    context = sub.add_parser("context", help="assemble one app's build context")
    context.add_argument("app")
    train = sub.add_parser("train", help="run the trainer image")
    train.add_argument("--variant", default=os.environ.get("TRAINER_VARIANT", "uv"))
    train.add_argument("--out", type=Path, default=ROOT / "artifacts")
    sub.add_parser("clean", help="remove the grocery images")
    args = parser.parse_args()
    commands = {"images": cmd_images, "context": cmd_context, "train": cmd_train,
                "clean": cmd_clean}  # fmt: skip
    return commands[args.command](args)


if __name__ == "__main__":
    main_wrapper(main)
