"""A static PEP 503 package index of local wheels, served on the loopback while in use.

The bench's `lab` and `cache` scenarios resolve and download through it, as the labs did from
PyPI, but the same on every run and without the internet. Standard library only: the index is
a folder of HTML pages (simple/<project>/index.html, each link with its #sha256=) and hard
links to the wheels (files/), which http.server serves as they are. Like PyPI, it serves each
wheel's METADATA on its own (PEP 658/714: files/<wheel>.metadata, announced on the link), so
a resolver reads a candidate's dependencies without downloading the wheel.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import sys
import threading
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from html import escape
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

from .common import ScriptError
from .lockfile import normalize

PAGE = "<!DOCTYPE html>\n<html><body>\n{}\n</body></html>\n"


def write_index(root: Path, wheels: dict[Path, str]) -> None:
    """root/simple/ for wheels ({path: sha256}), replacing what root held."""
    shutil.rmtree(root, ignore_errors=True)
    (root / "files").mkdir(parents=True)
    projects: dict[str, list[str]] = defaultdict(list)
    for wheel, digest in sorted(wheels.items()):
        os.link(wheel, root / "files" / wheel.name)
        with zipfile.ZipFile(wheel) as archive:
            names = [n for n in archive.namelist()
                     if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]  # fmt: skip
            if len(names) != 1:
                raise ScriptError(f"{wheel} is no wheel: it has {len(names)} .dist-info/METADATA")
            metadata = archive.read(names[0])
        (root / "files" / f"{wheel.name}.metadata").write_bytes(metadata)
        announced = f"sha256={hashlib.sha256(metadata).hexdigest()}"
        link = f"../../files/{quote(wheel.name)}#sha256={digest}"
        projects[normalize(wheel.name.split("-")[0])].append(
            f'<a href="{escape(link)}" data-dist-info-metadata="{announced}" '
            f'data-core-metadata="{announced}">{escape(wheel.name)}</a><br>'
        )
    for project, links in projects.items():
        (root / "simple" / project).mkdir(parents=True)
        (root / "simple" / project / "index.html").write_text(PAGE.format("\n".join(links)))
    listing = (f'<a href="{p}/">{p}</a><br>' for p in sorted(projects))
    (root / "simple" / "index.html").write_text(PAGE.format("\n".join(listing)))


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    # uv opens dozens of connections at once. With socketserver's default listen backlog (5)
    # the kernel drops the SYNs beyond it and the client retries after its 1 s timeout: every
    # uv resolution in the bench took 1-2 s longer than it does against PyPI's servers.
    request_queue_size = 128

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that stops reading a file it no longer needs (uv, once it has a wheel's
        # metadata) is no error of the index; anything else is printed as usual.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextlib.contextmanager
def serving(root: Path) -> Iterator[str]:
    """Serve root on 127.0.0.1 (a free port) in a thread; yields the index URL."""
    server = _Server(("127.0.0.1", 0), functools.partial(_Quiet, directory=root))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple/"
    finally:
        server.shutdown()
        server.server_close()
