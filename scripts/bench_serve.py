"""Benchmark the backend: start it with uvicorn on 127.0.0.1, load POST /predict, report.

    python scripts/bench_serve.py [--model-dir D] [--concurrency 16] [--duration 20]
                                  [--workers 2] [--port 0] [--out build/bench-serve.json]

The server is started with `python -m backend` (uvicorn with TCP_NODELAY kept for several
workers, see src/serving/server.py); `--launcher uvicorn` uses plain uvicorn instead.

The load generator is a single asyncio thread with one keep-alive socket per simulated
client, sending a pre-built multipart request: it stays light on CPU so that the server gets
the cores. Loopback only; requests are bounded by --duration and --max-requests.

With --hostile N (default 64) a second, mixed run follows the clean one on the same server:
the same load with N hostile clients alongside, each holding a connection with half a
request (headers never finished, or a body that never comes) and opening another when the
server closes it. Goal: the mixed run keeps >= 80% of the clean run's requests/s and
p99 <= 3x p50.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import http.client
import io
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
HOST = "127.0.0.1"
GOAL_RPS = 200.0
GOAL_P99_OVER_P50 = 3.0
MIXED_SHARE = 0.8  # the mixed run keeps at least this share of the clean run's req/s


class BenchError(Exception):
    """A failure reported as one readable line."""


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None
    hostile_connections: list[int] = field(default_factory=lambda: [0])

    def error(self, message: str) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = message


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=ROOT / "artifacts" / "image")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--torch-threads", type=int, default=1, help="per worker")
    parser.add_argument("--port", type=int, default=0, help="0: pick a free port")
    parser.add_argument(
        "--launcher",
        choices=["backend", "uvicorn"],
        default="backend",
        help="`python -m backend` (uvicorn + TCP_NODELAY fix for --workers > 1) "
        "or plain `python -m uvicorn backend.main:app`",
    )
    parser.add_argument("--image", type=Path, help="image to send (default: a model sample)")
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument("--hostile", type=int, default=64,
                        help="hostile clients in a second, mixed run (0: none)")  # fmt: skip
    parser.add_argument("--startup-timeout", type=float, default=90.0)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench-serve.json")
    parser.add_argument(
        "--check-goal",
        action="store_true",
        help=f"exit 1 unless >= {GOAL_RPS:.0f} req/s and p99 <= {GOAL_P99_OVER_P50:.0f} x p50",
    )
    args = parser.parse_args(argv)
    for name in ("concurrency", "workers", "torch_threads", "max_requests"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.hostile < 0:
        parser.error("--hostile must be 0 or more")
    if args.duration <= 0 or args.warmup < 0:
        parser.error("--duration must be > 0 and --warmup >= 0")
    return args


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def image_to_send(model_dir: Path, image: Path | None) -> bytes:
    """The given image, else the first sample PNG of the model, else a generated PNG."""
    if image is not None:
        if not image.is_file():
            raise BenchError(f"--image {image} is not a file")
        return image.read_bytes()
    samples = sorted((model_dir / "samples").glob("*/*.png"))
    if samples:
        return samples[0].read_bytes()
    from PIL import Image  # only needed when the model has no samples

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 180, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def build_request(port: int, data: bytes) -> bytes:
    boundary = "benchserveboundary7d1f"
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="bench.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    head = (
        f"POST /predict HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    ).encode()
    return head + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status, body and whether the server keeps the connection open."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if "content-length" not in headers:
        raise BenchError(f"response without Content-Length (status {status})")
    body = await reader.readexactly(int(headers["content-length"]))
    return status, body, headers.get("connection", "").lower() != "close"


async def client(
    port: int, request: bytes, stop: float, measure_from: float, stats: Stats, budget: list[int]
) -> None:
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
            elapsed = time.perf_counter() - started
            if status != 200 or b'"label"' not in body:
                if started >= measure_from:
                    stats.error(f"HTTP {status}: {body[:120]!r}")
            elif started >= measure_from:
                stats.latencies.append(elapsed)
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


HALF_REQUESTS = (
    b"POST /predict HTTP/1.1\r\nHost: bench\r\n",  # headers never finished
    b"POST /predict HTTP/1.1\r\nHost: bench\r\nContent-Type: multipart/form-data; "
    b"boundary=x\r\nContent-Length: 1000000\r\n\r\n--x",  # a body that never comes
)


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
    stats = Stats()
    now = time.perf_counter()
    measure_from = now + args.warmup
    stop = measure_from + args.duration
    budget = [args.max_requests]
    tasks = [
        client(port, request, stop, measure_from, stats, budget) for _ in range(args.concurrency)
    ]
    tasks += [hostile(port, stop, n, stats.hostile_connections) for n in range(hostiles)]
    await asyncio.gather(*tasks)
    measured = max(1e-9, min(time.perf_counter(), stop) - measure_from)
    return stats, measured


def start_server(args: argparse.Namespace, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])),
        MODEL_DIR=str(args.model_dir),
        TORCH_THREADS=str(args.torch_threads),
        OMP_NUM_THREADS=str(args.torch_threads),
        LOG_LEVEL="WARNING",
    )
    launcher = ["uvicorn", "backend.main:app"] if args.launcher == "uvicorn" else ["backend"]
    command = [
        sys.executable,
        "-m",
        *launcher,
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(args.workers),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    with log.open("wb") as handle:
        return subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT)


def health(port: int) -> dict | None:
    connection = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        connection.request("GET", "/health")
        response = connection.getresponse()
        body = response.read()
        return json.loads(body) if response.status == 200 else None
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        connection.close()


def last_line(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    useful = [line for line in lines if "Error" in line or "error" in line]
    return (useful or lines or ["(no output)"])[-1].strip()


def wait_ready(server: subprocess.Popen[bytes], port: int, log: Path, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise BenchError(f"server exited with code {server.returncode}: {last_line(log)}")
        status = health(port)
        if status is not None:
            return status
        time.sleep(0.2)
    raise BenchError(f"server not healthy after {timeout:.0f}s: {last_line(log)}")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, round(q / 100 * len(sorted_values) + 0.4999))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def machine() -> dict:
    memory = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "memory_bytes": memory,
        "platform": platform.platform(),
        "processor": platform.machine(),
        "python": platform.python_version(),
    }


def summarise(stats: Stats, measured: float, args: argparse.Namespace, extra: dict) -> dict:
    latencies = sorted(stats.latencies)
    if not latencies:
        raise BenchError(f"no successful request; first error: {stats.first_error}")
    ms = [value * 1000 for value in latencies]
    p50, p90, p99 = (percentile(ms, q) for q in (50, 90, 99))
    rps = len(latencies) / measured
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "server": {
            "launcher": args.launcher,
            "workers": args.workers,
            "torch_threads_per_worker": args.torch_threads,
            "model_dir": str(args.model_dir),
            **extra,
        },
        "load": {
            "concurrency": args.concurrency,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
        },
        "results": {
            "requests": len(latencies),
            "errors": stats.errors,
            "first_error": stats.first_error,
            "measured_s": round(measured, 3),
            "requests_per_s": round(rps, 1),
            "latency_ms": {
                "p50": round(p50, 2),
                "p90": round(p90, 2),
                "p99": round(p99, 2),
                "mean": round(statistics.fmean(ms), 2),
                "max": round(ms[-1], 2),
            },
        },
        "goal": {
            "min_requests_per_s": GOAL_RPS,
            "max_p99_over_p50": GOAL_P99_OVER_P50,
            "p99_over_p50": round(p99 / p50, 2),
            "met": rps >= GOAL_RPS and p99 <= GOAL_P99_OVER_P50 * p50,
        },
    }


def print_table(report: dict) -> None:
    mach, res, goal = report["machine"], report["results"], report["goal"]
    lat = res["latency_ms"]
    memory = f"{mach['memory_bytes'] / 2**30:.1f} GiB" if mach["memory_bytes"] else "?"
    server = report["server"]
    print(f"date     {report['date']}")
    print(f"machine  {mach['cores']} cores, {memory}, {mach['platform']}")
    print(
        f"server   {server['launcher']}, {server['workers']} workers x "
        f"{server['torch_threads_per_worker']} torch thread(s), image "
        f"{server['image_bytes']} bytes, "
        f"load generator CPU {server['client_cpu_s']:.1f}s"
    )
    header = f"{'concurrency':>11} {'requests':>9} {'req/s':>8} {'p50 ms':>8} "
    header += f"{'p90 ms':>8} {'p99 ms':>8} {'errors':>7}"
    print(header)
    print(
        f"{report['load']['concurrency']:>11} {res['requests']:>9} {res['requests_per_s']:>8.1f} "
        f"{lat['p50']:>8.2f} {lat['p90']:>8.2f} {lat['p99']:>8.2f} {res['errors']:>7}"
    )
    if "mixed" in report:
        mixed, mres = report["mixed"], report["mixed"]["results"]
        print(
            f"{'+' + str(mixed['hostile_clients']) + ' hostile':>11} {mres['requests']:>9} "
            f"{mres['requests_per_s']:>8.1f} {mres['latency_ms']['p50']:>8.2f} "
            f"{mres['latency_ms']['p90']:>8.2f} {mres['latency_ms']['p99']:>8.2f} "
            f"{mres['errors']:>7}"
        )
        mgoal = mixed["goal"]
        print(
            f"mixed    {mixed['hostile_connections_opened']} hostile connections opened; "
            f"{mgoal['share_of_clean_requests_per_s']:.0%} of the clean req/s (goal >= "
            f"{mgoal['min_share_of_clean_requests_per_s']:.0%}), p99/p50 = "
            f"{mgoal['p99_over_p50']}: {'met' if mgoal['met'] else 'NOT met'}"
        )
    verdict = "met" if goal["met"] else "NOT met"
    print(
        f"goal     >= {goal['min_requests_per_s']:.0f} req/s and p99 <= "
        f"{goal['max_p99_over_p50']:.0f} x p50 (p99/p50 = {goal['p99_over_p50']}): {verdict}"
    )


def bench(args: argparse.Namespace) -> dict:
    if not (args.model_dir / "model.safetensors").is_file():
        raise BenchError(
            f"no model in {args.model_dir} (model.safetensors missing); train one with "
            "`python -m trainer image` or pass --model-dir"
        )
    data = image_to_send(args.model_dir, args.image)
    port = args.port or free_port()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        log = Path(tmp) / "server.log"
        server = start_server(args, port, log)
        try:
            status = wait_ready(server, port, log, args.startup_timeout)
            request = build_request(port, data)
            cpu_before = time.process_time()
            stats, measured = asyncio.run(run_load(port, request, args))
            client_cpu = time.process_time() - cpu_before
            if args.hostile:
                mixed, mixed_measured = asyncio.run(run_load(port, request, args, args.hostile))
            if server.poll() is not None:
                raise BenchError(f"server died during the run: {last_line(log)}")
        finally:
            stop_server(server)
    extra = {
        "model_version": status.get("model_version"),
        "image_bytes": len(data),
        "client_cpu_s": round(client_cpu, 2),
    }
    report = summarise(stats, measured, args, extra)
    if args.hostile:
        report["mixed"] = summarise_mixed(report, summarise(mixed, mixed_measured, args, extra),
                                          args.hostile, mixed.hostile_connections[0])  # fmt: skip
    return report


def summarise_mixed(clean: dict, mixed: dict, hostiles: int, opened: int) -> dict:
    """The mixed run's results, beside the clean run's, with its goal."""
    results, clean_rps = mixed["results"], clean["results"]["requests_per_s"]
    ratio = results["requests_per_s"] / clean_rps if clean_rps else 0.0
    p99_over_p50 = results["latency_ms"]["p99"] / results["latency_ms"]["p50"]
    return {
        "hostile_clients": hostiles,
        "hostile_connections_opened": opened,
        "results": results,
        "goal": {
            "min_share_of_clean_requests_per_s": MIXED_SHARE,
            "share_of_clean_requests_per_s": round(ratio, 3),
            "max_p99_over_p50": GOAL_P99_OVER_P50,
            "p99_over_p50": round(p99_over_p50, 2),
            "met": ratio >= MIXED_SHARE and p99_over_p50 <= GOAL_P99_OVER_P50,
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = bench(args)
    except BenchError as exc:
        print(f"bench-serve: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench-serve: interrupted", file=sys.stderr)
        return 130
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"wrote    {args.out}")
    results = report["results"]
    if results["errors"]:
        total = results["requests"] + results["errors"]
        print(
            f"bench-serve: error: {results['errors']} of {total} requests failed "
            f"(first: {results['first_error']})",
            file=sys.stderr,
        )
        return 1
    if args.check_goal and not report["goal"]["met"]:
        print("bench-serve: error: the throughput/latency goal was not met", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
