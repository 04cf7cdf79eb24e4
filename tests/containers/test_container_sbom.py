"""`make sbom`: a CycloneDX document per image, read from inside the image."""

from __future__ import annotations

import json

import pytest
from containers_support import CFG, ENGINE_OBJ, ROOT, image_ref, require_image, run_python

from imagetools import sbom
from imagetools.lockfile import read_lock

pytestmark = pytest.mark.container


@pytest.mark.parametrize("variant", ["uv", "multistage"])
@pytest.mark.images(apps=["flask"])
def test_sbom_lists_the_locked_distributions_and_debian_packages(tmp_path, variant):
    ref = image_ref("flask", variant)
    require_image(ref)
    argv = ["--apps", "flask", "--variants", variant, "--out", str(tmp_path)]
    assert sbom.main(CFG, "sbom", argv) == 0
    path = tmp_path / f"{CFG.image_prefix}flask-{variant}.cdx.json"
    text = path.read_text()
    assert sbom.VALIDATOR.validate_str(text) is None
    doc = json.loads(text)
    assert doc["bomFormat"] == "CycloneDX" and doc["specVersion"] == "1.6"
    assert doc["serialNumber"].startswith("urn:uuid:")
    root = doc["metadata"]["component"]
    assert (root["type"], root["name"]) == ("container", f"{CFG.image_prefix}flask")
    assert {"name": "image:id", "value": ENGINE_OBJ.image_id(ref)} in root["properties"]
    pypi = {c["name"]: c for c in doc["components"] if c["purl"].startswith("pkg:pypi/")}
    locked = {pin.name: pin for pin in read_lock(ROOT / "requirements" / "flask.txt")}
    assert {name: c["version"] for name, c in pypi.items()} == {
        name: pin.version for name, pin in locked.items()
    }
    for name, component in pypi.items():
        assert {h["content"] for h in component["hashes"]} == set(locked[name].hashes)
    debs = [c for c in doc["components"] if c["purl"].startswith("pkg:deb/debian/")]
    assert any(c["name"] == "libc6" for c in debs)
    # The image's own Debian release (the local base: 12; the official python:3.11-slim: 13).
    release = run_python(ref, "import platform; print(platform.freedesktop_os_release()"
                              "['VERSION_ID'])").strip()  # fmt: skip
    assert release.isdigit()
    assert all(f"distro=debian-{release}" in c["purl"] for c in debs if "?" in c["purl"])
    # The same image gives the same bytes.
    assert sbom.main(CFG, "sbom", argv) == 0
    assert path.read_text() == text
