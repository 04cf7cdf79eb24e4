#!/usr/bin/env python3
"""Summaries, goals, report.md and charts of a build benchmark (no engine needed).

    python3 scripts/bench_report.py build/bench/latest/results.json   # redo report + charts

scripts/bench_builds.py measures and calls write_outputs(); this module only reads results.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

SCENARIO_ORDER = ("cold", "warm", "code", "dep")
VARIANT_ORDER = ("pip", "uv", "multistage")
COLORS = {"pip": "#4C72B0", "uv": "#DD8452", "multistage": "#55A868"}
# Goals of the issue: thresholds in one place.
UV_SPEEDUP = {"flask": 5.0, "frontend": 5.0, "backend": 3.0, "trainer": 3.0}
CODE_REBUILD_MAX_S = 3.0
CODE_REBUILD_MAX_SHARE = 0.05
MULTISTAGE_SHARE = {"flask": 0.70, "frontend": 0.70}
BACKEND_MAX_BYTES = 1_000_000_000
BACKEND_SHARE = 0.75
EXTRA_LAYERS = 4
HEALTHY_MAX_S = 5.0
CHARTS = {
    "cold_build.png": "Cold build and install time per app, by variant",
    "image_size.png": "Image size per app, by variant",
    "code_rebuild.png": "Code-only rebuild time per app, by variant",
    "time_to_healthy.png": "Time from `docker run` to the first 200, by variant",
}


def stats(values: list[float]) -> dict | None:
    """median, min, max and n of the values; None when there are none."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def _ordered(items, order) -> list:
    return sorted(items, key=lambda x: (order.index(x) if x in order else len(order), x))


def summarize(results: dict) -> dict:
    """Per app x variant x scenario build stats, per app x variant images and health."""
    builds: dict[tuple[str, str, str], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for b in results.get("builds", []):
        row = builds[(b["app"], b["variant"], b["scenario"])]
        for key in ("wall_s", "install_s", "setup_s", "compile_s", "install_step_s"):
            row[key].append(b.get(key))
        row["cached"].append(f"{b.get('cached_steps', 0)}/{b.get('steps', 0)}")
        row["why"] += [line.split(" ", 1)[1] for line in b.get("explain", []) if "re-ran" in line]
    health: dict[tuple[str, str], list] = defaultdict(list)
    failures: dict[tuple[str, str], int] = defaultdict(int)
    for h in results.get("health", []):
        if h.get("ok"):
            health[(h["app"], h["variant"])].append(h["seconds"])
        else:
            failures[(h["app"], h["variant"])] += 1
    return {
        "builds": {
            key: {
                "wall": stats(v["wall_s"]),
                "install": stats(v["install_s"]),
                "setup": stats(v["setup_s"]),
                "compile": stats(v["compile_s"]),
                "install_step": stats(v["install_step_s"]),
                "cached": v["cached"],
                "why": sorted(set(v["why"])),
            }
            for key, v in builds.items()
        },
        "images": {(i["app"], i["variant"]): i for i in results.get("images", [])},
        "health": {key: stats(v) for key, v in health.items()},
        "health_failures": dict(failures),
    }


def apps_variants(results: dict) -> tuple[list[str], list[str]]:
    config = results.get("config", {})
    rows = [*results.get("builds", []), *results.get("images", [])]
    apps = config.get("apps") or sorted({r["app"] for r in rows})
    variants = config.get("variants") or _ordered({r["variant"] for r in rows}, VARIANT_ORDER)
    return list(apps), list(variants)


# ---- goals ---------------------------------------------------------------------------------
def _goal(gid: str, goal: str, subject: str, status: str, detail: str) -> dict:
    return {"id": gid, "goal": goal, "subject": subject, "status": status, "detail": detail}


def _median(summary: dict, app: str, variant: str, scenario: str, metric: str) -> float | None:
    row = summary["builds"].get((app, variant, scenario))
    value = row and row.get(metric)
    return value["median"] if value else None


def evaluate_goals(results: dict) -> list[dict]:
    """Each goal: met / not met (with the margin) or not measured."""
    summary = summarize(results)
    apps, variants = apps_variants(results)
    goals = []
    for app in apps:
        threshold = UV_SPEEDUP.get(app, 3.0)
        text = f"uv install >= {threshold:g}x faster than pip (cold)"
        pip = _median(summary, app, "pip", "cold", "install")
        uv = _median(summary, app, "uv", "cold", "install")
        if pip is None or uv is None or uv <= 0:
            goals.append(
                _goal(
                    "uv-speed",
                    text,
                    app,
                    "not measured",
                    "needs cold builds of the pip and uv variants",
                )
            )
        else:
            ratio = pip / uv
            goals.append(
                _goal(
                    "uv-speed",
                    text,
                    app,
                    "met" if ratio >= threshold else "not met",
                    f"pip {pip:.1f} s / uv {uv:.1f} s = {ratio:.1f}x "
                    f"(margin {ratio - threshold:+.1f}x)",
                )
            )
    for app in apps:
        text = f"code-only rebuild <= {CODE_REBUILD_MAX_S:g} s and <= 5% of the cold build"
        checked = []
        for variant in variants:
            code = _median(summary, app, variant, "code", "wall")
            if code is None:
                continue
            cold = _median(summary, app, variant, "cold", "wall")
            ok = code <= CODE_REBUILD_MAX_S and (
                cold is None or code <= CODE_REBUILD_MAX_SHARE * cold
            )
            share = f", {code / cold:.1%} of cold {cold:.1f} s" if cold else ", cold not measured"
            checked.append((ok, f"{variant} {code:.1f} s{share}"))
        if not checked:
            goals.append(_goal("code-rebuild", text, app, "not measured", "no code-only builds"))
        else:
            worst = max(_median(summary, app, v, "code", "wall") or 0 for v in variants)
            goals.append(
                _goal(
                    "code-rebuild",
                    text,
                    app,
                    "met" if all(ok for ok, _ in checked) else "not met",
                    "; ".join(d for _, d in checked)
                    + f" (margin {CODE_REBUILD_MAX_S - worst:+.1f} s, slowest)",
                )
            )
    images = summary["images"]
    for app, share in MULTISTAGE_SHARE.items():
        if app not in apps:
            continue
        text = f"multistage <= {share:.0%} of the pip image (uncompressed)"
        multi, pip = images.get((app, "multistage")), images.get((app, "pip"))
        if not multi or not pip:
            goals.append(
                _goal(
                    "multistage-size",
                    text,
                    app,
                    "not measured",
                    "needs the pip and multistage images",
                )
            )
            continue
        ratio = multi["size_bytes"] / pip["size_bytes"]
        goals.append(
            _goal(
                "multistage-size",
                text,
                app,
                "met" if ratio <= share else "not met",
                f"{multi['size_bytes'] / 1e6:.0f} MB / {pip['size_bytes'] / 1e6:.0f} MB"
                f" = {ratio:.0%} (margin {share - ratio:+.0%})",
            )
        )
    if "backend" in apps:
        multi, pip = images.get(("backend", "multistage")), images.get(("backend", "pip"))
        text = "backend multistage <= 1.0 GB uncompressed"
        if multi:
            size = multi["size_bytes"]
            goals.append(
                _goal(
                    "backend-size",
                    text,
                    "backend",
                    "met" if size <= BACKEND_MAX_BYTES else "not met",
                    f"{size / 1e9:.2f} GB (margin {(BACKEND_MAX_BYTES - size) / 1e6:+.0f} MB)",
                )
            )
        else:
            goals.append(_goal("backend-size", text, "backend", "not measured", "no image"))
        text = f"backend multistage <= {BACKEND_SHARE:.0%} of its pip image"
        if multi and pip:
            ratio = multi["size_bytes"] / pip["size_bytes"]
            goals.append(
                _goal(
                    "backend-share",
                    text,
                    "backend",
                    "met" if ratio <= BACKEND_SHARE else "not met",
                    f"{ratio:.0%} (margin {BACKEND_SHARE - ratio:+.0%})",
                )
            )
        else:
            goals.append(
                _goal(
                    "backend-share",
                    text,
                    "backend",
                    "not measured",
                    "needs the pip and multistage images",
                )
            )
    text = f"every image <= base layers + {EXTRA_LAYERS}"
    if images:
        over = {f"{a}:{v}": i["layers"] - i["base_layers"] for (a, v), i in images.items()}
        worst = max(over, key=lambda k: over[k])
        goals.append(
            _goal(
                "layers",
                text,
                "all images",
                "met" if over[worst] <= EXTRA_LAYERS else "not met",
                f"most: {worst} with base + {over[worst]} "
                f"(margin {EXTRA_LAYERS - over[worst]:+d} layers)",
            )
        )
    else:
        goals.append(_goal("layers", text, "all images", "not measured", "no images measured"))
    services = sorted({h["app"] for h in results.get("health", [])}, key=apps.index)
    for app in services:
        text = f"healthy <= {HEALTHY_MAX_S:g} s after docker run (median)"
        rows = [
            (v, summary["health"].get((app, v)), summary["health_failures"].get((app, v), 0))
            for v in variants
        ]
        rows = [r for r in rows if r[1] or r[2]]
        failed = [v for v, _, f in rows if f]
        medians = [s["median"] for _, s, _ in rows if s]
        ok = not failed and medians and max(medians) <= HEALTHY_MAX_S
        detail = "; ".join(
            f"{v} {s['median']:.2f} s ({s['min']:.2f}-{s['max']:.2f})" if s else f"{v} failed"
            for v, s, _ in rows
        )
        if medians:
            detail += f" (margin {HEALTHY_MAX_S - max(medians):+.2f} s on the slowest)"
        goals.append(_goal("healthy", text, app, "met" if ok else "not met", detail))
    return goals


# ---- tables --------------------------------------------------------------------------------
def _fmt(value: dict | None, unit: str = "s", digits: int = 1) -> tuple[str, str]:
    if not value:
        return "-", "-"
    spread = f"{value['min']:.{digits}f}-{value['max']:.{digits}f}"
    return f"{value['median']:.{digits}f} {unit}", spread


def _mb(size: float | None) -> str:
    return "-" if size is None else f"{size / 1e6:,.0f} MB"


def summary_rows(results: dict) -> list[dict]:
    """The build table as plain rows (also stored in results.json)."""
    summary = summarize(results)
    apps, variants = apps_variants(results)
    rows = []
    for app in apps:
        for scenario in SCENARIO_ORDER:
            for variant in variants:
                row = summary["builds"].get((app, variant, scenario))
                if row:
                    rows.append(
                        {
                            "app": app,
                            "variant": variant,
                            "scenario": scenario,
                            **{k: v for k, v in row.items() if k != "cached"},
                            "cached_steps": row["cached"],
                        }
                    )
    return rows


def render_markdown(results: dict, goals: list[dict], charts: list[str]) -> str:
    summary = summarize(results)
    apps, variants = apps_variants(results)
    machine, config = results.get("machine", {}), results.get("config", {})
    lines = ["# Build benchmark: pip vs uv vs multi-stage", ""]
    lines += [
        f"- Date: {results.get('started', '?')} to {results.get('finished', '?')} "
        f"({results.get('duration_s', 0):.0f} s in all)",
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
        f"- Fairness: {config.get('fairness', '-')}",
        "",
        "Times are medians with the spread (min-max) over the repeats. *install* is the install "
        "command's own time inside the dependency RUN (target venv + `pip install` or `uv pip "
        "install`), read from `bench-mark` timestamps in the BuildKit log; *step* is the whole "
        "RUN (installer setup, install, compileall). `-` means cached or not measured.",
        "",
        "## Goals",
        "",
        "| goal | subject | status | measured (margin) |",
        "|---|---|---|---|",
    ]
    for g in goals:
        status = {"met": "met", "not met": "**not met**"}.get(g["status"], g["status"])
        lines.append(f"| {g['goal']} | {g['subject']} | {status} | {g['detail']} |")
    lines += [
        "",
        "## Build times",
        "",
        "| app | scenario | variant | wall (median) | wall spread | install (median) "
        "| install spread | step (median) | n | cached steps | re-ran, and why |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in summary_rows(results):
        wall, wall_spread = _fmt(row["wall"])
        install, install_spread = _fmt(row["install"])
        step_time, _ = _fmt(row["install_step"])
        n = row["wall"]["n"] if row["wall"] else 0
        cached = ", ".join(sorted(set(row["cached_steps"])))
        lines.append(
            f"| {row['app']} | {row['scenario']} | {row['variant']} | {wall} | "
            f"{wall_spread} | {install} | {install_spread} | {step_time} | {n} | "
            f"{cached} | {'; '.join(row.get('why', [])) or '-'} |"
        )
    lines += [
        "",
        "## Ratios",
        "",
        "| app | pip/uv install (cold) | pip/uv wall (cold) | pip/multistage size "
        "| uv/multistage size | pip/multistage gzip |",
        "|---|---|---|---|---|---|",
    ]
    images = summary["images"]
    for app in apps:

        def ratio(a: float | None, b: float | None) -> str:
            return f"{a / b:.2f}x" if a is not None and b else "-"

        def size(variant: str, key: str = "size_bytes", app: str = app) -> float | None:
            image = images.get((app, variant))
            return image[key] if image else None

        install = ratio(
            _median(summary, app, "pip", "cold", "install"),
            _median(summary, app, "uv", "cold", "install"),
        )
        wall = ratio(
            _median(summary, app, "pip", "cold", "wall"),
            _median(summary, app, "uv", "cold", "wall"),
        )
        gzip = ratio(size("pip", "compressed_bytes"), size("multistage", "compressed_bytes"))
        lines.append(
            f"| {app} | {install} | {wall} | {ratio(size('pip'), size('multistage'))} "
            f"| {ratio(size('uv'), size('multistage'))} | {gzip} |"
        )
    lines += [
        "",
        "## Images",
        "",
        "| app | variant | size | gzip -6 (as pushed) | layers | time to healthy (median) "
        "| spread |",
        "|---|---|---|---|---|---|---|",
    ]
    for app in apps:
        for variant in variants:
            image = images.get((app, variant))
            if not image:
                continue
            healthy, spread = _fmt(summary["health"].get((app, variant)), digits=2)
            if summary["health_failures"].get((app, variant)):
                healthy += f" ({summary['health_failures'][(app, variant)]} failed)"
            lines.append(
                f"| {app} | {variant} | {_mb(image['size_bytes'])} | "
                f"{_mb(image['compressed_bytes'])} | {image['layers']} (base "
                f"{image['base_layers']} + {image['layers'] - image['base_layers']}) | "
                f"{healthy} | {spread} |"
            )
    if results.get("dep_change"):
        lines += [
            "",
            "## Dependency change",
            "",
            "One lock pin moved to another version (its wheel and sha256 in a bench-only "
            "wheel folder); a fresh comment line in the lock makes every repeat miss the "
            "cache as the first did.",
            "",
            "| app | package | from | to | sha256 |",
            "|---|---|---|---|---|",
        ]
        for app, change in results["dep_change"].items():
            lines.append(
                f"| {app} | {change['package']} | {change['from']} | {change['to']} | "
                f"`{change['sha256'][:16]}...` |"
            )
    if charts:
        lines += ["", "## Charts", ""]
        for name in charts:
            lines += [f"![{CHARTS.get(name, name)}]({name})", ""]
    lines += [
        "## Commands",
        "",
        "The engine command line of one build per variant and scenario "
        "(every build's is in results.json):",
        "",
    ]
    seen = set()
    for b in results.get("builds", []):
        key = (b["variant"], b["scenario"])
        if key in seen or not b.get("command"):
            continue
        seen.add(key)
        lines += [
            f"- {b['app']} {b['variant']} {b['scenario']}:",
            "",
            f"  ```\n  {' '.join(b['command'])}\n  ```",
            "",
        ]
    health = next((h for h in results.get("health", []) if h.get("command")), None)
    if health:
        lines += [
            f"- time to healthy ({health['app']} {health['variant']}), then `rm --force`:",
            "",
            f"  ```\n  {' '.join(health['command'])}\n  ```",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


# ---- charts --------------------------------------------------------------------------------
def _bars(
    ax,
    apps: list[str],
    variants: list[str],
    values: dict,
    ylabel: str,
    title: str,
    limit: float | None = None,
) -> bool:
    """Grouped bars, one group per app and one bar per variant, min-max as error bars."""
    width = 0.8 / max(len(variants), 1)
    drawn = False
    for i, variant in enumerate(variants):
        xs, heights, low, high = [], [], [], []
        for a, app in enumerate(apps):
            value = values.get((app, variant))
            if not value:
                continue
            xs.append(a - 0.4 + width * (i + 0.5))
            heights.append(value["median"])
            low.append(value["median"] - value["min"])
            high.append(value["max"] - value["median"])
        if xs:
            drawn = True
            bars = ax.bar(
                xs,
                heights,
                width,
                label=variant,
                color=COLORS.get(variant),
                yerr=[low, high],
                capsize=3,
            )
            ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
    if limit is not None:
        ax.axhline(limit, color="#C44E52", linestyle="--", linewidth=1, label=f"goal {limit:g}")
    ax.set_xticks(range(len(apps)), apps)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if drawn:
        ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return drawn


def _single(value: float | None) -> dict | None:
    return None if value is None else {"median": value, "min": value, "max": value, "n": 1}


def make_charts(results: dict, out: Path) -> list[str]:
    """The PNG charts that have data; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarize(results)
    apps, variants = apps_variants(results)
    builds = summary["builds"]
    written = []

    def metric(scenario: str, name: str) -> dict:
        return {(a, v): builds[(a, v, scenario)][name] for a, v, s in builds if s == scenario}

    def save(fig, name: str, drawn: bool) -> None:
        if drawn:
            fig.tight_layout()
            fig.savefig(out / name, dpi=110)
            written.append(name)
        plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    drawn = _bars(
        axes[0],
        apps,
        variants,
        metric("cold", "wall"),
        "seconds",
        "Cold build (no cache), wall time",
    )
    drawn |= _bars(
        axes[1],
        apps,
        variants,
        metric("cold", "install"),
        "seconds",
        "Install command alone (cold)",
    )
    save(fig, "cold_build.png", drawn)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    images = summary["images"]
    size = {k: _single(i["size_bytes"] / 1e6) for k, i in images.items()}
    gz = {k: _single(i["compressed_bytes"] / 1e6) for k, i in images.items()}
    drawn = _bars(axes[0], apps, variants, size, "MB", "Image size, uncompressed")
    drawn |= _bars(axes[1], apps, variants, gz, "MB", "Image size, gzip -6 (as pushed)")
    save(fig, "image_size.png", drawn)

    fig, ax = plt.subplots(figsize=(7, 4.2))
    drawn = _bars(
        ax,
        apps,
        variants,
        metric("code", "wall"),
        "seconds",
        "Code-only rebuild (one .py changed)",
        CODE_REBUILD_MAX_S,
    )
    save(fig, "code_rebuild.png", drawn)

    fig, ax = plt.subplots(figsize=(7, 4.2))
    services = [a for a in apps if any(k[0] == a for k in summary["health"])]
    drawn = _bars(
        ax,
        services,
        variants,
        summary["health"],
        "seconds",
        "docker run -> first 200 on the health path",
        HEALTHY_MAX_S,
    )
    save(fig, "time_to_healthy.png", drawn)
    return written


def write_outputs(results: dict, out: Path) -> None:
    """results.json (with summary and goals), report.md and the charts into out."""
    out.mkdir(parents=True, exist_ok=True)
    goals = evaluate_goals(results)
    charts = make_charts(results, out)
    results = {**results, "summary": summary_rows(results), "goals": goals, "charts": charts}
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "report.md").write_text(render_markdown(results, goals, charts))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path, help="a results.json of scripts/bench_builds.py")
    parser.add_argument("--out", type=Path, help="where to write (default: beside results)")
    args = parser.parse_args()
    try:
        results = json.loads(args.results.read_text())
    except (OSError, ValueError) as exc:
        print(f"bench_report: error: cannot read {args.results}: {exc}", file=sys.stderr)
        return 1
    for key in ("summary", "goals", "charts"):
        results.pop(key, None)
    write_outputs(results, args.out or args.results.parent)
    print(f"{(args.out or args.results.parent) / 'report.md'} ({datetime.now(UTC):%Y-%m-%d})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
