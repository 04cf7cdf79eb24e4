"""imagetools.signing without an engine: the test key, the consumer's policy and registries.d,
where signatures go, and the one-line errors. Signing and refused pulls against a real
registry: tests/containers/test_container_registry.py."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from imagetools import signing
from imagetools.common import ScriptError
from imagetools.config import Config


def test_a_folder_store_is_read_and_written_in_place(tmp_path: Path) -> None:
    cfg = Config(build_dir=tmp_path, signatures=str(tmp_path / "sigs"))
    assert signing.store_urls(cfg) == ((tmp_path / "sigs").as_uri(),) * 2
    assert (
        signing.store_urls(Config(build_dir=tmp_path))[0]
        == (tmp_path / "registry" / "signatures").as_uri()
    )


def test_a_remote_store_is_read_from_its_url_and_staged_locally(tmp_path: Path) -> None:
    cfg = Config(build_dir=tmp_path, signatures="https://sigs.example.invalid/grocery")
    read, write = signing.store_urls(cfg)
    assert read == "https://sigs.example.invalid/grocery"
    assert write == (tmp_path / "signing" / "staging").as_uri()


def test_the_test_key_is_made_once_and_the_policy_trusts_only_it(tmp_path: Path) -> None:
    cfg = Config(build_dir=tmp_path, registry="registry.example.invalid/team")
    fingerprint, env = signing.signing_key(cfg)
    assert len(fingerprint) == 40 and env["GNUPGHOME"] == str(tmp_path / "signing" / "gnupg")
    assert signing.signing_key(cfg)[0] == fingerprint  # not a second key
    policy = json.loads(signing.write_trust(cfg, fingerprint, env).read_text())
    assert policy["default"] == [{"type": "reject"}]
    (rule,) = policy["transports"]["docker"]["registry.example.invalid/team"]
    assert (rule["type"], rule["keyType"]) == ("signedBy", "GPGKeys")
    listed = subprocess.run(["gpg", "--with-colons", "--show-keys", rule["keyPath"]],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert f"fpr:::::::::{fingerprint}:" in listed and "sec:" not in listed  # public only
    where = json.loads((tmp_path / "signing" / "registries.d" / "grocery.yaml").read_text())
    assert where["docker"]["registry.example.invalid/team"]["lookaside"].startswith("file:///")


def test_an_unknown_sign_key_is_one_line(tmp_path: Path) -> None:
    signing.signing_key(Config(build_dir=tmp_path))  # makes the test key's GNUPGHOME
    cfg = Config(build_dir=tmp_path, sign_key="0000000000000000DEADBEEF")
    with pytest.raises(ScriptError, match="no secret key '0000000000000000DEADBEEF' in GNUPGHOME"):
        signing.signing_key(cfg)


@pytest.mark.parametrize("registry", ["", "elsewhere.invalid/x"])
def test_signing_what_was_not_pushed_is_one_line(tmp_path: Path, registry: str) -> None:
    published = tmp_path / "published.json"
    published.write_text(json.dumps({"registry.invalid/x/grocery-flask:uv": {"digest": "d"}}))
    with pytest.raises(ScriptError, match="run `make push` first"):
        signing.selected(Config(registry=registry), published, ["flask"], ["uv"])


def test_pull_without_a_policy_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(ScriptError, match="run `make sign`"):
        signing.pull(Config(build_dir=tmp_path), [{"repository": "r", "digest": "d"}])


def test_the_reason_is_skopeos_last_message_without_its_log_prefix() -> None:
    stderr = 'time="x" level=info msg="a"\ntime="y" level=fatal msg="Source image rejected: no"\n'
    result = subprocess.CompletedProcess([], 1, "", stderr)
    assert signing.reason(result) == "Source image rejected: no"
