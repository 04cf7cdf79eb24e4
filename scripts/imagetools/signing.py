"""Signed images, and pulls that refuse what is not signed: `make sign`, `make pull`.

`sign` signs every image build/published.json records for REGISTRY and APPS x VARIANTS,
with GPG simple signing through Debian's skopeo and gnupg (Debian builds both engines and
skopeo without sigstore). The key is SIGN_KEY, a fingerprint in GNUPGHOME; without one, a
test key is made under build/signing/gnupg (never commit it). Signatures go to a lookaside
store, SIGNATURES (a folder, or the URL a consumer reads it from; default
build/registry/signatures). It also writes what a consumer needs, under build/signing/: the
public key, `registries.d/` (where the signatures are) and `policy.json`, which accepts an
image from REGISTRY only with a valid signature by that key.

`pull` copies each recorded image by digest from the registry into the engine under that
policy: an unsigned image, a signature by another key or for another image, or a tampered
blob is refused with one line, and nothing is tagged.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from .apps import parse_selection
from .common import ROOT, ScriptError, note, read_json, shown, step, write_json
from .config import Config
from .engines import LOOPBACK, engine_for

TEST_KEY_UID = "grocery-ml-containers test signing key <signing@grocery.invalid>"


def signing_dir(cfg: Config) -> Path:
    return cfg.build_dir / "signing"


def store_urls(cfg: Config) -> tuple[str, str]:
    """(read URL, write URL) of the lookaside store; a remote store is written locally."""
    where = cfg.signatures or str(cfg.build_dir / "registry" / "signatures")
    if "://" in where:
        return where, (signing_dir(cfg) / "staging").resolve().as_uri()
    url = Path(where).resolve().as_uri()
    return url, url


def skopeo(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    if not any(Path(d, "skopeo").exists() for d in os.environ["PATH"].split(os.pathsep)):
        subprocess.run([str(ROOT / "scripts" / "ensure-apt.sh"), "skopeo"], check=True)
    sides = (("src", args[-2]), ("dest", args[-1])) if args[0] == "copy" else (("", args[-1]),)
    plain = [f"--{side}{'-' if side else ''}tls-verify=false" for side, ref in sides
             if ref.startswith("docker://") and LOOPBACK.search(ref[9:] + " ")]  # fmt: skip
    return subprocess.run(["skopeo", args[0], *plain, *args[1:]], env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip


def reason(result: subprocess.CompletedProcess) -> str:
    """skopeo's own one-line reason, without its log prefix."""
    lines = [line for line in result.stderr.splitlines() if line.strip()] or ["no output"]
    return lines[-1].split('msg="', 1)[-1].rstrip('"')


def signing_key(cfg: Config) -> tuple[str, dict[str, str]]:
    """(fingerprint, environment for gpg) of SIGN_KEY, or of a test key made under build/."""
    env = dict(os.environ)
    if not cfg.sign_key:
        home = signing_dir(cfg) / "gnupg"
        env["GNUPGHOME"] = str(home)
        if not home.is_dir():
            step(f"no SIGN_KEY: making a test signing key in {shown(home)} (for tests only)")
            home.mkdir(parents=True, mode=0o700)
            generate = ["--batch", "--passphrase", "", "--quick-gen-key", TEST_KEY_UID, "ed25519"]
            subprocess.run(["gpg", *generate, "sign", "never"], env=env, capture_output=True,
                           check=True)  # fmt: skip
    wanted = [cfg.sign_key] if cfg.sign_key else []
    listed = subprocess.run(["gpg", "--with-colons", "--list-secret-keys", *wanted], env=env,
                            capture_output=True, text=True, check=False)  # fmt: skip
    fingerprints = [ln.split(":")[9] for ln in listed.stdout.splitlines() if ln.startswith("fpr:")]
    if listed.returncode != 0 or not fingerprints:
        home = env.get("GNUPGHOME", "~/.gnupg")
        raise ScriptError(f"no secret key {cfg.sign_key!r} in GNUPGHOME ({home}): "
                          "set SIGN_KEY to its fingerprint")  # fmt: skip
    return fingerprints[0], env


def write_trust(cfg: Config, fingerprint: str, env: dict[str, str]) -> Path:
    """Write the public key, registries.d and policy.json for REGISTRY; return policy.json."""
    out = signing_dir(cfg)
    (out / "registries.d").mkdir(parents=True, exist_ok=True)
    key = out / f"{fingerprint}.pub"
    exported = subprocess.run(["gpg", "--export", fingerprint], env=env, capture_output=True,
                              check=True).stdout  # fmt: skip
    key.write_bytes(exported)
    read, write = store_urls(cfg)
    where = {"docker": {cfg.registry: {"lookaside": read, "lookaside-staging": write}}}
    (out / "registries.d" / "grocery.yaml").write_text(json.dumps(where, indent=1) + "\n")
    signed = [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": str(key.resolve())}]
    policy = {"default": [{"type": "reject"}], "transports": {"docker": {cfg.registry: signed}}}
    (out / "policy.json").write_text(json.dumps(policy, indent=1) + "\n")
    return out / "policy.json"


def selected(cfg: Config, published: Path, apps: list[str], variants: list[str]) -> list[dict]:
    records = read_json(published, {})
    chosen = [records.get(f"{cfg.registry}/{cfg.image_prefix}{app}:{variant}")
              for app in apps for variant in variants]  # fmt: skip
    if not cfg.registry or not all(chosen):
        raise ScriptError(f"nothing recorded for REGISTRY={cfg.registry or '(unset)'} in "
                          f"{shown(published)} for these apps: run `make push` first")  # fmt: skip
    return chosen  # type: ignore[return-value]


def sign(cfg: Config, records: list[dict], published: Path) -> None:
    fingerprint, env = signing_key(cfg)
    write_trust(cfg, fingerprint, env)
    registries_d = str(signing_dir(cfg) / "registries.d")
    everything = read_json(published, {})
    for record in records:
        source = f"docker://{record['repository']}@{record['digest']}"
        step(f"signing {record['repository']}@{record['digest'][:19]} with {fingerprint[-16:]}")
        # One signature per digest (re-signing replaces it); the other tags name the same one.
        digestfile, target = (
            signing_dir(cfg) / "digest",
            f"{record['repository']}:{record['tags'][0]}",
        )
        result = skopeo(["copy", "--quiet", "--registries.d", registries_d, "--remove-signatures",
                         "--sign-by", fingerprint, "--digestfile", str(digestfile),
                         source, f"docker://{target}"], env)  # fmt: skip
        if result.returncode != 0:
            raise ScriptError(f"signing {target}: {reason(result)}")
        if digestfile.read_text().strip() != record["digest"]:
            raise ScriptError(f"signing {target} changed its digest")
        record["signed_by"] = fingerprint
        everything[f"{record['repository']}:{record['tags'][0]}"] = record
        write_json(published, everything)


def pull(cfg: Config, records: list[dict]) -> None:
    policy = signing_dir(cfg) / "policy.json"
    if not policy.is_file():
        raise ScriptError(f"no {shown(policy)}: run `make sign` (or put the publisher's there)")
    engine = engine_for(cfg)
    for record in records:
        ref = f"{record['repository']}:{record['tags'][0]}"
        source = f"docker://{record['repository']}@{record['digest']}"
        step(f"pulling {source[9:]} (signature checked by {shown(policy)})")
        destination, *flags = engine.skopeo_destination(ref)
        result = skopeo(["copy", "--quiet", "--policy", str(policy), *flags,
                         "--registries.d", str(signing_dir(cfg) / "registries.d"),
                         source, destination])  # fmt: skip
        if result.returncode != 0:
            raise ScriptError(f"refused {source[9:]}: {reason(result)}")
        image = record["image_id"].removeprefix("sha256:")
        if engine.image_id(ref).removeprefix("sha256:") != image:
            raise ScriptError(f"{ref}: the engine holds another image than the one published")
        note(f"{ref}: signed by {record.get('signed_by', '?')[-16:]}, image {image[:12]}")


def main(cfg: Config, command: str, argv: list[str]) -> int:
    args, apps, variants = parse_selection(command, argv, cfg.build_dir / "published.json")
    records = selected(cfg, args.out, apps, variants)
    if command == "sign":
        sign(cfg, records, args.out)
        step(f"signed {len(records)} image(s); a consumer's trust: {shown(signing_dir(cfg))}/"
             "policy.json, registries.d/ and the public key")  # fmt: skip
    else:
        pull(cfg, records)
        step(f"pulled {len(records)} signed image(s) by digest")
    return 0
