"""Benchmark the backend: start it on 127.0.0.1, load POST /predict, report: `make bench-serve`.

    python -m imagetools bench-serve [--model-dir D] [--concurrency 16] [--duration 20]
                                     [--workers 2] [--hostile 64] [--out build/bench-serve.json]

The server is `python -m backend` (uvicorn, TCP_NODELAY kept for several workers; `--launcher
uvicorn`: plain uvicorn). The load is one asyncio thread, one keep-alive socket per client and
a pre-built multipart request, light on CPU so that the server gets the cores. With --hostile
N a mixed run follows on the same server: the same load with N clients alongside that each
hold half a request (headers never finished, or a body that never comes), reconnecting when
the server closes it. Goals: >= 200 req/s and p99 <= 3x p50; the mixed run keeps >= 80% of
the clean req/s and p99 <= 3x p50.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .bench_report import machine
from .common import ROOT, ScriptError, stop
from .config import Config

HOST = "127.0.0.1"
GOAL_RPS = 200.0
GOAL_P99_OVER_P50 = 3.0
MIXED_SHARE = 0.8  # the mixed run keeps at least this share of the clean run's req/s
HALF_REQUESTS = (
    b"POST /predict HTTP/1.1\r\nHost: bench\r\n",  # headers never finished
    b"POST /predict HTTP/1.1\r\nHost: bench\r\nContent-Type: multipart/form-data; "
    b"boundary=x\r\nContent-Length: 1000000\r\n\r\n--x",  # a body that never comes
)


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None
    hostile_connections: list[int] = field(default_factory=lambda: [0])

    def error(self, message: str) -> None:
        self.errors += 1
        self.first_error = self.first_error or message


def get(port: int, path: str = "/health", timeout: float = 2.0) -> bytes | None:
    """The body of a 200 answer to GET path on 127.0.0.1:port; None for anything else."""
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        return body if response.status == 200 else None
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def image_to_send(model_dir: Path, image: Path | None) -> bytes:
    """The given image, else the first sample PNG the trainer saved with the model."""
    found = [image] if image else sorted((model_dir / "samples").glob("*/*.png"))[:1]
    if not found or not found[0].is_file():
        raise ScriptError(f"--image {image} is not a file" if image else
                          f"no sample image in {model_dir}/samples: pass --image")  # fmt: skip
    return found[0].read_bytes()


def build_request(port: int, data: bytes) -> bytes:
    boundary = "benchserveboundary7d1f"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            "filename=\"bench.png\"\r\nContent-Type: image/png\r\n\r\n").encode() + data + \
        f"\r\n--{boundary}--\r\n".encode()  # fmt: skip
    head = (f"POST /predict HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n")  # fmt: skip
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status, body and whether the server keeps the connection open."""
    lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    if "content-length" not in headers:
        raise ValueError(f"response without Content-Length (status {status})")
    body = await reader.readexactly(int(headers["content-length"]))
    return status, body, headers.get("connection", "").lower() != "close"


async def client(port: int, request: bytes, stop: float, measure_from: float, stats: Stats,
                 budget: list[int]) -> None:  # fmt: skip
    """One simulated user: sequential requests on a keep-alive connection until `stop`."""
    reader = writer = None
    while time.perf_counter() < stop and budget[0] > 0:
        budget[0] -= 1
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(HOST, port)
            started = time.perf_counter()
            writer.write(request)
            status, body, keep = await read_response(reader)
            if started >= measure_from:
                if status != 200 or b'"label"' not in body:
                    stats.error(f"HTTP {status}: {body[:120]!r}")
                else:
                    stats.latencies.append(time.perf_counter() - started)
            if not keep:
                writer.close()
                writer = None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            if time.perf_counter() >= measure_from:
                stats.error(f"{type(exc).__name__}: {exc}")
            if writer is not None:
                writer.close()
            writer = None
            await asyncio.sleep(0.05)
    if writer is not None:
        writer.close()


async def hostile(port: int, stop: float, number: int, opened: list[int]) -> None:
    """One hostile client until `stop`: half a request, held until the server closes it."""
    while time.perf_counter() < stop:
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.write(HALF_REQUESTS[(number + opened[0]) % len(HALF_REQUESTS)])
        opened[0] += 1
        with contextlib.suppress(TimeoutError, OSError):
            await asyncio.wait_for(reader.read(), timeout=max(stop - time.perf_counter(), 0.01))
        writer.close()


async def run_load(port: int, request: bytes, args: argparse.Namespace,
                   hostiles: int = 0) -> tuple[Stats, float]:  # fmt: skip
    """Warm up, then measure; return the stats and the measured wall time."""
    stats, budget = Stats(), [args.max_requests]
    measure_from = time.perf_counter() + args.warmup
    stop = measure_from + args.duration
    clients = [client(port, request, stop, measure_from, stats, budget)
               for _ in range(args.concurrency)]  # fmt: skip
    hostiles_ = [hostile(port, stop, n, stats.hostile_connections) for n in range(hostiles)]
    await asyncio.gather(*clients, *hostiles_)
    return stats, max(1e-9, min(time.perf_counter(), stop) - measure_from)


def start_server(args: argparse.Namespace, port: int, log: Path) -> subprocess.Popen[bytes]:
    threads, path = str(args.torch_threads), [str(ROOT / "src"), os.environ.get("PYTHONPATH")]
    env = dict(os.environ, MODEL_DIR=str(args.model_dir), TORCH_THREADS=threads,
               OMP_NUM_THREADS=threads, LOG_LEVEL="WARNING",
               PYTHONPATH=os.pathsep.join(filter(None, path)))  # fmt: skip
    launcher = ["uvicorn", "backend.main:app"] if args.launcher == "uvicorn" else ["backend"]
    command = [sys.executable, "-m", *launcher, "--host", HOST, "--port", str(port), "--workers",
               str(args.workers), "--no-access-log", "--log-level", "warning"]  # fmt: skip
    with log.open("wb") as handle:
        return subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT)


def last_line(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return ([line for line in lines if "rror" in line] or lines or ["(no output)"])[-1]


def wait_ready(server: subprocess.Popen[bytes], port: int, log: Path, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise ScriptError(f"server exited with code {server.returncode}: {last_line(log)}")
        body = get(port)
        if body is not None:
            return json.loads(body)
        time.sleep(0.2)
    raise ScriptError(f"server not healthy after {timeout:.0f}s: {last_line(log)}")


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, round(q / 100 * len(sorted_values) + 0.4999))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def results_of(stats: Stats, measured: float) -> dict:
    if not stats.latencies:
        raise ScriptError(f"no successful request; first error: {stats.first_error}")
    ms = sorted(value * 1000 for value in stats.latencies)
    latency = {f"p{q}": round(percentile(ms, q), 2) for q in (50, 90, 99)}
    return {"requests": len(ms), "errors": stats.errors, "first_error": stats.first_error,
            "measured_s": round(measured, 3), "requests_per_s": round(len(ms) / measured, 1),
            "latency_ms": latency | {"mean": round(statistics.fmean(ms), 2),
                                     "max": round(ms[-1], 2)}}  # fmt: skip


def p99_over_p50(results: dict) -> float:
    return round(results["latency_ms"]["p99"] / results["latency_ms"]["p50"], 2)


def bench(args: argparse.Namespace) -> dict:
    """Start the server, run the clean load (then the mixed one); the report."""
    if not (args.model_dir / "model.safetensors").is_file():
        raise ScriptError(f"no model in {args.model_dir} (model.safetensors missing); train one "
                          "with `make train-local` or pass --model-dir")  # fmt: skip
    data = image_to_send(args.model_dir, args.image)
    if not args.port:
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            args.port = sock.getsockname()[1]
    request = build_request(args.port, data)
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        log = Path(tmp) / "server.log"
        server = start_server(args, args.port, log)
        try:
            status = wait_ready(server, args.port, log, args.startup_timeout)
            cpu_before = time.process_time()
            clean = results_of(*asyncio.run(run_load(args.port, request, args)))
            client_cpu = time.process_time() - cpu_before
            if args.hostile:
                stats, measured = asyncio.run(run_load(args.port, request, args, args.hostile))
                mixed = results_of(stats, measured)
            if server.poll() is not None:
                raise ScriptError(f"server died during the run: {last_line(log)}")
        finally:
            stop(server)
    ratio = p99_over_p50(clean)
    report = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": machine(),
        "server": {"launcher": args.launcher, "workers": args.workers,
                   "torch_threads_per_worker": args.torch_threads, "model_dir": str(args.model_dir),
                   "model_version": status.get("model_version"), "image_bytes": len(data),
                   "client_cpu_s": round(client_cpu, 2)},
        "load": {"concurrency": args.concurrency, "duration_s": args.duration,
                 "warmup_s": args.warmup},
        "results": clean,
        "goal": {"min_requests_per_s": GOAL_RPS, "max_p99_over_p50": GOAL_P99_OVER_P50,
                 "p99_over_p50": ratio,
                 "met": clean["requests_per_s"] >= GOAL_RPS and ratio <= GOAL_P99_OVER_P50},
    }  # fmt: skip
    if args.hostile:
        share, ratio = mixed["requests_per_s"] / clean["requests_per_s"], p99_over_p50(mixed)
        report["mixed"] = {
            "hostile_clients": args.hostile,
            "hostile_connections_opened": stats.hostile_connections[0], "results": mixed,
            "goal": {"min_share_of_clean_requests_per_s": MIXED_SHARE,
                     "share_of_clean_requests_per_s": round(share, 3),
                     "max_p99_over_p50": GOAL_P99_OVER_P50, "p99_over_p50": ratio,
                     "met": share >= MIXED_SHARE and ratio <= GOAL_P99_OVER_P50},
        }  # fmt: skip
    return report


def print_table(report: dict) -> None:
    mach, server, goal = report["machine"], report["server"], report["goal"]
    memory = f"{mach['memory_bytes'] / 2**30:.1f} GiB" if mach["memory_bytes"] else "?"
    print(f"date     {report['date']}")
    print(f"machine  {mach['cores']} cores, {memory}, {mach['platform']}")
    print(f"server   {server['launcher']}, {server['workers']} workers x "
          f"{server['torch_threads_per_worker']} torch thread(s), image {server['image_bytes']} "
          f"bytes, load generator CPU {server['client_cpu_s']:.1f}s")  # fmt: skip
    print(f"{'concurrency':>11} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p90 ms':>8} "
          f"{'p99 ms':>8} {'errors':>7}")  # fmt: skip
    mixed = report.get("mixed")
    runs = [(str(report["load"]["concurrency"]), report["results"])]
    runs += [(f"+{mixed['hostile_clients']} hostile", mixed["results"])] if mixed else []
    for label, res in runs:
        lat = res["latency_ms"]
        print(f"{label:>11} {res['requests']:>9} {res['requests_per_s']:>8.1f} {lat['p50']:>8.2f} "
              f"{lat['p90']:>8.2f} {lat['p99']:>8.2f} {res['errors']:>7}")  # fmt: skip
    if mixed:
        mgoal = mixed["goal"]
        print(f"mixed    {mixed['hostile_connections_opened']} hostile connections opened; "
              f"{mgoal['share_of_clean_requests_per_s']:.0%} of the clean req/s (goal >= "
              f"{MIXED_SHARE:.0%}), p99/p50 = {mgoal['p99_over_p50']}: "
              f"{'met' if mgoal['met'] else 'NOT met'}")  # fmt: skip
    print(f"goal     >= {GOAL_RPS:.0f} req/s and p99 <= {GOAL_P99_OVER_P50:.0f} x p50 (p99/p50 = "
          f"{goal['p99_over_p50']}): {'met' if goal['met'] else 'NOT met'}")  # fmt: skip


def main(cfg: Config, command: str, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"imagetools {command}",
                                     description=__doc__.split("\n\n")[0])  # fmt: skip
    add = parser.add_argument
    add("--model-dir", type=Path, default=cfg.artifacts / "image")
    add("--concurrency", type=int, default=16)
    add("--duration", type=float, default=20.0, help="measured seconds")
    add("--warmup", type=float, default=3.0, help="unmeasured seconds first")
    add("--workers", type=int, default=2, help="uvicorn worker processes")
    add("--torch-threads", type=int, default=1, help="per worker")
    add("--port", type=int, default=0, help="0: pick a free port")
    add("--launcher", choices=["backend", "uvicorn"], default="backend",
        help="`python -m backend` (uvicorn + TCP_NODELAY fix for --workers > 1) or plain "
        "`python -m uvicorn backend.main:app`")  # fmt: skip
    add("--image", type=Path, help="image to send (default: a model sample)")
    add("--max-requests", type=int, default=200_000)
    add("--hostile", type=int, default=64, help="hostile clients in a second, mixed run (0: none)")
    add("--startup-timeout", type=float, default=90.0)
    add("--out", type=Path, default=cfg.build_dir / "bench-serve.json")
    add("--check-goal", action="store_true", help=f"exit 1 unless >= {GOAL_RPS:.0f} req/s "
        f"and p99 <= {GOAL_P99_OVER_P50:.0f} x p50")  # fmt: skip
    args = parser.parse_args(argv)
    for name in ("concurrency", "workers", "torch_threads", "max_requests"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.hostile < 0 or args.duration <= 0 or args.warmup < 0:
        parser.error("--hostile must be >= 0, --duration > 0 and --warmup >= 0")
    report = bench(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"wrote    {args.out}")
    results = report["results"]
    if results["errors"]:
        raise ScriptError(f"{results['errors']} of {results['requests'] + results['errors']} "
                          f"requests failed (first: {results['first_error']})")  # fmt: skip
    if args.check_goal and not report["goal"]["met"]:
        raise ScriptError("the throughput/latency goal was not met")
    return 0
