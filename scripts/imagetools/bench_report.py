"""Summaries, goals, report.md and charts of a build benchmark (no engine needed).

    python -m imagetools bench-report build/bench/latest/results.json   # redo report + charts

bench_builds measures and calls write_outputs(); this module only reads results.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from .common import ROOT, ScriptError, shown, step
from .config import VARIANTS, Config

SCENARIO_ORDER = ("cold", "warm", "code", "dep", "lab", "cache")
COLORS = {"pip": "#4C72B0", "uv": "#DD8452", "multistage": "#55A868"}
# Backend cold builds before the dependency layers (README, 2026-11-22/12-02, 2 cores), which
# the layered builds may exceed by 10% at most.
BACKEND_COLD_BEFORE_S = {"pip": 23.8, "uv": 21.8, "multistage": 29.4}
CHARTS = {
    "cold_build.png": "Cold build and install time per app, by variant",
    "image_size.png": "Image size per app, by variant",
    "code_rebuild.png": "Code-only rebuild time per app, by variant",
    "time_to_healthy.png": "Time from `docker run` to the first 200, by variant",
    "installers.png": "Install command, the labs' way: from an index, no cache and warm cache",
}


def machine() -> dict:
    """This machine, as the benchmarks record it."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    cpu = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    return {
        "cores": os.cpu_count() or 0, "cpu": cpu[1].strip() if cpu else platform.processor(),
        "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "kernel": platform.release(),
        "platform": platform.platform(), "processor": platform.machine(),
        "python": platform.python_version(),
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else [],
    }  # fmt: skip


def stats(values: list) -> dict | None:
    """median, min, max and n of the values (None skipped); None when there are none."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}  # fmt: skip


def summarize(results: dict) -> dict:
    """Per app x variant x scenario build stats, per app x variant images and health."""
    builds: dict[tuple, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for b in results.get("builds", []):
        row = builds[(b["app"], b["variant"], b["scenario"])]
        for key in ("wall", "install", "setup", "compile", "install_step"):
            row[key].append(b.get(f"{key}_s"))
        row["new_layer_bytes"].append(b.get("new_layer_bytes"))
        row["cached"].append(f"{b.get('cached_steps', 0)}/{b.get('steps', 0)}")
        row["why"] += [line.split(" ", 1)[1] for line in b.get("explain", []) if "re-ran" in line]
    health, failures = defaultdict(list), defaultdict(int)
    for h in results.get("health", []):
        if h.get("ok"):
            health[(h["app"], h["variant"])].append(h["seconds"])
        else:
            failures[(h["app"], h["variant"])] += 1
    return {
        "builds": {key: {**{k: stats(v) for k, v in row.items() if k not in ("cached", "why")},
                         "cached": row["cached"], "why": sorted(set(row["why"]))}
                   for key, row in builds.items()},
        "images": {(i["app"], i["variant"]): i for i in results.get("images", [])},
        "health": {key: stats(v) for key, v in health.items()},
        "health_failures": dict(failures),
    }  # fmt: skip


def apps_variants(results: dict) -> tuple[list[str], list[str]]:
    config = results.get("config", {})
    rows = [*results.get("builds", []), *results.get("images", [])]
    found = {r["variant"] for r in rows}
    return (config.get("apps") or list(dict.fromkeys(r["app"] for r in rows)),
            config.get("variants") or [v for v in VARIANTS if v in found])  # fmt: skip


def _median(summary: dict, app: str, variant: str, scenario: str, metric: str) -> float | None:
    value = (summary["builds"].get((app, variant, scenario)) or {}).get(metric)
    return value["median"] if value else None


# ---- goals ---------------------------------------------------------------------------------
class Facts:
    """What the goals read from one run: medians per app x variant x scenario, images."""

    def __init__(self, results: dict) -> None:
        self.summary, (self.apps, self.variants) = summarize(results), apps_variants(results)
        self.health = {h["app"] for h in results.get("health", [])}

    def median(self, app: str, variant: str, scenario: str, metric: str) -> float | None:
        return _median(self.summary, app, variant, scenario, metric)

    def image(self, app: str, variant: str, key: str = "size_bytes") -> float | None:
        return (self.summary["images"].get((app, variant)) or {}).get(key)

    def each(self, value: Callable[[str], float | None]) -> dict[str, float]:
        """{variant: value} for the variants that have one."""
        found = {variant: value(variant) for variant in self.variants}
        return {variant: x for variant, x in found.items() if x is not None}


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


# A metric: for one app, the measured values by label ({} when none was measured, None when
# the goal does not apply to the app).
def speedup(scenario: str) -> Callable[[Facts, str], dict[str, float]]:
    def metric(f: Facts, app: str) -> dict[str, float]:
        pip, uv = (f.median(app, v, scenario, "install") for v in ("pip", "uv"))
        return {f"pip {pip:.1f} s / uv {uv:.1f} s =": pip / uv} if pip is not None and uv else {}

    return metric


def build_time(scenario: str, part: str = "wall") -> Callable[[Facts, str], dict[str, float]]:
    return lambda f, app: f.each(lambda v: f.median(app, v, scenario, part))


def share_of_cold(scenario: str) -> Callable[[Facts, str], dict[str, float]]:
    return lambda f, app: f.each(lambda v: _ratio(f.median(app, v, scenario, "wall"),
                                                  f.median(app, v, "cold", "wall")))  # fmt: skip


def new_bytes_share(f: Facts, app: str) -> dict[str, float]:
    return f.each(lambda v: _ratio(f.median(app, v, "dep", "new_layer_bytes"),
                                   f.image(app, v, "compressed_bytes")))  # fmt: skip


def cold_vs_before(f: Facts, app: str) -> dict[str, float]:
    return f.each(lambda v: _ratio(f.median(app, v, "cold", "wall"), BACKEND_COLD_BEFORE_S.get(v)))


def multistage_share(f: Facts, app: str) -> dict[str, float]:
    share = _ratio(f.image(app, "multistage"), f.image(app, "pip"))
    return {} if share is None else {"multistage / pip": share}


def multistage_gb(f: Facts, app: str) -> dict[str, float]:
    size = f.image(app, "multistage")
    return {} if size is None else {"multistage": size / 1e9}


def extra_layers(f: Facts, app: str) -> dict[str, float]:
    def extra(variant: str) -> float | None:
        layers, base = (f.image(app, variant, key) for key in ("layers", "base_layers"))
        return None if layers is None else layers - (base or 0)

    return f.each(extra)


def time_to_healthy(f: Facts, app: str) -> dict[str, float] | None:
    if app not in f.health:  # not a service, or not measured in this run
        return None
    failed = f.summary["health_failures"]
    return f.each(lambda v: math.inf if failed.get((app, v)) else
                  (f.summary["health"].get((app, v)) or {}).get("median"))  # fmt: skip


# The goals as data: id, the promise ({limit} filled in), metric, operator, limit (one for
# every app, or {app: limit} for the apps it concerns, "*" for any other app) and unit.
# check() holds the worst of a metric's values against the limit.
GOALS = (
    ("uv-speed", "uv install >= {limit}x faster than pip (cold)", speedup("cold"), ">=",
     {"flask": 5.0, "frontend": 5.0, "*": 3.0}, "x"),
    ("uv-lab", "uv install >= {limit}x faster than pip (lab: resolve, download, install)",
     speedup("lab"), ">=", {"flask": 3.0, "frontend": 3.0}, "x"),
    ("code-rebuild", "code-only rebuild <= {limit} s", build_time("code"), "<=", 3.0, "s"),
    ("code-share", "code-only rebuild <= {limit} of the cold build", share_of_cold("code"), "<=",
     0.05, "%"),
    ("dep-rebuild", "one small pin bumped: rebuild <= {limit} s", build_time("dep"), "<=",
     {"backend": 5.0}, "s"),
    ("dep-share", "one small pin bumped: rebuild <= {limit} of cold", share_of_cold("dep"),
     "<=", {"backend": 0.15}, "%"),
    ("dep-bytes", "one small pin bumped: new layers <= {limit} of the image as pushed",
     new_bytes_share, "<=", {"backend": 0.05}, "%"),
    ("bytecode", "bytecode step <= {limit} s (cold)", build_time("cold", "compile"), "<=",
     {"backend": 6.0}, "s"),
    ("cold-slowdown", "cold build <= {limit} of the one before the dependency layers",
     cold_vs_before, "<=", {"backend": 1.10}, "%"),
    ("multistage-size", "multistage <= {limit} of the pip image (uncompressed)",
     multistage_share, "<=", {"flask": 0.70, "frontend": 0.70, "backend": 0.75}, "%"),
    ("backend-size", "multistage <= {limit} GB uncompressed", multistage_gb, "<=",
     {"backend": 1.0}, "GB"),
    ("layers", "layers beyond the base's <= {limit}", extra_layers, "<=", 8, "layers"),
    ("healthy", "healthy <= {limit} s after docker run (median)", time_to_healthy, "<=", 5.0,
     "s"),
)  # fmt: skip
UNITS = {"x": ("{:g}", "{:.1f}x", "{:+.1f}x"), "s": ("{:g}", "{:.2f} s", "{:+.2f} s"),
         "%": ("{:.0%}", "{:.1%}", "{:+.1%}"), "GB": ("{:g}", "{:.2f} GB", "{:+.2f} GB"),
         "layers": ("{:g}", "{:.0f}", "{:+.0f}")}  # fmt: skip


def check(goal: tuple, facts: Facts) -> list[dict]:
    """One row per app the goal concerns: met / not met, with the values and the margin of
    the worst one, or not measured."""
    gid, text, metric, op, limit, unit = goal
    shown_limit, value_format, margin_format = UNITS[unit]

    def fmt(form: str, value: float) -> str:
        return "failed" if math.isinf(value) else form.format(value)

    rows = []
    for app in facts.apps:
        need = limit.get(app, limit.get("*")) if isinstance(limit, dict) else limit
        values = metric(facts, app) if need is not None else None
        if values is None:
            continue
        row = {"id": gid, "goal": text.format(limit=shown_limit.format(need)), "subject": app}
        if not values:
            rows.append({**row, "status": "not measured", "detail": "no measurement for it"})
            continue
        worst = (max if op == "<=" else min)(values, key=values.__getitem__)
        margin = need - values[worst] if op == "<=" else values[worst] - need
        labels = values if len(values) <= 3 else {f"worst of {len(values)}: {worst}": values[worst]}
        detail = "; ".join(f"{label} {fmt(value_format, v)}" for label, v in labels.items())
        rows.append({**row, "status": "met" if margin >= 0 else "not met",
                     "detail": f"{detail} (margin {fmt(margin_format, margin)})"})  # fmt: skip
    return rows


def goal_limit(gid: str) -> float:
    return next(goal[4] for goal in GOALS if goal[0] == gid)


def evaluate_goals(results: dict) -> list[dict]:
    """Every goal of GOALS for every app it concerns."""
    facts = Facts(results)
    return [row for goal in GOALS for row in check(goal, facts)]


# ---- report.md -----------------------------------------------------------------------------
def _fmt(value: dict | None, digits: int = 1) -> tuple[str, str]:
    """(median with unit, min-max spread), or dashes."""
    if not value:
        return "-", "-"
    return (f"{value['median']:.{digits}f} s",
            f"{value['min']:.{digits}f}-{value['max']:.{digits}f}")  # fmt: skip


def _mb(size: float | None) -> str:
    return "-" if size is None else f"{size / 1e6:,.0f} MB"


def _table(header: str, rows: list[list]) -> list[str]:
    columns = header.split(" | ")
    return ["", f"| {header} |", "|" + "---|" * len(columns),
            *(f"| {' | '.join(map(str, row))} |" for row in rows)]  # fmt: skip


def summary_rows(results: dict) -> list[dict]:
    """The build table as plain rows (also stored in results.json)."""
    summary, (apps, variants) = summarize(results), apps_variants(results)
    return [{"app": app, "variant": variant, "scenario": scenario,
             **{k: v for k, v in row.items() if k != "cached"}, "cached_steps": row["cached"]}
            for app in apps for scenario in SCENARIO_ORDER for variant in variants
            if (row := summary["builds"].get((app, variant, scenario)))]  # fmt: skip


def render_markdown(results: dict, goals: list[dict], charts: list[str]) -> str:
    summary, (apps, variants) = summarize(results), apps_variants(results)
    machine, config = results.get("machine", {}), results.get("config", {})
    images = summary["images"]
    lines = [
        "# Build benchmark: pip vs uv vs multi-stage", "",
        (f"- Date: {results.get('started', '?')} to {results['finished']} "
         f"({results.get('duration_s', 0):.0f} s in all)" if results.get("finished") else
         f"- Date: {results.get('started', '?')}; **interrupted, partial results**: "
         f"{results.get('error', 'the run did not finish')}"),
        f"- Machine: {machine.get('cores', '?')} cores ({machine.get('cpu', '?')}), "
        f"{machine.get('memory_bytes', 0) / 2**30:.1f} GiB memory, kernel "
        f"{machine.get('kernel', '?')}; load average at start "
        f"{', '.join(f'{x:.2f}' for x in machine.get('load_average_start', []))}",
        f"- Engine: {machine.get('engine', '?')} {machine.get('engine_server_version', '?')} "
        f"(client `{machine.get('engine_client', '?')}`)",
        f"- Base: `{config.get('base_image', '?')}` ({config.get('base_layers', '?')} layers); "
        f"revision `{config.get('git_revision', '?')[:12]}`",
        f"- Apps {', '.join(apps)}; variants {', '.join(variants)}; scenarios "
        f"{', '.join(config.get('scenarios', []))}; repeat {config.get('repeat', '?')}"
        + (" (quick mode)" if config.get("quick") else ""),
        f"- Fairness: {config.get('fairness', '-')}", "",
        "Times are medians with the spread (min-max) over the repeats. *install* is the install "
        "commands' own time in the dependency RUNs that ran (`pip install` or `uv pip install`, "
        "summed), read from layer.py's timed progress lines in the build log; *step* is those "
        "whole RUNs "
        "(installer check, install, bytecode, multistage pruning and staging). In lab and cache, "
        "*install* is the labs' one command (resolve, download, install; pip also compiles "
        "bytecode), in dockerfiles/bench/installers.Dockerfile. `-` means cached or not "
        "measured.", "",
        "## Goals",
    ]  # fmt: skip
    status = {"met": "met", "not met": "**not met**"}
    lines += _table("goal | subject | status | measured (margin)",
                    [[g["goal"], g["subject"], status.get(g["status"], g["status"]), g["detail"]]
                     for g in goals])  # fmt: skip
    rows = [[r["app"], r["scenario"], r["variant"], *_fmt(r["wall"]), *_fmt(r["install"]),
             _fmt(r["install_step"])[0], r["wall"]["n"] if r["wall"] else 0,
             ", ".join(sorted(set(r["cached_steps"]))), "; ".join(r["why"]) or "-"]
            for r in summary_rows(results)]  # fmt: skip
    lines += ["", "## Build times", *_table(
        "app | scenario | variant | wall (median) | wall spread | install (median) | install "
        "spread | step (median) | n | cached steps | re-ran, and why", rows)]  # fmt: skip

    def ratio(a: float | None, b: float | None) -> str:
        return f"{a / b:.2f}x" if a is not None and b else "-"

    def size(app: str, variant: str, key: str = "size_bytes") -> float | None:
        return images[(app, variant)][key] if (app, variant) in images else None

    rows = [[app, *(ratio(*(_median(summary, app, v, scenario, m) for v in ("pip", "uv")))
                    for scenario in ("cold", "lab", "cache") for m in ("install", "wall")),
             *(ratio(size(app, v), size(app, "multistage")) for v in ("pip", "uv")),
             ratio(*(size(app, v, "compressed_bytes") for v in ("pip", "multistage")))]
            for app in apps]  # fmt: skip
    lines += ["", "## Ratios", "", "pip/uv: how many times faster uv was, per scenario (cold: "
              "the images' hermetic builds; lab: resolving and downloading from the index, no "
              "cache; cache: the same with warm cache mounts, after a dependency change).",
              *_table("app | pip/uv install (cold) | pip/uv wall (cold) | pip/uv install (lab) "
                      "| pip/uv wall (lab) | pip/uv install (cache) | pip/uv wall (cache) | "
                      "pip/multistage size | uv/multistage size | pip/multistage gzip",
                      rows)]  # fmt: skip
    rows = []
    for app, variant in ((a, v) for a in apps for v in variants if (a, v) in images):
        image, failed = images[(app, variant)], summary["health_failures"].get((app, variant))
        healthy, spread = _fmt(summary["health"].get((app, variant)), digits=2)
        wasted = (f"{image['wasted_bytes'] / 1e6:.1f} MB ({image['efficiency']:.1%} efficient)"
                  if "wasted_bytes" in image else "-")  # fmt: skip
        rows.append([app, variant, _mb(image["size_bytes"]), _mb(image["compressed_bytes"]),
                     f"{image['layers']} (base {image['base_layers']} + "
                     f"{image['layers'] - image['base_layers']})", wasted,
                     healthy + (f" ({failed} failed)" if failed else ""), spread])  # fmt: skip
    lines += ["", "## Images", *_table("app | variant | size | gzip -6 (as pushed) | layers | "
                                       "wasted (dive) | time to healthy (median) | spread",
                                       rows)]  # fmt: skip
    if results.get("dep_change"):
        lines += ["", "## Dependency change", "",
                  "One lock pin moved to another version (its wheel and sha256 in a bench-only "
                  "wheel folder); a fresh comment line in the lock makes every repeat miss the "
                  "cache as the first did.", *_table("app | package | from | to | sha256", [
                      [app, c["package"], c["from"], c["to"], f"`{c['sha256'][:16]}...`"]
                      for app, c in results["dep_change"].items()])]  # fmt: skip
    if charts:
        lines += ["", "## Charts", "", "\n\n".join(f"![{CHARTS.get(n, n)}]({n})" for n in charts)]
    lines += ["", "## Commands", "", "The engine command line of one build per variant and "
              "scenario (every build's is in results.json):", ""]  # fmt: skip
    firsts = {}
    for b in results.get("builds", []):
        if b.get("command"):
            firsts.setdefault((b["variant"], b["scenario"]), b)
    shown_commands = [(f"{b['app']} {b['variant']} {b['scenario']}", b["command"])
                      for b in firsts.values()]  # fmt: skip
    health = next((h for h in results.get("health", []) if h.get("command")), None)
    if health:
        shown_commands.append((f"time to healthy ({health['app']} {health['variant']}), then "
                               "`rm --force`", health["command"]))  # fmt: skip
    for title, command in shown_commands:  # paths relative to the repository, not this machine's
        text = " ".join(command).replace(f"{ROOT}/", "")
        lines += [f"- {title}:", "", f"  ```\n  {text}\n  ```", ""]
    return "\n".join(lines).rstrip() + "\n"


# ---- charts --------------------------------------------------------------------------------
def _bars(ax, apps: list[str], variants: list[str], values: dict, ylabel: str, title: str,
          limit: float | None) -> bool:  # fmt: skip
    """Grouped bars, one group per app with data and one bar per variant, min-max as error
    bars, the goal as a dashed line; False when there is nothing to draw."""
    apps = [a for a in apps if any((a, v) in values for v in variants)]
    width = 0.8 / max(len(variants), 1)
    for i, variant in enumerate(variants):
        points = [(a, values[(x, variant)]) for a, x in enumerate(apps) if (x, variant) in values]
        if points:
            bars = ax.bar([a - 0.4 + width * (i + 0.5) for a, _ in points],
                          [v["median"] for _, v in points], width, label=variant,
                          color=COLORS.get(variant), capsize=3,
                          yerr=[[v["median"] - v["min"] for _, v in points],
                                [v["max"] - v["median"] for _, v in points]])  # fmt: skip
            ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
    if limit is not None:
        ax.axhline(limit, color="#C44E52", linestyle="--", linewidth=1, label=f"goal {limit:g}")
    ax.set_xticks(range(len(apps)), apps)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    if apps:
        ax.legend(fontsize=8)
    return bool(apps)


def make_charts(results: dict, out: Path) -> list[str]:
    """The PNG charts that have data; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary, (apps, variants) = summarize(results), apps_variants(results)
    builds = summary["builds"]

    def metric(scenario: str, name: str) -> dict:
        return {key[:2]: row[name] for key, row in builds.items()
                if key[2] == scenario and row[name]}  # fmt: skip

    def mb(key: str) -> dict:
        return {k: stats([i[key] / 1e6]) for k, i in summary["images"].items()}

    panels = {  # file: [(values, unit, title, goal)] side by side
        "cold_build.png": [
            (metric("cold", "wall"), "seconds", "Cold build (no cache), wall time", None),
            (metric("cold", "install"), "seconds", "Install command alone (cold)", None)],
        "image_size.png": [(mb("size_bytes"), "MB", "Image size, uncompressed", None),
                           (mb("compressed_bytes"), "MB", "Image size, gzip -6 (as pushed)", None)],
        "code_rebuild.png": [(metric("code", "wall"), "seconds",
                              "Code-only rebuild (one .py changed)", goal_limit("code-rebuild"))],
        "time_to_healthy.png": [(summary["health"], "seconds",
                                 "docker run -> first 200 on the health path",
                                 goal_limit("healthy"))],
        "installers.png": [
            (metric("lab", "install"), "seconds", "lab: resolve + download + install", None),
            (metric("cache", "install"), "seconds", "cache: warm cache mounts, one pin moved",
             None)],
    }  # fmt: skip
    written = []
    for name, row in panels.items():
        fig, axes = plt.subplots(1, len(row), figsize=(4 * len(row) + 3, 4.2), squeeze=False)
        drawn = [_bars(ax, apps, variants, *panel) for ax, panel in zip(axes[0], row, strict=True)]
        if any(drawn):
            fig.tight_layout()
            fig.savefig(out / name, dpi=110)
            written.append(name)
        plt.close(fig)
    return written


def write_outputs(results: dict, out: Path) -> None:
    """results.json (with summary and goals), report.md and the charts into out."""
    out.mkdir(parents=True, exist_ok=True)
    goals, charts = evaluate_goals(results), make_charts(results, out)
    results = {**results, "summary": summary_rows(results), "goals": goals, "charts": charts}
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "report.md").write_text(render_markdown(results, goals, charts))


def main(cfg: Config, command: str, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"imagetools {command}")
    parser.add_argument("results", type=Path, help="a results.json of bench-builds")
    parser.add_argument("--out", type=Path, help="where to write (default: beside results)")
    args = parser.parse_args(argv)
    try:
        results = json.loads(args.results.read_text())
    except (OSError, ValueError) as exc:
        raise ScriptError(f"cannot read {args.results}: {exc}") from None
    for key in ("summary", "goals", "charts"):
        results.pop(key, None)
    out = args.out or args.results.parent
    write_outputs(results, out)
    step(f"wrote {shown(out / 'report.md')} and its charts")
    return 0
