#!/usr/bin/env python3
"""Write a CycloneDX 1.5 JSON SBOM per image: `make sbom`.

    python scripts/sbom.py [--apps ...] [--variants ...] [--out build/sbom]

The inventory is read from inside each image with its own Python (every variant has one,
even the shell-less multistage runtime): the venv's distributions with their licences, and
the Debian packages in /var/lib/dpkg/status. Python distributions carry the sha256 values of
their locked wheels. Output: build/sbom/grocery-<app>-<variant>.cdx.json.
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
from pathlib import Path
from urllib.parse import quote

from common import (
    BUILD,
    ROOT,
    VARIANTS,
    ScriptError,
    check_variant,
    engine_run,
    image_exists,
    load_apps,
    main_wrapper,
    note,
    source_date_epoch,
    step,
)
from locks import normalize, read_lock

# Runs inside the image: print the inventory as JSON. Standard library only.
PROBE = r"""
import json, sys, platform, importlib.metadata as md
dists = []
for d in md.distributions(path=[p for p in sys.path if p.startswith("/opt/venv")]):
    meta = d.metadata
    dists.append({"name": meta["Name"], "version": d.version,
                  "license": meta.get("License-Expression") or meta.get("License") or ""})
debs, current = [], {}
try:
    text = open("/var/lib/dpkg/status", encoding="utf-8").read()
except OSError:
    text = ""
for block in text.split("\n\n"):
    fields = {}
    for line in block.splitlines():
        if line[:1] not in (" ", "\t") and ":" in line:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    if fields.get("Package") and "installed" in fields.get("Status", ""):
        debs.append({"name": fields["Package"], "version": fields.get("Version", ""),
                     "arch": fields.get("Architecture", "")})
osr = {}
try:
    for line in open("/etc/os-release"):
        key, _, value = line.strip().partition("=")
        osr[key] = value.strip('"')
except OSError:
    pass
print(json.dumps({"python": platform.python_version(), "dists": dists, "debs": debs,
                  "os": osr}))
"""


def inventory(engine: str, tag: str) -> dict:
    args = ["run", "--rm", "--network=none", "--entrypoint", "/opt/venv/bin/python", tag,
            "-c", PROBE]  # fmt: skip
    result = engine_run(engine, args, capture_output=True, text=True)
    if result.returncode != 0:
        raise ScriptError(f"cannot read the inventory of {tag}: {result.stderr.strip()[-200:]}")
    return json.loads(result.stdout)


def image_id(engine: str, tag: str) -> str:
    result = engine_run(
        engine, ["image", "inspect", "--format", "{{.Id}}", tag], capture_output=True, text=True
    )
    return result.stdout.strip()


def cyclonedx(app: str, variant: str, inv: dict, lock_hashes: dict, digest: str, epoch: int):
    """Build the CycloneDX document from an inventory (pure: unit-tested)."""
    from datetime import UTC, datetime

    distro = inv.get("os", {})
    distro_q = f"debian-{distro.get('VERSION_ID', '')}".rstrip("-")
    components = []
    for dist in sorted(inv["dists"], key=lambda d: normalize(d["name"])):
        name = normalize(dist["name"])
        component = {
            "type": "library", "name": name, "version": dist["version"],
            "purl": f"pkg:pypi/{name}@{quote(dist['version'], safe='')}",
            "bom-ref": f"pypi:{name}@{dist['version']}",
        }  # fmt: skip
        if dist.get("license"):
            component["licenses"] = [{"license": {"name": dist["license"][:200]}}]
        hashes = lock_hashes.get(name, [])
        if hashes:
            component["hashes"] = [{"alg": "SHA-256", "content": h} for h in sorted(hashes)]
        components.append(component)
    for deb in sorted(inv["debs"], key=lambda d: d["name"]):
        qualifiers = f"?arch={deb['arch']}&distro={distro_q}" if deb["arch"] else ""
        components.append(
            {
                "type": "library",
                "name": deb["name"],
                "version": deb["version"],
                "purl": f"pkg:deb/debian/{deb['name']}@{quote(deb['version'], safe='')}"
                + qualifiers,
                "bom-ref": f"deb:{deb['name']}@{deb['version']}",
            }
        )
    if not any(d["name"].startswith("python3.11") for d in inv["debs"]):
        version = inv["python"]
        components.append(
            {
                "type": "application",
                "name": "cpython",
                "version": version,
                "purl": f"pkg:generic/cpython@{version}",
                "bom-ref": f"cpython@{version}",
            }
        )
    serial = uuid.uuid5(uuid.NAMESPACE_URL, f"grocery/{app}/{variant}/{digest}")
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{serial}",
        "version": 1,
        "metadata": {
            "timestamp": datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {"components": [{"type": "application", "name": "grocery-sbom"}]},
            "component": {
                "type": "container",
                "name": f"grocery-{app}",
                "version": variant,
                "bom-ref": digest or f"grocery-{app}:{variant}",
                "properties": [{"name": "image:id", "value": digest}],
            },
        },
        "components": components,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", default=os.environ.get("ENGINE", "docker"))
    parser.add_argument("--apps", nargs="*", default=os.environ.get("APPS", "").split())
    parser.add_argument("--variants", nargs="*", default=os.environ.get("VARIANTS", "").split())
    parser.add_argument("--out", type=Path, default=BUILD / "sbom")
    args = parser.parse_args()
    apps = args.apps or list(load_apps())
    variants = [check_variant(v) for v in (args.variants or VARIANTS)]
    prefix = os.environ.get("IMAGE_PREFIX", "grocery-")
    args.out.mkdir(parents=True, exist_ok=True)
    epoch = source_date_epoch()
    for app in apps:
        lock_hashes = {p.name: p.hashes for p in read_lock(ROOT / "requirements" / f"{app}.txt")}
        for variant in variants:
            tag = f"{prefix}{app}:{variant}"
            if not image_exists(args.engine, tag):
                raise ScriptError(f"{tag} does not exist: run `make images` first")
            step(f"SBOM for {tag}")
            inv = inventory(args.engine, tag)
            doc = cyclonedx(app, variant, inv, lock_hashes, image_id(args.engine, tag), epoch)
            path = args.out / f"{prefix}{app}-{variant}.cdx.json"
            path.write_text(json.dumps(doc, indent=2) + "\n")
            note(
                f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: "
                f"{len(inv['dists'])} Python distributions, {len(inv['debs'])} Debian packages"
            )
    return 0


if __name__ == "__main__":
    main_wrapper(main)
