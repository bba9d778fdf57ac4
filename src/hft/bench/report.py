"""Markdown report of benchmark results, with the machine they ran on."""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shutil
import subprocess
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _compiler() -> str:
    for cc in ("c++", "g++", "clang++"):
        path = shutil.which(cc)
        if path:
            out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
            first = out.stdout.splitlines()[0] if out.stdout else ""
            if first:
                return first
    return "unknown"


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"') + f" ({platform.release()})"
    except OSError:
        pass
    return platform.platform()


def machine_info() -> dict[str, str]:
    """CPU model, cores, RAM, OS, Python, numpy and C++ compiler of this machine."""
    import psutil

    return {
        "CPU": _cpu_model(),
        "cores (logical)": str(os.cpu_count()),
        "RAM": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "OS": _os_name(),
        "Python": platform.python_version(),
        "numpy": np.__version__,
        "C++ compiler": _compiler(),
    }


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.1f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v).replace("|", "\\|")


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """A markdown table of flat dicts (columns: the keys of all rows, in first-seen order)."""
    if not rows:
        return ""
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(_cell(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def render(
    results: dict[str, dict[str, Any]],
    command: str,
    *,
    images: dict[str, str] | None = None,
    problems: list[str] | None = None,
    machine: dict[str, str] | None = None,
) -> str:
    """The whole report: machine, command, plots, one section per benchmark module.

    `images` maps "latency"/"throughput" to links relative to the report (see `write`);
    `problems` are stated under the plots; `machine` defaults to `machine_info()`.
    """
    out = [
        "# Benchmarks",
        "",
        "Measured numbers, written by `hft bench all` (`make bench`); they are not "
        "asserted anywhere. Re-run on your machine to compare.",
        "",
        f"Run at {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} with:",
        "",
        "```",
        command,
        "```",
        "",
        "## Machine",
        "",
        markdown_table([{"": k, "value": v} for k, v in (machine or machine_info()).items()]),
        "",
    ]
    out += _plots_section(images or {}, problems or [])
    for name, result in results.items():
        out += [f"## {result.get('title', name)}", ""]
        if "error" in result:
            out += [f"Failed: `{result['error']}`", ""]
            continue
        table = markdown_table(result.get("rows") or [])
        if table:
            out += [table, ""]
        out += [f"* {note}" for note in result.get("notes", [])]
        out += [
            "",
            "<details><summary>raw results</summary>",
            "",
            "```json",
            json.dumps(result, indent=2, default=str),
            "```",
            "",
            "</details>",
            "",
        ]
    return "\n".join(out)


def _plots_section(images: dict[str, str], problems: list[str]) -> list[str]:
    if not images and not problems:
        return []
    out = ["## Plots", ""]
    if "latency" in images:
        out += [
            "Latency percentiles of every measured path (log scale; each panel in its own "
            "unit; dashed lines are the baselines measured in the same run):",
            "",
            f"![Latency percentiles]({images['latency']})",
            "",
        ]
    if "throughput" in images:
        out += [
            "Throughput of every path, with its same-run baseline in grey:",
            "",
            f"![Throughput]({images['throughput']})",
            "",
        ]
    out += [f"* {p}" for p in problems]
    return out + ([""] if problems else [])


# ---------------------------------------------------------------------- plots

LATENCY_PNG = "bench-latency.png"
THROUGHPUT_PNG = "bench-throughput.png"
# The published promise drawn on the engine-internal latency panels (nanoseconds).
PROMISE_P99_NS = 100_000.0

_PCT_KEY = re.compile(r"^(p50|p90|p99|p999|p99\.9|max)[ _](ns|us|µs|ms)$")
_PCT_ORDER = ("p50", "p90", "p99", "p99.9", "max")
# HdrHistogram-style x positions: 1 / (1 - p); "max" drawn one decade past p99.9.
_PCT_X = {"p50": 2.0, "p90": 10.0, "p99": 100.0, "p99.9": 1000.0, "max": 10000.0}
_UNIT_NS = {"ns": 1.0, "us": 1e3, "µs": 1e3, "ms": 1e6}
_BASELINE_WORDS = ("echo", "bare", "baseline")


@dataclass
class _Series:
    label: str
    points: dict[str, float]  # percentile name -> nanoseconds
    baseline: bool = False


@dataclass
class _Panel:
    title: str
    latency: list[_Series] = field(default_factory=list)
    promise: bool = False


@dataclass
class _Bars:
    title: str
    unit: str
    bars: list[tuple[str, float, bool]] = field(default_factory=list)  # label, value, baseline


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if math.isfinite(v) and v > 0 else None


def _percentiles(d: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Percentile points (ns) from keys such as p99_us, "p99.9 ns", max_ms."""
    out: dict[str, float] = {}
    for key, value in d.items():
        if not key.startswith(prefix):
            continue
        m = _PCT_KEY.match(key[len(prefix) :])
        v = _num(value)
        if m and v is not None:
            name = "p99.9" if m.group(1) == "p999" else m.group(1)
            out[name] = v * _UNIT_NS[m.group(2)]
    return out


def _is_baseline(label: str) -> bool:
    return any(w in label.lower() for w in _BASELINE_WORDS)


def _label(row: dict[str, Any]) -> str:
    if "measure" in row:
        return str(row["measure"])
    if "server" in row:
        clients = row.get("clients")
        if clients is None:
            return str(row["server"])
        return f"{row['server']}, {clients} client{'' if clients == 1 else 's'}"
    return str(row.get("path", "?"))


def _core_figures(result: dict[str, Any]) -> tuple[list[_Panel], list[_Bars]]:
    panel = _Panel("Matching core: per operation", promise=True)
    bars = _Bars("Matching core: replay throughput", "operations/s")
    for r in result.get("results") or []:
        path = str(r.get("path", "?"))
        pts = _percentiles(r)
        if len(pts) >= 2:
            panel.latency.append(_Series(f"Python {path}", pts))
        ops = _num(r.get("ops_per_s"))
        if ops is not None:
            bars.bars.append((f"Python {path}", ops, False))
    native = result.get("native") or {}
    if "error" not in native:
        pts = _percentiles(native)
        if len(pts) >= 2:
            panel.latency.append(_Series("native C++ (baseline)", pts, baseline=True))
        ops = _num(native.get("ops_per_s"))
        if ops is not None:
            bars.bars.append(("native C++ (baseline)", ops, True))
    return [panel], [bars]


def _grpc_figures(result: dict[str, Any]) -> tuple[list[_Panel], list[_Bars]]:
    trips = _Panel("Engine gRPC: unary round trip (client)")
    batch = _Panel("Engine gRPC: batch round trip (client)")
    engine = _Panel("Engine gRPC: engine processing (receipt to events ready)", promise=True)
    unary = _Bars("Engine gRPC: unary calls", "requests/s")
    batched = _Bars("Engine gRPC: batched order entry", "orders/s")
    for row in result.get("rows") or []:
        label = _label(row)
        base = _is_baseline(label)
        pts = _percentiles(row)
        if len(pts) >= 2:
            (trips if "round trip" in label else engine).latency.append(_Series(label, pts, base))
        rtt = _percentiles(row, "batch_rtt_")
        if len(rtt) >= 2:
            batch.latency.append(_Series(label, rtt, base))
        if (v := _num(row.get("ops_per_s"))) is not None:
            unary.bars.append((label, v, base))
        if (v := _num(row.get("orders_per_s"))) is not None:
            batched.bars.append((label, v, base))
    return [trips, batch, engine], [unary, batched]


def _generic_figures(name: str, result: dict[str, Any]) -> tuple[list[_Panel], list[_Bars]]:
    title = str(result.get("title", name))
    panel = _Panel(title)
    bars: dict[str, _Bars] = {}
    rows = [r for r in result.get("rows") or [] if isinstance(r, dict)]
    if all(isinstance(r.get("clients"), int) for r in rows):
        # Same concurrency side by side: the baseline next to what it is the baseline of.
        rows.sort(key=lambda r: (r["clients"], not _is_baseline(_label(r))))
    for row in rows:
        label = _label(row)
        base = _is_baseline(label)
        pts = _percentiles(row)
        if len(pts) >= 2:
            panel.latency.append(_Series(label, pts, base))
        for key, unit in (
            ("ops/s", "operations/s"),
            ("ops_per_s", "operations/s"),
            ("orders_per_s", "orders/s"),
            ("requests_per_s", "requests/s"),
        ):
            if (v := _num(row.get(key))) is not None:
                bars.setdefault(unit, _Bars(title, unit)).bars.append((label, v, base))
    load = result.get("load")
    if isinstance(load, dict) and (v := _num(load.get("requests_per_s"))) is not None:
        b = bars.setdefault("requests/s", _Bars(title, "requests/s"))
        asked = _num((result.get("settings") or {}).get("load_rate"))
        if asked is not None:
            b.bars.append(("load generator: rate asked", asked, True))
        b.bars.append(("load generator: achieved", v, False))
    return [panel], list(bars.values())


def _figures(results: dict[str, dict[str, Any]]) -> tuple[list[_Panel], list[_Bars]]:
    panels: list[_Panel] = []
    bars: list[_Bars] = []
    for name, result in results.items():
        if not isinstance(result, dict) or "error" in result:
            continue
        if name == "core":
            p, b = _core_figures(result)
        elif name == "engine_grpc":
            p, b = _grpc_figures(result)
        else:
            p, b = _generic_figures(name, result)
        panels += [x for x in p if x.latency]
        # A baseline alone says nothing: at least two bars per panel.
        bars += [x for x in b if len(x.bars) >= 2 or any(not base for _, _, base in x.bars)]
    return panels, bars


def _unit_for(values: list[float]) -> tuple[str, float]:
    mid = sorted(values)[len(values) // 2]
    if mid >= 1e6:
        return "ms", 1e6
    if mid >= 1e3:
        return "µs", 1e3
    return "ns", 1.0


def _wrap(text: str, width: int = 60) -> str:
    return "\n".join(textwrap.wrap(text, width)) or text


def _grid(n: int) -> tuple[int, int]:
    cols = 1 if n == 1 else 2
    return (n + cols - 1) // cols, cols


def _save(fig: Any, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    # No software/version metadata: the same numbers give the same file.
    fig.savefig(path, dpi=110, metadata={"Software": None})


def _suptitle(fig: Any, title: str, subtitle: str) -> None:
    fig.suptitle(f"{title}\n{subtitle}", fontsize=12)


def _plot_latency(panels: list[_Panel], path: Path, subtitle: str) -> None:
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator

    rows, cols = _grid(len(panels))
    fig = Figure(figsize=(7.2 * cols, 6.2 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        every = [v for s in panel.latency for v in s.points.values()]
        unit, scale = _unit_for(every)
        for s in panel.latency:
            names = [p for p in _PCT_ORDER if p in s.points]
            ax.plot(
                [_PCT_X[p] for p in names],
                [s.points[p] / scale for p in names],
                marker="o",
                linestyle="--" if s.baseline else "-",
                label=_wrap(s.label),
            )
        if panel.promise:
            ax.axhline(
                PROMISE_P99_NS / scale,
                color="crimson",
                linewidth=1,
                linestyle=":",
                label="promise: p99 < 100 µs (engine-internal)",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(list(_PCT_X.values()), [p if p == "max" else p[1:] + "%" for p in _PCT_X])
        ax.minorticks_off()
        ax.set_xlim(1.5, 14000)
        # Plain numbers at 1-2-5 steps: a narrow log range still gets readable ticks.
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,g}"))
        ax.set_xlabel("percentile")
        ax.set_ylabel(f"latency ({unit}, log scale)")
        ax.set_title(_wrap(panel.title, 70), fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        # Below the axes, where no curve can hide behind it.
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    _suptitle(fig, "Latency percentiles (dashed: baseline of the same run)", subtitle)
    _save(fig, path)


def _rate(v: float) -> str:
    for div, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if v >= div:
            return f"{v / div:.3g}{suffix}"
    return f"{v:.3g}"


def _plot_throughput(panels: list[_Bars], path: Path, subtitle: str) -> None:
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    heights = [max(2.2, 0.55 * len(p.bars) + 1.2) for p in panels]
    fig = Figure(figsize=(11, sum(heights) + 1.0), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, panel in zip(axes, panels, strict=True):
        labels = [_wrap(label, 55) for label, _, _ in panel.bars]
        values = [v for _, v, _ in panel.bars]
        colors = ["#9e9e9e" if base else "#1f77b4" for _, _, base in panel.bars]
        y = list(range(len(values)))
        ax.barh(y, values, color=colors, hatch=None)
        ax.set_yticks(y, labels, fontsize=8)
        ax.invert_yaxis()
        wide = max(values) / min(values) > 30
        if wide:
            ax.set_xscale("log")
        ax.set_xlim(right=max(values) * (8 if wide else 1.25))
        for yi, v in zip(y, values, strict=True):
            ax.annotate(
                f" {_rate(v)}/s",
                (v, yi),
                va="center",
                fontsize=8,
                xytext=(2, 0),
                textcoords="offset points",
            )
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _rate(v) if v > 0 else "0"))
        ax.set_xlabel(panel.unit + (" (log scale)" if wide else ""))
        ax.set_title(_wrap(panel.title, 90), fontsize=10)
        ax.grid(True, axis="x", alpha=0.3)
    _suptitle(fig, "Throughput (grey: baseline measured in the same run)", subtitle)
    _save(fig, path)


def write_plots(
    results: dict[str, dict[str, Any]], img_dir: Path, subtitle: str = ""
) -> tuple[dict[str, Path], list[str]]:
    """Draw the latency and throughput PNGs of `results` into `img_dir`.

    Returns ({"latency"|"throughput": path}, problems). Only what the results contain is
    drawn; a figure with nothing to show is not written (and a stale one is removed).
    Never raises for bad results or a missing matplotlib: the problem is returned.
    """
    targets = {"latency": img_dir / LATENCY_PNG, "throughput": img_dir / THROUGHPUT_PNG}
    written: dict[str, Path] = {}
    problems: list[str] = []
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return {}, ["plots not drawn: matplotlib is not installed (it is in the [dev] extras)"]
    try:
        panels, bars = _figures(results)
    except Exception as exc:  # a malformed result must not cost the report
        return {}, [f"plots not drawn: {type(exc).__name__}: {exc}"]
    img_dir.mkdir(parents=True, exist_ok=True)
    jobs: list[tuple[str, bool, Callable[[Path], None]]] = [
        ("latency", bool(panels), lambda t: _plot_latency(panels, t, subtitle)),
        ("throughput", bool(bars), lambda t: _plot_throughput(bars, t, subtitle)),
    ]
    for key, has_data, draw in jobs:
        target = targets[key]
        target.unlink(missing_ok=True)
        if not has_data:
            continue
        try:
            draw(target)
        except Exception as exc:
            target.unlink(missing_ok=True)
            problems.append(f"{key} plot not drawn: {type(exc).__name__}: {exc}")
            continue
        written[key] = target
    return written, problems


def write(path: Path | str, results: dict[str, dict[str, Any]], command: str) -> list[Path]:
    """Write the markdown report to `path` and its plots to `img/` beside it.

    Returns the files written (report last). Errors writing the report itself
    (OSError) propagate; plotting problems are stated in the report instead.
    """
    report = Path(path)
    info = machine_info()
    subtitle = f"{info['CPU']}, {info['cores (logical)']} logical cores, {info['RAM']} RAM"
    images, problems = write_plots(results, report.parent / "img", subtitle)
    links = {k: os.path.relpath(p, report.parent) for k, p in images.items()}
    report.write_text(render(results, command, images=links, problems=problems, machine=info))
    return [*images.values(), report]
