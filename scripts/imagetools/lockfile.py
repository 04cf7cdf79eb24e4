"""Read hashed pip-compile locks: `name==version` plus its `--hash=sha256:` values."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# `name==version` or `name[extra,...]==version`, then hashes and an optional `; marker`.
ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s;\\]+)")
HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    hashes: frozenset[str]

    @property
    def requirement(self) -> str:
        hashes = " ".join(f"--hash=sha256:{h}" for h in sorted(self.hashes))
        return f"{self.name}=={self.version} {hashes}"


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> list[Pin]:
    """Pins of a lock file, in file order. Comments and options are skipped."""
    text = path.read_text().replace("\r\n", "\n").replace("\\\n", " ")
    pins = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        match = ENTRY.match(line)
        if match:
            pins.append(Pin(normalize(match[1]), match[2], frozenset(HASH.findall(line))))
    return pins
