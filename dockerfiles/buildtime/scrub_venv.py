"""Remove what uv records about the install moment from a venv: `scrub_venv.py VENV`.

uv writes `uv_cache.json` into every .dist-info it installs, holding the time it unpacked
the wheel, and lists it in RECORD. Two otherwise identical builds then differ. This deletes
those files and their RECORD lines, leaving the installed distributions as pip would.
"""

import sys
from pathlib import Path

NAME = "uv_cache.json"


def scrub(site: Path) -> int:
    count = 0
    for cache in sorted(site.glob(f"*.dist-info/{NAME}")):
        record = cache.parent / "RECORD"
        if record.is_file():
            lines = record.read_text().splitlines(keepends=True)
            prefix = f"{cache.parent.name}/{NAME},"
            record.write_text("".join(line for line in lines if not line.startswith(prefix)))
        cache.unlink()
        count += 1
    return count


def main(venv: str) -> int:
    sites = sorted(Path(venv).glob("lib/python3*/site-packages"))
    if len(sites) != 1:
        print(f"scrub_venv: error: no single site-packages in {venv}", file=sys.stderr)
        return 1
    print(f"scrub_venv: {scrub(sites[0])} uv_cache.json files removed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "/opt/venv"))
