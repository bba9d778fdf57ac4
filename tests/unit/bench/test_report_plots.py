"""Plots of the benchmark report: written from results shaped like the modules' output."""

from __future__ import annotations

import copy
import struct
from pathlib import Path
from typing import Any

import pytest

from hft.bench import report

pytest.importorskip("matplotlib")

# Shapes as returned by hft.bench.core / engine_grpc / api / e2e (numbers are made up).
CORE: dict[str, Any] = {
    "title": "Matching core",
    "results": [
        {
            "path": "batch",
            "ops": 20000,
            "ops_per_s": 3_400_000,
            "p50_ns": 337,
            "p99_ns": 375,
            "p999_ns": 375,
            "max_ns": 375,
            "trades": 5119,
        },
        {
            "path": "per_call",
            "ops": 20000,
            "ops_per_s": 1_160_000,
            "p50_ns": 311,
            "p99_ns": 2585,
            "p999_ns": 413_183,
            "max_ns": 500_000,
            "trades": 5119,
        },
        {"path": "facade", "ops": 5000, "ops_per_s": 96_017, "latency": "not measured"},
        {"path": "reference", "ops": 2000, "ops_per_s": 68_733, "latency": "not measured"},
    ],
    "native": {
        "ops": 20000,
        "ops_per_s": 17_502_912,
        "p50_ns": 40,
        "p99_ns": 260,
        "p999_ns": 2795,
        "max_ns": 116_690,
        "latency_ns": {"submit": {"count": 1}},
    },
    "rows": [{"path": "batch", "ops": 20000, "ops/s": 3_400_000, "p50 ns": 337}],
    "notes": ["Workload: generated"],
}
GRPC: dict[str, Any] = {
    "title": "Engine service (gRPC)",
    "rows": [
        {
            "measure": "echo round trip, 1 in flight",
            "p50_us": 90.1,
            "p99_us": 150.2,
            "p999_us": 300.0,
            "max_us": 900.0,
            "ops_per_s": 9000,
        },
        {
            "measure": "SubmitOrder round trip, 1 in flight",
            "p50_us": 180.0,
            "p99_us": 400.0,
            "p999_us": 700.0,
            "max_us": 2000.0,
            "ops_per_s": 4500,
            "p99_vs_echo": 2.66,
        },
        {
            "measure": "engine processing during the unary runs (receipt to events ready)",
            "p50_us": 8.0,
            "p99_us": 30.0,
            "p999_us": 60.0,
            "max_us": 200.0,
        },
        {"measure": "bare grpc.aio bidi echo stream (baseline)", "orders_per_s": 60_000},
        {
            "measure": "bare grpc.aio unary echo of the OrderColumns batches (2000 per batch, "
            "4 in flight; baseline)",
            "orders_per_s": 900_000,
            "server_cpu_us_per_order": 0.2,
            "batch_rtt_p50_us": 4000.0,
            "batch_rtt_p99_us": 9000.0,
        },
        {
            "measure": "SubmitOrderColumns, 2000 per batch, 4 in flight, fsync=every",
            "orders_per_s": 300_000,
            "server_cpu_us_per_order": 2.1,
            "batch_rtt_p50_us": 20000.0,
            "batch_rtt_p99_us": 40000.0,
            "p50_us": 5000.0,
            "p99_us": 12000.0,
            "p999_us": 15000.0,
            "max_us": 16000.0,
            "journal_p99_us": 900.0,
            "group_commits": 100,
            "trades": 1,
        },
        {"measure": "engine RSS idle", "rss_mib": 60.0},
        {
            "measure": "recovery of 1,000,000 journaled commands (no snapshot)",
            "seconds": 2.5,
            "commands_per_s": 400_000,
        },
    ],
}
API: dict[str, Any] = {
    "title": "Backend order entry (POST /api/v1/orders)",
    "rows": [
        {
            "server": "bare FastAPI, same validation",
            "clients": 1,
            "requests": 1000,
            "orders_per_s": 2500,
            "p50_ms": 0.35,
            "p99_ms": 0.9,
            "max_ms": 3.0,
            "non_2xx": 0,
            "projection_lag_p99_ms": None,
        },
        {
            "server": "bare FastAPI, same validation",
            "clients": 32,
            "requests": 3000,
            "orders_per_s": 4000,
            "p50_ms": 7.0,
            "p99_ms": 12.0,
            "max_ms": 20.0,
            "non_2xx": 0,
            "projection_lag_p99_ms": None,
        },
        {
            "server": "backend (SQLite)",
            "clients": 1,
            "requests": 1000,
            "orders_per_s": 400,
            "p50_ms": 2.3,
            "p99_ms": 5.0,
            "max_ms": 30.0,
            "non_2xx": 0,
            "projection_lag_p99_ms": 2.5,
        },
        {
            "server": "backend (SQLite)",
            "clients": 32,
            "requests": 3000,
            "orders_per_s": 700,
            "p50_ms": 40.0,
            "p99_ms": 90.0,
            "max_ms": 150.0,
            "non_2xx": 0,
            "projection_lag_p99_ms": 10.0,
        },
    ],
}
E2E: dict[str, Any] = {
    "title": "End to end: REST and WebSocket order latency, whole-stack memory",
    "settings": {"orders": 300, "load_rate": 200.0},
    "load": {"requests": 4000, "requests_per_s": 190.5, "latency": {"p50_ms": 3.0}},
    "rows": [
        {
            "measure": "REST: POST /orders sent -> response",
            "count": 300,
            "p50 ms": 3.1,
            "p90 ms": 4.2,
            "p99 ms": 9.9,
            "max ms": 20.0,
        },
        {
            "measure": "WebSocket: POST /orders sent -> fill message",
            "count": 0,
            "p50 ms": "",
            "p90 ms": "",
            "p99 ms": "",
            "max ms": "",
        },
        {
            "measure": "RSS MiB at idle, engine + backend (engine 60, api 150)",
            "count": "",
            "p50 ms": 210.0,
        },
    ],
}
ALL = {"core": CORE, "engine_grpc": GRPC, "api": API, "e2e": E2E}

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def test_write_produces_both_pngs_and_links_them(tmp_path: Path) -> None:
    out = tmp_path / "docs" / "benchmarks.md"
    out.parent.mkdir()
    files = report.write(out, copy.deepcopy(ALL), "hft bench all --report docs/benchmarks.md")
    latency = tmp_path / "docs" / "img" / report.LATENCY_PNG
    throughput = tmp_path / "docs" / "img" / report.THROUGHPUT_PNG
    assert files == [latency, throughput, out]
    for png in (latency, throughput):
        w, h = _png_size(png)
        assert w > 300
        assert h > 300
    text = out.read_text()
    assert "](img/bench-latency.png)" in text
    assert "](img/bench-throughput.png)" in text
    assert "## Matching core" in text
    assert "plot not drawn" not in text


def test_plots_are_deterministic(tmp_path: Path) -> None:
    a, _ = report.write_plots(copy.deepcopy(ALL), tmp_path / "a", "machine")
    b, _ = report.write_plots(copy.deepcopy(ALL), tmp_path / "b", "machine")
    assert a.keys() == b.keys() == {"latency", "throughput"}
    for key in a:
        assert a[key].read_bytes() == b[key].read_bytes()


def test_figures_take_what_each_module_returns() -> None:
    panels, bars = report._figures(copy.deepcopy(ALL))
    by_title = {p.title: p for p in panels}
    core = by_title["Matching core: per operation"]
    # Paths without latency (facade, reference) are not drawn as curves.
    assert [s.label for s in core.latency] == [
        "Python batch",
        "Python per_call",
        "native C++ (baseline)",
    ]
    assert core.latency[2].baseline
    assert core.promise
    assert core.latency[2].points == {"p50": 40, "p99": 260, "p99.9": 2795, "max": 116_690}
    trips = by_title["Engine gRPC: unary round trip (client)"]
    assert [s.baseline for s in trips.latency] == [True, False]
    assert trips.latency[1].points["p99"] == pytest.approx(400_000)
    rtt = by_title["Engine gRPC: batch round trip (client)"]
    assert rtt.latency[0].points == {"p50": 4_000_000, "p99": 9_000_000}
    api = by_title["Backend order entry (POST /api/v1/orders)"]
    assert api.latency[0].points["max"] == pytest.approx(3_000_000)
    e2e = by_title["End to end: REST and WebSocket order latency, whole-stack memory"]
    # The empty WebSocket row and the RSS row (one number, not a latency) are left out.
    assert [s.label for s in e2e.latency] == ["REST: POST /orders sent -> response"]
    assert e2e.latency[0].points["p90"] == pytest.approx(4_200_000)

    throughput = {b.title: b for b in bars}
    assert [
        (label, base) for label, _, base in throughput["Matching core: replay throughput"].bars
    ] == [
        ("Python batch", False),
        ("Python per_call", False),
        ("Python facade", False),
        ("Python reference", False),
        ("native C++ (baseline)", True),
    ]
    # Each concurrency level: the bare endpoint next to the backend.
    api_bars = throughput["Backend order entry (POST /api/v1/orders)"].bars
    assert [label for label, _, _ in api_bars] == [
        "bare FastAPI, same validation, 1 client",
        "backend (SQLite), 1 client",
        "bare FastAPI, same validation, 32 clients",
        "backend (SQLite), 32 clients",
    ]
    batched = throughput["Engine gRPC: batched order entry"].bars
    assert [base for _, _, base in batched] == [True, True, False]
    assert throughput["Engine gRPC: unary calls"].bars[0] == (
        "echo round trip, 1 in flight",
        9000.0,
        True,
    )


def test_failed_and_skipped_modules_still_give_a_report(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    results = {
        "core": copy.deepcopy(CORE),
        "engine_grpc": {"title": "Engine service (gRPC)", "error": "RuntimeError: boom"},
    }
    report.write(out, results, "hft bench all")
    text = out.read_text()
    assert "Failed: `RuntimeError: boom`" in text
    assert "](img/bench-latency.png)" in text
    panels, _ = report._figures(results)
    assert all("gRPC" not in p.title for p in panels)


def test_nothing_to_plot_writes_no_png_and_removes_a_stale_one(tmp_path: Path) -> None:
    img = tmp_path / "img"
    img.mkdir()
    stale = img / report.LATENCY_PNG
    stale.write_bytes(PNG_MAGIC)
    out = tmp_path / "benchmarks.md"
    files = report.write(out, {"x": {"title": "X", "rows": [{"a": 1}]}}, "hft bench all")
    assert files == [out]
    assert not stale.exists()
    assert "![" not in out.read_text()


def test_malformed_results_are_stated_not_raised(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    bad: dict[str, Any] = {"core": {"title": "Matching core", "results": [None]}}
    report.write(out, bad, "hft bench all")
    text = out.read_text()
    assert "plots not drawn: AttributeError" in text
    assert "## Matching core" in text


def test_a_failing_figure_does_not_cost_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*_: object) -> None:
        raise RuntimeError("no fonts")

    monkeypatch.setattr(report, "_plot_latency", boom)
    out = tmp_path / "benchmarks.md"
    files = report.write(out, copy.deepcopy(ALL), "hft bench all")
    assert files == [tmp_path / "img" / report.THROUGHPUT_PNG, out]
    text = out.read_text()
    assert "latency plot not drawn: RuntimeError: no fonts" in text
    assert "](img/bench-throughput.png)" in text
    assert "bench-latency.png" not in text
