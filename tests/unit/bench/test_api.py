"""The backend benchmark's CPU accounting: which processes count, and per-request units."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from hft.bench import api, cli


def test_cpu_columns_are_ms_per_request_and_cores_of_the_server() -> None:
    before = {"server": 10.0, "engine": 1.0, "load": 0.5}
    after = {"server": 11.5, "engine": 1.2, "load": 0.6}
    assert api._cpu_columns(before, after, requests=1000, elapsed=2.0, cpus=2) == {
        "server_cpu_ms": 1.5,
        "engine_cpu_ms": 0.2,
        "load_cpu_ms": 0.1,
        "server_cores": 0.75,
        # 1.8 ms of some CPU per request: two CPUs serve at most 2,000 ms / 1.8 ms a second.
        "machine_cpu_ms": 1.8,
        "cpu_ceiling_per_s": 1111,
    }
    # No request: no division by zero, the whole time is reported.
    assert api._cpu_columns(before, after, requests=0, elapsed=1.0)["server_cpu_ms"] == 1500.0
    # No CPU used at all: no ceiling rather than a division by zero.
    idle = api._cpu_columns(before, before, requests=10, elapsed=1.0)
    assert idle["machine_cpu_ms"] == 0.0
    assert "cpu_ceiling_per_s" not in idle


def test_the_server_figure_includes_its_worker_processes() -> None:
    # A uvicorn server with several workers does its work in child processes.
    cpu = api._Cpu(os.getpid())
    before = cpu.sample()
    assert set(before) == {"server", "load"}
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
    child = subprocess.Popen([sys.executable, "-c", burn + "time.sleep(30)"])
    try:
        deadline = time.monotonic() + 30
        while cpu.sample()["server"] - before["server"] < 0.25:
            assert time.monotonic() < deadline, "the child's CPU time was not counted"
            time.sleep(0.05)
    finally:
        child.kill()
        child.wait()
    # The load generator is this process alone: the child's time is not in it.
    assert cpu.sample()["load"] - before["load"] < 0.25


def test_rows_come_in_report_order_with_cpu_relative_to_the_bare_endpoint() -> None:
    rows = api._finished(
        [
            {"server": "bare FastAPI, same validation", "clients": 32, "server_cpu_ms": 0.2},
            {"server": "backend (SQLite)", "clients": 32, "server_cpu_ms": 1.1, "p99_ms": 9.0},
            {"server": "backend (SQLite)", "clients": 1, "server_cpu_ms": 3.0},
        ]
    )
    assert [list(r) for r in rows] == [list(api._COLUMNS)] * 3
    assert [r["server_cpu_vs_bare"] for r in rows] == [None, 5.5, None]
    assert rows[1]["p99_ms"] == 9.0
    assert rows[0]["database_cpu_ms"] is None


def test_a_comparison_pairs_bursts_by_round_and_reports_medians() -> None:
    def burst(rate: int, p99: float, cpu: float) -> dict[str, object]:
        return {
            "clients": 32,
            "requests": 100,
            "orders_per_s": rate,
            "p50_ms": 1.0,
            "p99_ms": p99,
            "max_ms": p99 + 1,
            "non_2xx": 0,
            "server_cores": 0.5,
            "server_cpu_ms": cpu,
            "engine_cpu_ms": 0.1,
            "load_cpu_ms": 0.1,
        }

    bursts = {
        # The machine slows down over the rounds; each round compares like with like.
        "baseline": [burst(1000, 10.0, 1.0), burst(500, 30.0, 2.0), burst(800, 20.0, 1.5)],
        "working": [burst(1100, 9.0, 0.9), burst(600, 25.0, 1.8), burst(800, 18.0, 1.4)],
    }
    rows, ratios = api._compared(bursts, {"baseline": "A", "working": "B"})
    assert ratios == [1.1, 1.2, 1.0]
    base, work = rows
    assert (base["server"], work["server"]) == ("A", "B")
    assert (base["orders_per_s"], work["orders_per_s"]) == (800, 800)
    assert work["vs_baseline_pct"] == 110.0
    assert "vs_baseline_pct" not in base
    assert (base["p99_ms"], work["p99_ms"], work["max_ms"]) == (20.0, 18.0, 26.0)
    assert (base["requests"], work["server_cpu_ms"]) == (300, 1.4)
    assert base["database_cpu_ms"] is None


def test_bad_comparison_options_are_refused_with_a_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["api", "--api-baseline", "no-such-revision-anywhere"]) == 2
    assert "'no-such-revision-anywhere' is not a commit" in capsys.readouterr().err
    for rounds in ("0", "-3", "many"):
        with pytest.raises(SystemExit) as exit_:
            cli.main(["api", "--api-baseline", "HEAD", "--api-rounds", rounds])
        assert exit_.value.code == 2
        assert "--api-rounds" in capsys.readouterr().err
    for warmup in ("-1", "some"):
        with pytest.raises(SystemExit) as exit_:
            cli.main(["api", "--api-warmup", warmup])
        assert exit_.value.code == 2
        assert "--api-warmup" in capsys.readouterr().err


def test_a_run_of_bursts_reports_the_median_one_whole_with_the_range() -> None:
    runs = [
        {"orders_per_s": 1500, "p99_ms": 30.0},
        {"orders_per_s": 900, "p99_ms": 110.0},
        {"orders_per_s": 1400, "p99_ms": 35.0},
    ]
    row = api._median_burst(runs)
    assert (row["orders_per_s"], row["p99_ms"], row["orders_per_s_range"]) == (
        1400,
        35.0,
        "900-1,500",
    )
    # An even number: the lower middle one, never a mix of two bursts.
    assert api._median_burst([*runs, {"orders_per_s": 1450, "p99_ms": 31.0}])["p99_ms"] == 35.0
    assert api._median_burst(runs[:1])["orders_per_s_range"] is None
