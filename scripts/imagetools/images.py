"""Build the images: one per `python -m imagetools image APP VARIANT` (Make's per-image
targets), and `train`, `context`, `clean`.

Each image gets a build context under build/context/<engine>/<tag>/ holding exactly what it
needs: its lock split into the dependency layers of apps.toml, each part with its wheels
(hard links into the wheelhouse), the installers' lock and wheels, the Python packages named
in dockerfiles/apps.toml, the launcher and health
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
from datetime import UTC, datetime
from pathlib import Path

from . import baseimage, explain
from .apps import app_spec, check_variant, dependency_layers, load_apps, split_lock
from .common import (
    ROOT,
    ScriptError,
    content_mtime_ns,
    note,
    read_json,
    sha256_files,
    shown,
    step,
    write_json,
)
from .config import VARIANTS, Config
from .engines import Engine, engine_for
from .lockfile import read_lock
from .wheelhouse import ensure_wheelhouse, wheel_hashes

OCI = "org.opencontainers.image"  # the labels every image carries

SHIPPED = ROOT / "dockerfiles" / "runtime"  # copied into every image's /app
BUILD_HELPERS = ROOT / "dockerfiles" / "buildtime"  # run by the build, mounted, never shipped
CONTEXT_HASHES = "sha256.json"  # digest cache for every context, beside them


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
    links into the wheelhouse, which already gave them their mode and mtime (wheelhouse.py):
    touching them here would change their ctime and so force hashing them again.
    """
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    digests = sha256_files(files, root.parent / CONTEXT_HASHES)
    for path in files:
        if path.suffix == ".whl":
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


def context_dir(cfg: Config, app: str, variant: str) -> Path:
    return cfg.build_dir / "context" / cfg.engine / f"{cfg.image_prefix}{app}-{variant}"


def _link_wheels(dest: Path, wanted: dict[str, Path]) -> None:
    """dest/ holds exactly the wanted {file name: wheel}, hard links where possible. Links
    already right are kept: linking and unlinking move a wheel's ctime (its link count
    changes), which would make every build hash it again."""
    dest.mkdir(parents=True, exist_ok=True)
    for present in dest.iterdir():
        source = wanted.get(present.name)
        if present.suffix != ".whl":
            continue
        if source is None or not source.exists() or not present.samefile(source):
            present.unlink()
    for name, source in sorted(wanted.items()):
        if not (dest / name).exists():
            try:
                os.link(source, dest / name)
            except OSError:  # another file system: copy instead
                shutil.copy2(source, dest / name)


def _lock_text(path: Path) -> str:
    """A lock's text without its `# input-sha256:` line: that digest covers dev.txt too,
    and a change to the test venv's lock must not rebuild every image."""
    lines = path.read_text().splitlines(keepends=True)
    return "".join(line for line in lines if not line.startswith("# input-sha"))


def _wheel_for(pin, by_hash: dict[str, Path]) -> Path:
    found = next((by_hash[h] for h in sorted(pin.hashes) if h in by_hash), None)
    if found is None:
        raise ScriptError(f"{pin.name}=={pin.version} is not in the wheelhouse")
    return found


def write_layers(ctx: Path, by_hash: dict[str, Path], comment: str = "") -> None:
    """ctx/deps/<n>/: the part of ctx/lock.txt that goes into dependency layer n (apps.toml
    [[layer]]) and its wheels (by_hash: {sha256: wheel file}). Called again after the
    lock changed (the bench's dependency bump, which adds a comment to the last part)."""
    parts = split_lock(read_lock(ctx / "lock.txt"))
    for number, pins in enumerate(parts, 1):
        layer = ctx / "deps" / str(number)
        wanted = {(w := _wheel_for(pin, by_hash)).name: w for pin in pins}
        _link_wheels(layer, wanted)
        text = "".join(f"{pin.requirement}\n" for pin in pins)
        (layer / "lock.txt").write_text(text + (comment if number == len(parts) else ""))


def assemble_context(cfg: Config, app: str, variant: str, hashes: dict[str, str]) -> Path:
    """build/context/<engine>/<tag>/ for one image (hashes: the wheelhouse's {name: sha256}).

    deps/<n>/ (each dependency layer's lock part and wheels), tools/ (the installers' lock,
    with pip's wheel as pip.whl and uv's), buildtime/ (helper scripts, mounted), prune.txt,
    app/ (copied into the image) and lock.txt (the whole lock, for the checks; ignored by the
    engine)."""
    spec = app_spec(app)
    ctx = context_dir(cfg, app, variant)
    for child in ctx.iterdir() if ctx.exists() else ():
        if child.name not in ("deps", "tools"):  # their wheel links are kept (_link_wheels)
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    (ctx / "app").mkdir(parents=True)
    by_hash = {digest: cfg.wheelhouse / name for name, digest in hashes.items()}
    (ctx / "lock.txt").write_text(_lock_text(ROOT / "requirements" / f"{app}.txt"))
    layers = len(dependency_layers())
    for extra in (ctx / "deps").iterdir() if (ctx / "deps").exists() else ():
        if not extra.name.isdigit() or not 1 <= int(extra.name) <= layers:
            shutil.rmtree(extra)
    write_layers(ctx, by_hash)
    tools = read_lock(ROOT / "requirements" / "tools.txt")
    _link_wheels(ctx / "tools", {("pip.whl" if pin.name == "pip" else w.name): w
                                 for pin in tools if (w := _wheel_for(pin, by_hash))})  # fmt: skip
    (ctx / "tools" / "tools.txt").write_text(_lock_text(ROOT / "requirements" / "tools.txt"))
    shutil.copy(ROOT / "dockerfiles" / "context.dockerignore", ctx / ".dockerignore")
    (ctx / "buildtime").mkdir()
    for helper in sorted(BUILD_HELPERS.glob("*.py")):
        shutil.copy(helper, ctx / "buildtime" / helper.name)
    (ctx / "prune.txt").write_text("".join(f"{glob}\n" for glob in spec.get("prune", [])))
    for package in spec["packages"]:
        _copy_package(ROOT / "src" / package, ctx / "app" / package)
    for shipped in sorted(SHIPPED.glob("*.py")):
        shutil.copy(shipped, ctx / "app" / shipped.name)
    launch = {key: spec[key] for key in ("command", "env", "port", "health") if key in spec}
    (ctx / "app" / "launch.json").write_text(json.dumps(launch, indent=2, sort_keys=True) + "\n")
    if "model" in spec:
        model = cfg.artifacts / spec["model"]
        if not model.is_dir():
            raise ScriptError(f"{app} needs a trained model in {model}: run `make train` first")
        _copy_tree(model, ctx / "app" / "model")
    _normalize(ctx, cfg.source_date_epoch)
    return ctx


ROOTFS_SCRIPT = "buildtime/prune_rootfs.py"


def step_inputs(digests: dict[str, str]) -> dict[str, str]:
    """The build args that carry each RUN step's mounted inputs into the cache key.

    Why this is complete: a RUN step can read context files only through its bind mounts, and
    every mounted file lies outside app/ and lock.txt (a static test checks the Dockerfiles for
    that). TOOLS_SHA256 digests tools/ and buildtime/ (the setup step's mounts);
    DEPS<n>_SHA256 those, prune.txt and deps/<n>/ (dependency layer n's mounts), and so not
    another layer's lock part or wheels: a bump in the last layer leaves the others' keys
    alone. ROOTFS_SHA256 is the one file the multistage runtime-root step mounts. All come
    from the bytes on disk at build time. app/ (sources, launch.json from apps.toml, launcher,
    health probe, model) reaches the image only by COPY, whose cache key is the copied
    content on both engines; the base image ID and the Dockerfile text are part of every key.
    Podman needs the digests: buildah keys a RUN on its text, build args and parent layer
    only, never on bind-mounted content.
    """

    def digest(selected: dict[str, str]) -> str:
        found = hashlib.sha256()
        for name, value in sorted(selected.items()):
            found.update(f"{value}  {name}\n".encode())
        return found.hexdigest()

    shared = {n: d for n, d in digests.items()
              if n.startswith(("tools/", "buildtime/")) or n == ".dockerignore"}  # fmt: skip
    args = {"TOOLS_SHA256": digest(shared), "ROOTFS_SHA256": digests[ROOTFS_SCRIPT]}
    shared |= {n: d for n, d in digests.items() if n == "prune.txt"}
    for number in range(1, len(dependency_layers()) + 1):
        part = {n: d for n, d in digests.items() if n.startswith(f"deps/{number}/")}
        args[f"DEPS{number}_SHA256"] = digest(shared | part)
    return args


def build_image(engine: Engine, app: str, variant: str, ctx: Path, base_image: str,
                flags: list[str]) -> float:  # fmt: skip
    """Build ctx into the app's image; return the engine's build time in seconds.

    The image is built untagged, checked against its inputs (check_image), and only then
    tagged: a wrong image never replaces the last good one under the tag.
    """
    cfg = engine.cfg
    tag, spec, epoch = cfg.tag(app, variant), app_spec(app), cfg.source_date_epoch
    digests = _normalize(ctx, epoch)  # the bytes on disk now, whoever changed them
    created = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    log = cfg.build_dir / "logs" / cfg.engine / f"{cfg.image_prefix}{app}-{variant}.log"
    build_args = {"APP": app, "VCS_URL": cfg.vcs_url, "VCS_REF": cfg.revision, "CREATED": created}
    build_args |= {"BASE_IMAGE": base_image, "SOURCE_DATE_EPOCH": str(epoch)}
    build_args |= step_inputs(digests)
    cache_ref = f"{cfg.cache_repo}/{cfg.image_prefix}{app}:{variant}" if cfg.cache_repo else ""
    # A service's image declares its port (EXPOSE); a job's declares none.
    build_args["KIND"] = "job"
    if "port" in spec:
        build_args |= {"KIND": "service", "PORT": str(spec["port"])}
    args = [
        "build", "--network=none", "-f", str(ROOT / "dockerfiles" / f"{variant}.Dockerfile"),
        *(f"--build-arg={key}={value}" for key, value in build_args.items()),
        *engine.build_flags(base_image),
        *(engine.cache_flags(cache_ref) if cache_ref else []), *flags, str(ctx),
    ]  # fmt: skip
    seconds, image = engine.build(args, log, f"building {tag}")
    record = explain_build(engine, app, variant, image, base_image, ctx, log, digests, flags)
    check_image(engine, image, tag, ctx, digests)
    engine.output(["tag", image, tag])
    if cache_ref:
        engine.export_cache(image, cache_ref)
    write_json(explain.record_path(cfg, app, variant), record)
    return seconds


def explain_build(engine: Engine, app: str, variant: str, image: str, base_image: str,
                  ctx: Path, log: Path, digests: dict[str, str],
                  flags: list[str]) -> dict:  # fmt: skip
    """Why each step ran or was reused (explain.py); refuse a stale reuse."""
    cfg = engine.cfg
    previous = read_json(explain.record_path(cfg, app, variant), cache=True)
    found = explain.decisions(log.read_text(), variant)
    record = {
        "image": f"{app}:{variant}", "engine": cfg.engine, "image_id": image,
        "decisions": found, "extra_args": flags,
        "steps": explain.step_inputs(app, app_spec(app), variant, digests,
                                     engine.image_id(base_image)),
        "pins": explain.lock_pins(ctx, app),
    }  # fmt: skip
    recorded = {}
    if "cached" in found.values() and variant != "multistage":
        history = engine.output(["history", "--no-trunc", "--format", "{{.CreatedBy}}", image])
        recorded = explain.recorded_keys(history)
    lines, errors, warnings = explain.analyse(f"{app}:{variant}", previous, record, found,
                                              recorded, step_inputs(digests),
                                              "--no-cache" in flags)  # fmt: skip
    if errors:
        remove_untagged(engine, image)
        raise ScriptError("\n".join(errors))
    record |= {"lines": lines, "warnings": warnings}
    summary = " | ".join(line.split(" ", 1)[1] for line in lines)
    note(summary if len(summary) <= 200 else f"{summary[:197]}... (make explain: all of it)")
    for warning in warnings:
        note(f"warning: {warning}")
    return record


def remove_untagged(engine: Engine, image: str) -> None:
    if engine.inspect(image, "{{json .RepoTags}}") in ("[]", "null"):
        engine.remove(image)


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


def check_image(engine: Engine, image: str, tag: str, ctx: Path, digests: dict[str, str]) -> None:
    """Refuse an image whose distributions differ from its lock or whose /app differs from
    the context's app/ (one clear line naming the image); remove it when nothing tags it.

    The check runs the image once (about a second). An image whose layers were already
    checked against the same lock and app/ files is not run again (build/checked.json), so a
    no-op rebuild costs one inspect.
    """
    expected_app = {n.removeprefix("app/"): d for n, d in digests.items() if n.startswith("app/")}
    expected_dists = sorted(f"{p.name}=={p.version}" for p in read_lock(ctx / "lock.txt"))
    layers = engine.inspect(image, "{{json .RootFS.Layers}}")
    key = hashlib.sha256(layers.encode()).hexdigest()
    expected = hashlib.sha256(json.dumps([expected_dists, expected_app]).encode()).hexdigest()
    record = engine.cfg.build_dir / "checked.json"
    checked = read_json(record, {}, cache=True)
    if layers and checked.get(key) == expected:
        return
    result = engine.run(["run", "--rm", "--network=none", "--entrypoint", "/opt/venv/bin/python",
                         image, "-c", PROBE],
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
            app = tag.split(":")[0].removeprefix(engine.cfg.image_prefix)
            problems.append(f"distributions differ from {app}'s lock "
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
    write_json(record, checked)


def run_trainer(engine: Engine, variant: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tag = engine.cfg.tag("trainer", variant)
    if not engine.exists(tag):
        raise ScriptError(f"{tag} does not exist: run `make image APP=trainer VARIANT={variant}`")
    step(f"training with {tag} into {shown(out)}")
    result = engine.run(["run", "--rm", "--network=none", "--user", f"{os.getuid()}:{os.getgid()}",
                         "--volume", f"{out.resolve()}:/artifacts", tag, "all", "--out",
                         "/artifacts"])  # fmt: skip
    if result.returncode != 0:
        raise ScriptError(f"the trainer image {tag} failed (exit {result.returncode})")
    for app, spec in load_apps().items():
        if "model" in spec and not (out / spec["model"]).is_dir():
            raise ScriptError(f"the trainer image did not write {out / spec['model']} ({app})")
    note(f"artifacts written to {shown(out)}")


def base_image(engine: Engine) -> str:
    """The base the last `base` step chose (its stamp), else resolved now."""
    stamp = engine.cfg.base_stamp
    if stamp.is_file():
        ref = stamp.read_text().split()[0]
        if engine.exists(ref):
            engine.name_first(ref)
            return ref
    return baseimage.resolve(engine)


def build_one(engine: Engine, app: str, variant: str, flags: list[str]) -> str:
    """Build one image from the current inputs; record its ID in Make's stamp; return it."""
    cfg, tag = engine.cfg, engine.cfg.tag(app, check_variant(variant))
    step(f"building {tag}")
    ctx = assemble_context(cfg, app, variant, wheel_hashes(cfg))
    seconds = build_image(engine, app, variant, ctx, base_image(engine), flags)
    image = engine.image_id(tag)
    note(f"{tag}: {seconds:.1f} s, {int(engine.inspect(tag, '{{.Size}}') or 0) / 1e6:.0f} MB")
    stamp = cfg.stamp(app, variant)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(f"{image}\n")
    return image


def prepare(engine: Engine, apps: list[str]) -> str:
    """Everything before the image builds, for commands that build outside Make (repro,
    bench): the engine, the base, the wheelhouse and the models the apps need."""
    engine.ensure()
    base = baseimage.resolve(engine)
    ensure_wheelhouse(engine.cfg)
    models = [app_spec(app)["model"] for app in apps if "model" in app_spec(app)]
    if any(not (engine.cfg.artifacts / model).is_dir() for model in models):
        trainer = engine.cfg.trainer_variant
        if not engine.exists(engine.cfg.tag("trainer", trainer)):
            build_one(engine, "trainer", trainer, [])
        run_trainer(engine, trainer, engine.cfg.artifacts)
    return base


def forget_missing(engine: Engine) -> list[Path]:
    """Remove Make's stamps of images that are gone or tagged to another ID (one engine
    call), so that Make builds them again; return the stamps removed."""
    stamps = sorted((engine.cfg.build_dir / "stamps" / engine.cfg.engine).glob("*-*"))
    if not stamps:
        return []
    tags = engine.tags()
    gone = []
    for stamp in stamps:
        app, _, variant = stamp.name.removeprefix(engine.cfg.image_prefix).rpartition("-")
        mine = stamp.name.startswith(engine.cfg.image_prefix) and variant in VARIANTS
        tagged = tags.get(engine.cfg.tag(app, variant), "").removeprefix("sha256:")
        if mine and tagged != stamp.read_text().strip().removeprefix("sha256:"):
            stamp.unlink()
            gone.append(stamp)
    return gone


def main(cfg: Config, command: str, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"imagetools {command}")
    engine = engine_for(cfg)
    if command == "image":
        parser.add_argument("app")
        parser.add_argument("variant")
        parser.add_argument("--flags", default="", help="extra flags for the engine's build")
        args = parser.parse_args(argv)
        app_spec(args.app)
        build_one(engine, args.app, args.variant, args.flags.split())
    elif command == "train":
        parser.add_argument("--variant", default=cfg.trainer_variant)
        parser.add_argument("--if-missing", action="store_true", help="only if no model is there")
        args = parser.parse_args(argv)
        models = [spec["model"] for spec in load_apps().values() if "model" in spec]
        if not args.if_missing or any(not (cfg.artifacts / m).is_dir() for m in models):
            run_trainer(engine, check_variant(args.variant), cfg.artifacts)
        (cfg.artifacts / ".trained").touch()  # Make's record of the models
    elif command == "context":
        parser.add_argument("app")
        parser.add_argument("variant", nargs="?", default="uv")
        args = parser.parse_args(argv)
        print(assemble_context(cfg, args.app, args.variant, wheel_hashes(cfg)))
    elif command == "forget-missing":
        for stamp in forget_missing(engine):
            print(f"{shown(stamp)}: its image is gone or was replaced; it will be built again")
    elif command == "clean":  # every image of apps.toml (the base and wheelhouse stay)
        tags = engine.tags()
        present = [t for app in load_apps() for v in VARIANTS if (t := cfg.tag(app, v)) in tags]
        if present:
            step(f"removing {len(present)} image(s)")
            engine.remove(*present)
        shutil.rmtree(cfg.build_dir / "stamps" / cfg.engine, ignore_errors=True)
    return 0
