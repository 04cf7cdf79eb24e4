"""Write a CycloneDX 1.6 JSON SBOM per image: `make sbom`.

    python -m imagetools sbom [--apps ...] [--variants ...] [--out build/sbom]

The inventory is read from inside each image with its own Python (every variant has one,
even the shell-less multistage runtime): the venv's distributions with their licences, the
raw /var/lib/dpkg/status and /etc/os-release. The document is built, serialized and checked
against the schema by cyclonedx-python-lib; Python distributions carry the sha256 values of
their locked wheels. The same image gives the same bytes: the serial number comes from the
image ID and the timestamp is SOURCE_DATE_EPOCH.
Output: build/sbom/<prefix><app>-<variant>.cdx.json.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from email.parser import HeaderParser

from cyclonedx.contrib.license.factories import LicenseFactory
from cyclonedx.contrib.this.builders import this_component
from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.license import LicenseAcknowledgement
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

from .apps import parse_selection
from .common import ROOT, ScriptError, note, shown, step
from .config import Config
from .engines import Engine, engine_for
from .lockfile import normalize, read_lock

# Runs inside the image (standard library only): print the inventory as JSON.
PROBE = r"""
import json, sys, platform, importlib.metadata as md
def read(path):
    try:
        return open(path, encoding="utf-8").read()
    except OSError:
        return ""
dists = [{"name": d.metadata["Name"], "version": d.version,
          "license": d.metadata.get("License-Expression") or d.metadata.get("License") or "",
          "classifiers": d.metadata.get_all("Classifier") or []}
         for d in md.distributions(path=[p for p in sys.path if p.startswith("/opt/venv")])]
try:
    os_release = platform.freedesktop_os_release()
except OSError:
    os_release = {}
print(json.dumps({"python": platform.python_version(), "dists": dists, "os": os_release,
                  "dpkg_status": read("/var/lib/dpkg/status")}))
"""
LICENSES = LicenseFactory()
DECLARED = LicenseAcknowledgement.DECLARED
VALIDATOR = JsonStrictValidator(SchemaVersion.V1_6)  # loads the schema once, on first use


def inventory(engine: Engine, tag: str) -> dict:
    args = ["run", "--rm", "--network=none", "--entrypoint", "/opt/venv/bin/python", tag,
            "-c", PROBE]  # fmt: skip
    result = engine.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        raise ScriptError(f"cannot read the inventory of {tag}: {result.stderr.strip()[-200:]}")
    return json.loads(result.stdout)


def installed_debs(status: str) -> list[dict[str, str]]:
    """The installed packages of a dpkg status file: deb822 paragraphs are RFC 822 headers."""
    paragraphs = (HeaderParser().parsestr(p) for p in status.split("\n\n") if p.strip())
    return [dict(p) for p in paragraphs if (p["Status"] or "").split()[-1:] == ["installed"]]


def licenses(dist: dict) -> list:
    """The declared licence: an SPDX id or expression, a name, else the licence classifiers."""
    value = dist.get("license", "").strip()
    if value and "\n" not in value and len(value) <= 100:  # not a whole licence text
        return [LICENSES.make_from_string(value, license_acknowledgement=DECLARED)]
    return [LICENSES.make_with_name(c.rpartition(" :: ")[2], acknowledgement=DECLARED)
            for c in dist.get("classifiers", []) if c.startswith("License :: ")]  # fmt: skip


def cyclonedx(name: str, variant: str, inv: dict, lock_hashes: dict, image_id: str,
              epoch: int) -> Bom:  # fmt: skip
    """The CycloneDX model of an image named name:variant from its inventory (pure)."""
    root = Component(type=ComponentType.CONTAINER, name=name, version=variant,
                     bom_ref=image_id or f"{name}:{variant}",
                     properties=[Property(name="image:id", value=image_id)])  # fmt: skip
    bom = Bom(
        serial_number=uuid.uuid5(uuid.NAMESPACE_URL, f"{name}:{variant}/{image_id}"),
        metadata=BomMetaData(component=root, timestamp=datetime.fromtimestamp(epoch, UTC)),
    )
    bom.metadata.tools.components.add(this_component())  # cyclonedx-python-lib, its version
    for dist in inv["dists"]:
        pypi = normalize(dist["name"])
        bom.components.add(Component(
            name=pypi, version=dist["version"], bom_ref=f"pypi:{pypi}@{dist['version']}",
            purl=PackageURL("pypi", None, pypi, dist["version"]), licenses=licenses(dist),
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=h)
                    for h in sorted(lock_hashes.get(pypi, ()))],
        ))  # fmt: skip
    distro = f"debian-{inv.get('os', {}).get('VERSION_ID', '')}".rstrip("-")
    debs = installed_debs(inv.get("dpkg_status", ""))
    for deb in debs:
        package, version, arch = deb["Package"], deb.get("Version", ""), deb.get("Architecture")
        qualifiers = {"arch": arch, "distro": distro} if arch else {}
        bom.components.add(Component(
            name=package, version=version, bom_ref=f"deb:{package}:{arch}@{version}",
            purl=PackageURL("deb", "debian", package, version, qualifiers),
        ))  # fmt: skip
    if not any(d["Package"].startswith("python3.11") for d in debs):  # built from source
        python = inv["python"]
        bom.components.add(Component(
            type=ComponentType.APPLICATION, name="cpython", version=python,
            bom_ref=f"cpython@{python}", purl=PackageURL("generic", None, "cpython", python),
        ))  # fmt: skip
    bom.register_dependency(root, bom.components)
    return bom


def render(bom: Bom) -> str:
    """The document as JSON, checked against the CycloneDX 1.6 schema (ScriptError if not)."""
    text = JsonV1Dot6(bom).output_as_string(indent=2) + "\n"
    error = VALIDATOR.validate_str(text)
    if error is not None:
        raise ScriptError(f"the SBOM breaks the CycloneDX 1.6 schema: {error.data.message}")
    return text


def main(cfg: Config, command: str, argv: list[str]) -> int:
    args, apps, variants = parse_selection(command, argv, cfg.build_dir / "sbom")
    engine = engine_for(cfg)
    args.out.mkdir(parents=True, exist_ok=True)
    for app in apps:
        lock_hashes = {p.name: p.hashes for p in read_lock(ROOT / "requirements" / f"{app}.txt")}
        for variant in variants:
            tag = cfg.tag(app, variant)
            image_id = engine.image_id(tag)
            if not image_id:
                raise ScriptError(f"{tag} does not exist: run `make images` first")
            step(f"SBOM for {tag}")
            inv = inventory(engine, tag)
            name = f"{cfg.image_prefix}{app}"
            bom = cyclonedx(name, variant, inv, lock_hashes, image_id, cfg.source_date_epoch)
            path = args.out / f"{name}-{variant}.cdx.json"
            path.write_text(render(bom))
            note(f"{shown(path)}: {len(bom.components)} components")
    return 0
