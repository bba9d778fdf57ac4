"""The backend benchmark's CPU accounting: which processes count, and per-request units."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from hft.bench import api


def test_cpu_columns_are_ms_per_request_and_cores_of_the_server() -> None:
    before = {"server": 10.0, "engine": 1.0, "load": 0.5}
    after = {"server": 11.5, "engine": 1.2, "load": 0.6}
    assert api._cpu_columns(before, after, requests=1000, elapsed=2.0) == {
        "server_cpu_ms": 1.5,
        "engine_cpu_ms": 0.2,
        "load_cpu_ms": 0.1,
        "server_cores": 0.75,
    }
    # No request: no division by zero, the whole time is reported.
    assert api._cpu_columns(before, after, requests=0, elapsed=1.0)["server_cpu_ms"] == 1500.0


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
