"""Summaries, goals, report.md and charts of a build benchmark (no engine needed).

    python -m imagetools bench-report build/bench/latest/results.json   # redo report + charts

bench_builds measures and calls write_outputs(); this module only reads results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
from collections import defaultdict
from pathlib import Path

from .common import ScriptError, shown, step
from .config import VARIANTS, Config

SCENARIO_ORDER = ("cold", "warm", "code", "dep", "lab", "cache")
COLORS = {"pip": "#4C72B0", "uv": "#DD8452", "multistage": "#55A868"}
# The goals' thresholds, in one place.
UV_SPEEDUP = {"flask": 5.0, "frontend": 5.0, "backend": 3.0, "trainer": 3.0}
UV_LAB_SPEEDUP = {"flask": 3.0, "frontend": 3.0}  # resolving and downloading, the labs' way
CODE_REBUILD_MAX_S = 3.0
CODE_REBUILD_MAX_SHARE = 0.05
MULTISTAGE_SHARE = {"flask": 0.70, "frontend": 0.70}
BACKEND_MAX_BYTES = 1_000_000_000
BACKEND_SHARE = 0.75
EXTRA_LAYERS = 8
DEP_REBUILD_MAX_S = 5.0  # one small pin bumped: only the last dependency layer re-runs
DEP_REBUILD_MAX_SHARE = 0.15
DEP_BYTES_MAX_SHARE = 0.05  # new layers as pushed, of the whole image as pushed
BYTECODE_MAX_S = 6.0  # backend, cold: every dependency layer's bytecode step together
# Backend cold builds before the dependency layers (README, 2026-11-22/12-02, 2 cores), which
# the layered builds may exceed by 10% at most.
BACKEND_COLD_BEFORE_S = {"pip": 23.8, "uv": 21.8, "multistage": 29.4}
COLD_SLOWDOWN_MAX = 1.10
HEALTHY_MAX_S = 5.0
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
def evaluate_goals(results: dict) -> list[dict]:
    """Each goal: met / not met (with the margin) or not measured."""
    summary, (apps, variants) = summarize(results), apps_variants(results)
    images, goals = summary["images"], []

    def add(gid: str, goal: str, subject: str, ok: bool | None, detail: str) -> None:
        status = "not measured" if ok is None else "met" if ok else "not met"
        goals.append({"id": gid, "goal": goal, "subject": subject, "status": status,
                      "detail": detail})  # fmt: skip

    for app in apps:
        need = UV_SPEEDUP.get(app, 3.0)
        text = f"uv install >= {need:g}x faster than pip (cold)"
        pip, uv = (_median(summary, app, v, "cold", "install") for v in ("pip", "uv"))
        if pip is None or not uv:
            add("uv-speed", text, app, None, "needs cold builds of the pip and uv variants")
        else:
            add("uv-speed", text, app, pip / uv >= need, f"pip {pip:.1f} s / uv {uv:.1f} s = "
                f"{pip / uv:.1f}x (margin {pip / uv - need:+.1f}x)")  # fmt: skip
    for app, need in UV_LAB_SPEEDUP.items():
        text = f"uv install >= {need:g}x faster than pip (lab: resolve and download)"
        pip, uv = (_median(summary, app, v, "lab", "install") for v in ("pip", "uv"))
        if app in apps and pip is not None and uv:
            add("uv-lab", text, app, pip / uv >= need, f"pip {pip:.1f} s / uv {uv:.1f} s = "
                f"{pip / uv:.1f}x (margin {pip / uv - need:+.1f}x)")  # fmt: skip
        elif app in apps:
            add("uv-lab", text, app, None, "needs lab builds of the pip and uv variants")
    for app in apps:
        text = f"code-only rebuild <= {CODE_REBUILD_MAX_S:g} s and <= 5% of the cold build"
        checked = []
        for variant in variants:
            code, cold = (_median(summary, app, variant, s, "wall") for s in ("code", "cold"))
            if code is not None:
                limit = min(CODE_REBUILD_MAX_S, CODE_REBUILD_MAX_SHARE * (cold or 1e9))
                share = f"{code / cold:.1%} of cold {cold:.1f} s" if cold else "cold not measured"
                checked.append((code <= limit, code, f"{variant} {code:.1f} s, {share}"))
        if not checked:
            add("code-rebuild", text, app, None, "no code-only builds")
        else:
            detail = "; ".join(c[2] for c in checked)
            margin = CODE_REBUILD_MAX_S - max(c[1] for c in checked)
            add("code-rebuild", text, app, all(c[0] for c in checked),
                f"{detail} (margin {margin:+.1f} s, slowest)")  # fmt: skip
    for app in [a for a in apps if a == "backend"]:  # issue 12's goal: the backend
        text = (f"one small pin bumped: rebuild <= {DEP_REBUILD_MAX_S:g} s and <= "
                f"{DEP_REBUILD_MAX_SHARE:.0%} of cold; new layers <= "
                f"{DEP_BYTES_MAX_SHARE:.0%} of the image as pushed")  # fmt: skip
        checked = []
        for variant in variants:
            dep, cold = (_median(summary, app, variant, s, "wall") for s in ("dep", "cold"))
            pushed = (images.get((app, variant)) or {}).get("compressed_bytes")
            new = _median(summary, app, variant, "dep", "new_layer_bytes")
            if dep is None:
                continue
            ok: bool | None = dep <= DEP_REBUILD_MAX_S and (
                cold is None or dep <= DEP_REBUILD_MAX_SHARE * cold
            )
            share = f", {dep / cold:.0%} of cold" if cold else ""
            moved = ", new layers not measured"
            if new is not None and pushed:
                ok = ok and new <= DEP_BYTES_MAX_SHARE * pushed
                moved = f", {new / 1e6:.1f} MB new ({new / pushed:.1%} of {pushed / 1e6:.0f} MB)"
            elif ok:
                ok = None  # the time is met, the bytes are unknown
            checked.append((ok, dep, f"{variant} {dep:.1f} s{share}{moved}"))
        if checked:
            margin = DEP_REBUILD_MAX_S - max(c[1] for c in checked)
            found = [c[0] for c in checked]
            status = False if False in found else None if None in found else True
            detail = "; ".join(c[2] for c in checked)
            add("dep-rebuild", text, app, status, f"{detail} (margin {margin:+.1f} s, slowest)")
    if "backend" in apps:
        for variant in variants:
            compiled = _median(summary, "backend", variant, "cold", "compile")
            if compiled is not None:
                add("bytecode", f"backend bytecode step <= {BYTECODE_MAX_S:g} s (cold)",
                    f"backend {variant}", compiled <= BYTECODE_MAX_S,
                    f"{compiled:.1f} s (margin {BYTECODE_MAX_S - compiled:+.1f} s)")  # fmt: skip
            cold, before = (_median(summary, "backend", variant, "cold", "wall"),
                            BACKEND_COLD_BEFORE_S.get(variant))  # fmt: skip
            if cold is not None and before:
                limit = before * COLD_SLOWDOWN_MAX
                add(
                    "backend-cold",
                    f"backend cold build <= {COLD_SLOWDOWN_MAX - 1:.0%} slower "
                    "than before the dependency layers",
                    f"backend {variant}",
                    cold <= limit,
                    f"{cold:.1f} s vs {before:.1f} s before (margin {limit - cold:+.1f} s)",
                )
    sizes = {key: image["size_bytes"] for key, image in images.items()}

    def share_goal(gid: str, app: str, share: float, text: str) -> None:
        multi, pip = sizes.get((app, "multistage")), sizes.get((app, "pip"))
        if not multi or not pip:
            return add(gid, text, app, None, "needs the pip and multistage images")
        add(gid, text, app, multi / pip <= share, f"{multi / 1e6:.0f} MB / {pip / 1e6:.0f} MB = "
            f"{multi / pip:.0%} (margin {share - multi / pip:+.0%})")  # fmt: skip

    for app, share in MULTISTAGE_SHARE.items():
        if app in apps:
            share_goal("multistage-size", app, share,
                       f"multistage <= {share:.0%} of the pip image (uncompressed)")  # fmt: skip
    if "backend" in apps:
        multi = sizes.get(("backend", "multistage"))
        text = f"backend multistage <= {BACKEND_MAX_BYTES / 1e9:.1f} GB uncompressed"
        if not multi:
            add("backend-size", text, "backend", None, "no image")
        else:
            margin = (BACKEND_MAX_BYTES - multi) / 1e6
            add("backend-size", text, "backend", margin >= 0,
                f"{multi / 1e9:.2f} GB (margin {margin:+.0f} MB)")  # fmt: skip
        share_goal("backend-share", "backend", BACKEND_SHARE,
                   f"backend multistage <= {BACKEND_SHARE:.0%} of its pip image")  # fmt: skip
    text = f"every image <= base layers + {EXTRA_LAYERS}"
    if not images:
        add("layers", text, "all images", None, "no images measured")
    else:
        over = {f"{a}:{v}": i["layers"] - i["base_layers"] for (a, v), i in images.items()}
        worst = max(over, key=lambda k: over[k])
        add("layers", text, "all images", over[worst] <= EXTRA_LAYERS, f"most: {worst} with "
            f"base + {over[worst]} (margin {EXTRA_LAYERS - over[worst]:+d} layers)")  # fmt: skip
    for app in sorted({h["app"] for h in results.get("health", [])}, key=apps.index):
        rows = [(v, summary["health"].get((app, v)), summary["health_failures"].get((app, v), 0))
                for v in variants]  # fmt: skip
        rows = [r for r in rows if r[1] or r[2]]
        medians = [s["median"] for _, s, _ in rows if s]
        detail = "; ".join(f"{v} {s['median']:.2f} s ({s['min']:.2f}-{s['max']:.2f})" if s
                           else f"{v} failed" for v, s, _ in rows)  # fmt: skip
        if medians:
            detail += f" (margin {HEALTHY_MAX_S - max(medians):+.2f} s on the slowest)"
        ok = bool(medians) and not any(f for _, _, f in rows) and max(medians) <= HEALTHY_MAX_S
        add("healthy", f"healthy <= {HEALTHY_MAX_S:g} s after docker run (median)", app, ok, detail)
    return goals


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
        "summed), read from `bench-mark` timestamps in the build log; *step* is those whole RUNs "
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
    for title, command in shown_commands:
        lines += [f"- {title}:", "", f"  ```\n  {' '.join(command)}\n  ```", ""]
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
                              "Code-only rebuild (one .py changed)", CODE_REBUILD_MAX_S)],
        "time_to_healthy.png": [(summary["health"], "seconds",
                                 "docker run -> first 200 on the health path", HEALTHY_MAX_S)],
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
