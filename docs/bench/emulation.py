"""How much slower the services start and answer under CPU emulation (issue 18's figures).

Apple-silicon Macs run these linux/amd64 images under emulation (Docker Desktop: Rosetta 2
or QEMU). This x86_64 machine cannot be an arm64 host, so it runs the other way round what
QEMU does there: the image's Python under QEMU's user-mode emulator (qemu-x86_64-static,
Debian's qemu-user-static, bind-mounted as the entrypoint), against the same image run
natively. QEMU translates every instruction in either direction, so the slowdown is of the
same kind; Rosetta 2 translates ahead of time and is faster. Each service, uv variant: time
from `docker run` to the first 200 on its health path, then the median of 20 typical calls.

    .venv/bin/python docs/bench/emulation.py [--engine docker] [--runs 3]

Needs the images (`make images`) and, for the emulated runs, qemu-user-static (installed
with apt when missing, as root on Debian). Prints a Markdown table with the date and machine.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from imagetools.apps import load_apps  # noqa: E402

QEMU = "/usr/bin/qemu-x86_64-static"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(url: str, body: bytes | None = None, headers: dict | None = None) -> int:
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            answer.read()
            return answer.status
    except OSError:
        return 0


def png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (256, 256), (200, 60, 40)).save(out, "PNG")
    return out.getvalue()


def typical_call(app: str, base: str) -> tuple[str, bytes | None, dict]:
    if app == "backend":
        boundary = "emulationboundary"
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
        ).encode()
        body += png() + f"\r\n--{boundary}--\r\n".encode()
        return (f"{base}/predict", body,
                {"Content-Type": f"multipart/form-data; boundary={boundary}"})  # fmt: skip
    if app == "flask":
        return f"{base}/predict", json.dumps({"features": [[5.1, 3.5, 1.4, 0.2]]}).encode(), {
            "Content-Type": "application/json"}  # fmt: skip
    return f"{base}/", None, {}


def measure(engine: str, app: str, spec: dict, emulated: bool) -> dict:
    port, name = free_port(), f"emulation-{app}-{os.getpid()}"
    args = [engine, "run", "--detach", "--name", name, "--platform", "linux/amd64",
            "--publish", f"127.0.0.1:{port}:{spec['port']}"]  # fmt: skip
    if emulated:  # the launcher's exec would leave QEMU: start the server command itself
        env = {"PYTHONPATH": "/app", "PORT": str(spec["port"]), **spec.get("env", {})}
        command = [p.replace("{port}", str(spec["port"])) for p in spec["command"]]
        command[0] = "/opt/venv/bin/python" if command[0] == "python" else command[0]
        args += ["--volume", f"{QEMU}:/qemu:ro", "--entrypoint", "/qemu"]
        args += [f"--env={k}={v}" for k, v in env.items()]
        args += [f"grocery-{app}:uv", *command]
    else:
        args.append(f"grocery-{app}:uv")
    base = f"http://127.0.0.1:{port}"
    start = time.monotonic()
    subprocess.run(args, check=True, capture_output=True)
    try:
        while call(base + spec["health"]) != 200:
            if time.monotonic() - start > 300:
                raise SystemExit(f"{app}: not healthy within 300 s")
            time.sleep(0.05)
        healthy = time.monotonic() - start
        url, body, headers = typical_call(app, base)
        times = []
        for _ in range(20):
            began = time.monotonic()
            if call(url, body, headers) != 200:
                raise SystemExit(f"{app}: {url} did not answer 200")
            times.append(time.monotonic() - began)
        return {"healthy_s": healthy, "call_ms": statistics.median(times) * 1000}
    finally:
        subprocess.run([engine, "rm", "--force", name], capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", default="docker")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not Path(QEMU).exists():
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            raise SystemExit(f"{QEMU} is missing: install qemu-user-static")
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "qemu-user-static"], check=True)
    services = {app: spec for app, spec in load_apps().items() if "port" in spec}
    print(f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
          f"{args.engine}, median of {args.runs} runs (calls: median of 20).\n")  # fmt: skip
    print("| service | healthy, native | healthy, QEMU | slower | call, native | call, QEMU "
          "| slower |\n|---|---|---|---|---|---|---|")  # fmt: skip
    for app, spec in services.items():
        rows = {e: [measure(args.engine, app, spec, e) for _ in range(args.runs)]
                for e in (False, True)}  # fmt: skip
        med = {e: {k: statistics.median(r[k] for r in rows[e]) for k in rows[e][0]} for e in rows}
        native, qemu = med[False], med[True]
        print(f"| {app} | {native['healthy_s']:.1f} s | {qemu['healthy_s']:.1f} s | "
              f"{qemu['healthy_s'] / native['healthy_s']:.1f}x | {native['call_ms']:.0f} ms | "
              f"{qemu['call_ms']:.0f} ms | {qemu['call_ms'] / native['call_ms']:.1f}x |",
              flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
