"""`python -m imagetools makefile`: Make's view of apps.toml and of config.py's defaults.

The Makefile includes the output (build/apps.mk, remade when apps.toml or config.py
changes): the defaults of the variables it shares with the tooling, the list of apps, and per
app the source folders, lock and model its images are built from. The rules themselves are
in the Makefile. apps.toml is read as it is, unchecked: a new app must be lockable before its
table is valid, and every build command checks it.
"""

from __future__ import annotations

import tomllib

from .apps import APPS_FILE, LAYERS_KEY
from .config import VARIANTS, Config


def main(cfg: Config, command: str, argv: list[str]) -> int:
    defaults = Config()
    print("# Made by `python -m imagetools makefile` from dockerfiles/apps.toml and config.py.")
    for name in ("image_prefix", "base_image", "local_base", "official_base", "platform",
                 "trainer_variant", "torch_find_links"):  # fmt: skip
        print(f"{name.upper()} ?= {getattr(defaults, name)}")
    try:
        apps = tomllib.loads(APPS_FILE.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        apps = {}  # every command names the problem
    apps.pop(LAYERS_KEY, None)
    print(f"ALL_APPS := {' '.join(apps)}")
    print(f"ALL_VARIANTS := {' '.join(VARIANTS)}")
    for app, spec in apps.items():
        spec = spec if isinstance(spec, dict) else {}
        folders = " ".join(f"src/{p}" for p in spec.get("packages", []) if isinstance(p, str))
        print(f"INPUTS_{app} := requirements/{app}.txt {folders}")
        if isinstance(spec.get("model"), str):
            print(f"MODEL_{app} := {spec['model']}")
    return 0
