"""imagetools.sbom: the CycloneDX document of an inventory, built without an engine."""

from __future__ import annotations

import json

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from imagetools.common import ROOT, ScriptError
from imagetools.lockfile import read_lock
from imagetools.sbom import cyclonedx, installed_debs, render

IMAGE_ID = "sha256:" + "c" * 64
EPOCH = 1_700_000_000
DPKG_STATUS = """Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Version: 2.36-9+deb12u10
Description: GNU C Library: Shared libraries
 Contains the standard libraries.
 .
 Second paragraph.

Package: removed-pkg
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: broken-pkg
Status: install reinstreq half-installed
Architecture: amd64
Version: 2.0

Package: tzdata
Status: install ok installed
Architecture: all
Version: 2025b-0+deb12u1
"""
LOCK = {pin.name: pin for pin in read_lock(ROOT / "requirements" / "flask.txt")}


def inventory() -> dict:
    """What the probe reports for an image with flask and werkzeug (as the lock pins them)."""
    dists = [
        {"name": "Flask", "version": LOCK["flask"].version, "license": "",
         "classifiers": ["License :: OSI Approved :: BSD License"]},
        {"name": "Werkzeug", "version": LOCK["werkzeug"].version,
         "license": "BSD-3-Clause", "classifiers": []},
        {"name": "local_thing", "version": "1.0+local", "license": "Apache-2.0 OR MIT"},
    ]  # fmt: skip
    return {"python": "3.11.14", "os": {"ID": "debian", "VERSION_ID": "12"},
            "dpkg_status": DPKG_STATUS, "dists": dists}  # fmt: skip


def document(image_id: str = IMAGE_ID, **lock_hashes) -> str:
    hashes = {name: pin.hashes for name, pin in LOCK.items()} | lock_hashes
    return render(cyclonedx("grocery-flask", "uv", inventory(), hashes, image_id, EPOCH))


def test_only_installed_debian_packages_are_listed():
    debs = installed_debs(DPKG_STATUS)
    assert [(d["Package"], d["Version"]) for d in debs] == [
        ("libc6", "2.36-9+deb12u10"), ("tzdata", "2025b-0+deb12u1")
    ]  # fmt: skip
    assert installed_debs("") == []


def test_the_document_is_valid_cyclonedx_with_purls_lock_hashes_and_the_image_id():
    text = document()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    doc = json.loads(text)
    assert doc["bomFormat"] == "CycloneDX" and doc["specVersion"] == "1.6"
    assert doc["metadata"]["timestamp"].startswith("2023-11-14T22:13:20")
    root = doc["metadata"]["component"]
    assert (root["type"], root["name"], root["version"]) == ("container", "grocery-flask", "uv")
    assert {"name": "image:id", "value": IMAGE_ID} in root["properties"]
    tools = doc["metadata"]["tools"]["components"]
    assert [t["name"] for t in tools] == ["cyclonedx-python-lib"]

    by_purl = {c["purl"]: c for c in doc["components"]}
    flask = by_purl[f"pkg:pypi/flask@{LOCK['flask'].version}"]
    assert {h["content"] for h in flask["hashes"]} == set(LOCK["flask"].hashes)
    assert {h["alg"] for h in flask["hashes"]} == {"SHA-256"}
    assert flask["licenses"][0]["license"] == {"name": "BSD License", "acknowledgement": "declared"}
    werkzeug = by_purl[f"pkg:pypi/werkzeug@{LOCK['werkzeug'].version}"]
    assert werkzeug["licenses"][0]["license"]["id"] == "BSD-3-Clause"
    local = by_purl["pkg:pypi/local-thing@1.0%2Blocal"]  # normalized name, encoded version
    assert local["licenses"][0]["expression"] == "Apache-2.0 OR MIT" and "hashes" not in local
    assert "pkg:deb/debian/libc6@2.36-9%2Bdeb12u10?arch=amd64&distro=debian-12" in by_purl
    assert "pkg:deb/debian/tzdata@2025b-0%2Bdeb12u1?arch=all&distro=debian-12" in by_purl
    assert "pkg:generic/cpython@3.11.14" in by_purl  # no python3.11 deb: built from source
    assert not any("removed-pkg" in p or "broken-pkg" in p for p in by_purl)

    # The image contains every component.
    (deps,) = [d for d in doc["dependencies"] if d["ref"] == IMAGE_ID]
    assert sorted(deps["dependsOn"]) == sorted(c["bom-ref"] for c in doc["components"])


def test_the_same_image_gives_the_same_bytes():
    first = document()
    assert document() == first
    other = json.loads(document(image_id="sha256:" + "d" * 64))
    assert other["serialNumber"] != json.loads(first)["serialNumber"]
    assert other["serialNumber"].startswith("urn:uuid:")


def test_a_document_that_breaks_the_schema_is_refused():
    with pytest.raises(ScriptError, match=r"CycloneDX 1\.6 schema"):
        document(flask=frozenset({"not-a-sha256"}))
