"""Delete files a running service never uses from a venv: `prune_venv.py VENV PRUNE_LIST`.

Run in the multistage builder before bytecode compilation. PRUNE_LIST holds one glob per
line, relative to the venv's site-packages (from `prune` in dockerfiles/apps.toml); blank
lines and `#` comments are skipped. A pattern that matches nothing is an error, so a
package upgrade that moves files is noticed instead of silently keeping them. The image
tests prove what remains still serves.
"""

import shutil
import sys
from pathlib import Path


def prune(site: Path, patterns: list[str]) -> int:
    freed = 0
    for pattern in patterns:
        matches = sorted(site.glob(pattern))
        if not matches:
            raise SystemExit(f"prune_venv: error: {pattern!r} matches nothing in {site}")
        for path in matches:
            if not path.exists() and not path.is_symlink():
                continue  # inside a directory this pattern already removed
            if path.is_dir() and not path.is_symlink():
                freed += sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
                shutil.rmtree(path)
            else:
                freed += path.stat().st_size
                path.unlink()
    return freed


def main(venv: str, prune_list: str) -> int:
    lines = Path(prune_list).read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    sites = sorted(Path(venv).glob("lib/python3*/site-packages"))
    if len(sites) != 1:
        raise SystemExit(f"prune_venv: error: no single site-packages in {venv}")
    freed = prune(sites[0], patterns)
    print(f"prune_venv: {len(patterns)} patterns, {freed / 2**20:.0f} MiB removed")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
