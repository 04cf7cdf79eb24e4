"""`make sbom`: a CycloneDX document per image, read from inside the image."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from containers_support import ENGINE, ROOT, image_ref, require_image

from locks import read_lock

pytestmark = pytest.mark.container


@pytest.mark.parametrize("variant", ["uv", "multistage"])
def test_sbom_lists_the_locked_distributions_and_debian_packages(tmp_path, variant):
    require_image(image_ref("flask", variant))
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sbom.py"), "--engine", ENGINE,
         "--apps", "flask", "--variants", variant, "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    doc = json.loads((tmp_path / f"grocery-flask-{variant}.cdx.json").read_text())
    assert doc["bomFormat"] == "CycloneDX" and doc["specVersion"] == "1.5"
    assert doc["serialNumber"].startswith("urn:uuid:")
    assert doc["metadata"]["component"]["name"] == "grocery-flask"
    pypi = {c["name"]: c for c in doc["components"] if c["purl"].startswith("pkg:pypi/")}
    locked = {pin.name: pin for pin in read_lock(ROOT / "requirements" / "flask.txt")}
    assert {name: c["version"] for name, c in pypi.items()} == {
        name: pin.version for name, pin in locked.items()
    }
    for name, component in pypi.items():
        assert {h["content"] for h in component["hashes"]} == set(locked[name].hashes)
    debs = [c for c in doc["components"] if c["purl"].startswith("pkg:deb/debian/")]
    assert any(c["name"] == "libc6" for c in debs)
    assert all("distro=debian-12" in c["purl"] for c in debs if "?" in c["purl"])
