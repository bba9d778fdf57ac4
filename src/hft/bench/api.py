"""Benchmark of the backend's order entry: POST /api/v1/orders over real HTTP.

Measured, never asserted, in one run:

* the real backend (`hft api`, one worker, uvicorn + uvloop) in front of a real engine
  (`hft engine`), on SQLite and, when a PostgreSQL server is given, on PostgreSQL;
* beside it a bare FastAPI endpoint doing the same request validation (strict JSON
  body, decimal checks, tick/lot conversion) and nothing else, served the same way;
* at 1 and at 32 concurrent clients (keep-alive connections, one request in flight
  each): throughput and p50/p99 latency;
* the projection lag (engine event timestamp to database commit, p99) from the
  backend's own Prometheus histogram over the run.

The order flow crosses: two traders alternately buy and sell 1 lot at the same price,
so about every second order trades, and the projection applies fills, positions and
cash for both sides. The load generator is a minimal asyncio HTTP/1.1 client so the
machine's cores go to the servers rather than to the client.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response

from hft.engine.testing import DEFAULT_CONFIG, EngineProcess, default_core
from hft.histogram import LatencyHistogram

TITLE = "Backend order entry (POST /api/v1/orders)"
PASSWORD = "bench-password-1"


def _at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


_at_least_one = _at_least(1)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `hft bench api`."""
    g = parser.add_argument_group("api")
    g.add_argument(
        "--api-requests",
        type=int,
        default=3000,
        help="measured POST /orders per run at 32 clients (a third at 1 client)",
    )
    g.add_argument(
        "--api-warmup",
        type=_at_least(0),
        default=1000,
        help="unmeasured POST /orders before each measured run (at least 4 per client)",
    )
    g.add_argument(
        "--api-bursts",
        type=_at_least_one,
        default=3,
        help="measured bursts of --api-requests per run above one client; the row is the "
        "median burst's, with the range of orders/s over the bursts",
    )
    g.add_argument(
        "--api-postgres-url",
        default=os.environ.get("HFT_TEST_POSTGRES_URL"),
        help="postgresql+asyncpg:// server for the PostgreSQL run "
        "(default: env HFT_TEST_POSTGRES_URL; empty = SQLite only)",
    )
    g.add_argument(
        "--api-concurrency", default="1,32", help="comma-separated numbers of concurrent clients"
    )
    g.add_argument(
        "--api-users",
        type=int,
        default=2,
        help="traders the crossing order flow alternates between",
    )
    g.add_argument(
        "--api-workers",
        type=int,
        default=2,
        help="also run the PostgreSQL backend with this many workers at the highest "
        "concurrency (0 or 1: skip)",
    )
    g.add_argument(
        "--api-baseline",
        metavar="REV",
        help="instead: compare the working tree with git revision REV (same C++ core), "
        "both backends up at once, the load alternating between them in bursts of "
        "--api-requests orders at the highest --api-concurrency; on PostgreSQL when a "
        "server is given, else on SQLite",
    )
    g.add_argument(
        "--api-rounds",
        type=_at_least_one,
        default=8,
        help="bursts per backend in a --api-baseline comparison",
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------- bare endpoint


def _bare_app() -> FastAPI:
    """FastAPI app with POST /api/v1/orders doing only the backend's input validation."""
    from decimal import Decimal

    import orjson

    from hft.api.errors import ApiError, install_error_handlers
    from hft.api.trading.body import check_fields, read_object
    from hft.api.trading.orders import _ORDER_FIELDS
    from hft.engine.config import load_config
    from hft.services.errors import ServiceError
    from hft.services.instruments import InstrumentInfo
    from hft.services.orders import validate_order

    cfg = load_config(DEFAULT_CONFIG)
    instruments = {
        s.symbol: InstrumentInfo(
            s.symbol_id,
            s.symbol,
            s.tick_size,
            s.lot_size,
            s.min_qty,
            s.max_qty,
            s.band_bps,
            s.reference_price,
        )
        for s in cfg.instruments
    }
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/api/v1/orders", status_code=201)
    async def orders(request: Request) -> Response:
        body = await read_object(request)
        check_fields(body, _ORDER_FIELDS)
        try:
            spec = validate_order(body, instruments)
        except ServiceError as exc:
            raise ApiError(422, exc.code, exc.message, exc.field) from None
        out = {
            "symbol": spec.symbol,
            "side": spec.side,
            "price_ticks": spec.price_ticks,
            "quantity": str(spec.quantity),
            "price": str(spec.price or Decimal(0)),
        }
        return Response(orjson.dumps(out), status_code=201, media_type="application/json")

    return app


def _serve_bare(port: int) -> None:
    import uvicorn

    uvicorn.run(
        _bare_app(),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
    )


# ---------------------------------------------------------------------- processes


class _Proc:
    def __init__(self, cmd: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with open(log, "ab") as f:
            self.proc = subprocess.Popen(
                cmd,
                stdout=f,
                stderr=f,
                env=env,
                start_new_session=True,
            )

    def wait_http(self, url: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.log} exited:\n{self.log.read_text()[-2000:]}")
            try:
                if httpx.get(url, timeout=2).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{url} not up:\n{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HFT_")}
    env.update(
        {
            "HFT_RATE_LIMITS__ENABLED": "false",
            "HFT_ACCESS_LOG": "false",
            "HFT_LOG_LEVEL": "warning",
            "HFT_ARGON2_TIME_COST": "1",
            "HFT_ARGON2_MEMORY_KIB": "8192",
            "HFT_TRADING__DEFAULT_LIMITS__MAX_OPEN_ORDERS": "100000",
        }
    )
    return env


# ---------------------------------------------------------------------- load generator


class _Conn:
    """One keep-alive HTTP/1.1 connection, one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> _Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> int:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        m = re.search(rb"(?i)content-length:\s*(\d+)", head)
        length = int(m.group(1)) if m else 0
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def _post(port: int, token: str | None, body: dict[str, Any]) -> bytes:
    data = json.dumps(body).encode()
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (
        f"POST /api/v1/orders HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode() + data


def _flow(port: int, tokens: list[str | None], n: int, offset: int) -> list[bytes]:
    """Crossing order flow: buy then sell 1 lot at 190.00, traders alternating."""
    out = []
    for i in range(n):
        k = offset + i
        side = "buy" if k % 2 == 0 else "sell"
        token = (
            tokens[(k // 2) % len(tokens)] if side == "buy" else tokens[(k // 2 + 1) % len(tokens)]
        )
        out.append(
            _post(
                port,
                token,
                {
                    "symbol": "AAPL",
                    "side": side,
                    "type": "limit",
                    "quantity": "1",
                    "price": "190.00",
                },
            )
        )
    return out


class _Cpu:
    """User + system CPU seconds of named groups of processes, for CPU per order.

    `server`: the serving process and its children (uvicorn workers); `engine`: the
    engine process; `database`: every PostgreSQL server process on the machine (the
    benchmark's database is the only busy one), when asked for; `load`: this process,
    the load generator.
    """

    def __init__(self, server: int, engine: int | None = None, *, database: bool = False) -> None:
        self.server, self.engine, self.database = server, engine, database

    @staticmethod
    def _seconds(procs: list[Any]) -> float:
        import psutil

        total = 0.0
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def sample(self) -> dict[str, float]:
        import psutil

        server = psutil.Process(self.server)
        out = {
            "server": self._seconds([server, *server.children(recursive=True)]),
            "load": time.process_time(),
        }
        if self.engine is not None:
            out["engine"] = self._seconds([psutil.Process(self.engine)])
        if self.database:
            out["database"] = self._seconds(
                [
                    p
                    for p in psutil.process_iter(["name"])
                    if (p.info["name"] or "").startswith("postgres")
                ]
            )
        return out


def _cpu_columns(
    before: dict[str, float],
    after: dict[str, float],
    requests: int,
    elapsed: float,
    cpus: int | None = None,
) -> dict[str, float]:
    """CPU ms per request of each process group, and the cores the server used.

    `machine_cpu_ms` is all the groups together, and `cpu_ceiling_per_s` the requests a
    second the machine's `cpus` could serve at that cost if every one of them were busy
    all the time: no latency, batching or scheduling can go past it on this machine.
    """
    ms = {
        name: (after[name] - before[name]) * 1000 / max(1, requests)
        for name in ("server", "engine", "database", "load")
        if name in before
    }
    out = {f"{name}_cpu_ms": round(value, 3) for name, value in ms.items()}
    out["server_cores"] = round((after["server"] - before["server"]) / elapsed, 2)
    total = sum(ms.values())
    out["machine_cpu_ms"] = round(total, 3)
    if total > 0:
        out["cpu_ceiling_per_s"] = round((cpus or os.cpu_count() or 1) * 1000 / total)
    return out


async def _drive(
    port: int,
    tokens: list[str | None],
    clients: int,
    total: int,
    cpu: _Cpu | None = None,
) -> dict[str, Any]:
    conns = [await _Conn.open(port) for _ in range(clients)]
    per = max(1, total // clients)
    # warm-up: a few requests per connection, not measured
    warm = [_flow(port, tokens, 4, 10_000_000 + c * 4) for c in range(clients)]
    await asyncio.gather(*(_run(conns[c], warm[c], None) for c in range(clients)))
    hist = LatencyHistogram()
    plans = [_flow(port, tokens, per, c * per) for c in range(clients)]
    statuses: dict[int, int] = {}
    cpu_before = cpu.sample() if cpu is not None else None
    t0 = time.perf_counter()
    await asyncio.gather(*(_run(conns[c], plans[c], hist, statuses) for c in range(clients)))
    elapsed = time.perf_counter() - t0
    cpu_columns = (
        _cpu_columns(cpu_before, cpu.sample(), hist.count, elapsed)
        if cpu is not None and cpu_before is not None
        else {}
    )
    for c in conns:
        c.close()
    return {
        "clients": clients,
        "requests": hist.count,
        "orders_per_s": round(hist.count / elapsed),
        "p50_ms": round(hist.percentile(50) / 1e6, 2),
        "p99_ms": round(hist.percentile(99) / 1e6, 2),
        "max_ms": round(hist.max / 1e6, 2),
        "non_2xx": sum(v for k, v in statuses.items() if not 200 <= k < 300),
        **cpu_columns,
    }


async def _run(
    conn: _Conn,
    plan: list[bytes],
    hist: LatencyHistogram | None,
    statuses: dict[int, int] | None = None,
) -> None:
    for raw in plan:
        t = time.perf_counter_ns()
        status = await conn.request(raw)
        if hist is not None:
            hist.record(time.perf_counter_ns() - t)
        if statuses is not None:
            statuses[status] = statuses.get(status, 0) + 1


def _median_burst(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The burst with the median orders/s (the lower middle one of an even number), all
    of its columns as measured together, and the range of orders/s over the bursts."""
    ranked = sorted(runs, key=lambda r: r["orders_per_s"])
    row = dict(ranked[(len(ranked) - 1) // 2])
    low, high = ranked[0]["orders_per_s"], ranked[-1]["orders_per_s"]
    row["orders_per_s_range"] = f"{low:,}-{high:,}" if len(runs) > 1 else None
    return row


def _bursts(
    port: int,
    tokens: list[str | None],
    clients: int,
    requests: int,
    cpu: _Cpu,
    count: int,
) -> dict[str, Any]:
    """`count` measured bursts back to back (one at a single client), as `_median_burst`:
    on a shared machine one burst can land on a neighbour's spike, or the database's
    autovacuum or checkpoint."""
    runs = [
        asyncio.run(_drive(port, tokens, clients, requests, cpu))
        for _ in range(count if clients > 1 else 1)
    ]
    return _median_burst(runs)


def _warm_up(port: int, tokens: list[str | None], clients: int, orders: int) -> None:
    """Unmeasured orders before a measured run, so it measures the steady state rather
    than the first batches on a cold database, connection pool and CPU caches."""
    if orders > 0:
        asyncio.run(_drive(port, tokens, clients, orders))


def _register(base: str, users: int = 2) -> list[str | None]:
    tokens: list[str | None] = []
    with httpx.Client(base_url=base, timeout=30) as c:
        for i in range(users):
            name = f"bench{i}_{os.getpid()}"
            c.post("/api/v1/auth/register", json={"username": name, "password": PASSWORD})
            r = c.post("/api/v1/auth/token", data={"username": name, "password": PASSWORD})
            r.raise_for_status()
            tokens.append(r.json()["access_token"])
    return tokens


def _lag_p99_ms(before: str, after: str) -> float | None:
    """p99 of hft_projection_lag_seconds between two /metrics scrapes (bucket bound)."""

    def buckets(text: str) -> dict[float, float]:
        out: dict[float, float] = {}
        for m in re.finditer(
            r'^hft_projection_lag_seconds_bucket\{le="([^"]+)"\} (\S+)$', text, re.M
        ):
            out[float(m.group(1))] = float(m.group(2))
        return out

    b, a = buckets(before), buckets(after)
    if not a:
        return None
    delta = sorted((le, a[le] - b.get(le, 0.0)) for le in a)
    total = delta[-1][1]
    if total <= 0:
        return None
    for le, count in delta:
        if count >= 0.99 * total:
            return round(le * 1000, 2) if le != float("inf") else None
    return None


def _start_backend(
    tmp: Path,
    label: str,
    db_url: str,
    engine: EngineProcess,
    workers: int = 1,
    env: dict[str, str] | None = None,
) -> tuple[_Proc, int]:
    """`hft api` on a free port in front of `engine` (not waited for)."""
    port = _free_port()
    api = _Proc(
        [
            sys.executable,
            "-m",
            "hft.cli",
            "api",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--engine-address",
            engine.address,
            "--database-url",
            db_url,
            "--data-dir",
            str(tmp / f"api-{label}"),
            "--config",
            str(DEFAULT_CONFIG),
            "--workers",
            str(workers),
        ],
        env or _env(),
        tmp / f"api-{label}.log",
    )
    return api, port


def _bench_backend(
    tmp: Path,
    label: str,
    db_url: str,
    engine: EngineProcess,
    levels: list[int],
    requests: int,
    workers: int = 1,
    users: int = 2,
    warmup: int = 0,
    bursts: int = 1,
) -> list[dict[str, Any]]:
    if workers > 1:
        label = f"{label}, {workers} workers"
    api, port = _start_backend(tmp, label, db_url, engine, workers)
    base = f"http://127.0.0.1:{port}"
    rows = []
    try:
        api.wait_http(base + "/health")
        tokens = _register(base, users)
        assert engine.proc is not None
        cpu = _Cpu(api.proc.pid, engine.proc.pid, database=db_url.startswith("postgresql"))
        for clients in levels:
            n = requests if clients > 1 else max(200, requests // 3)
            _warm_up(port, tokens, clients, warmup if clients > 1 else warmup // 5)
            before = httpx.get(base + "/metrics").text
            row = _bursts(port, tokens, clients, n, cpu, bursts)
            after = httpx.get(base + "/metrics").text
            rows.append(
                {
                    "server": f"backend ({label})",
                    **row,
                    "projection_lag_p99_ms": _lag_p99_ms(before, after),
                }
            )
    finally:
        api.stop()
    return rows


def _bench_bare(
    tmp: Path, levels: list[int], requests: int, warmup: int = 0, bursts: int = 1
) -> list[dict[str, Any]]:
    port = _free_port()
    proc = _Proc(
        [sys.executable, "-m", "hft.bench.api", "--bare-server", str(port)],
        _env(),
        tmp / "bare.log",
    )
    rows = []
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/docs")
        for clients in levels:
            n = requests if clients > 1 else max(200, requests // 3)
            _warm_up(port, [None], clients, warmup if clients > 1 else warmup // 5)
            row = _bursts(port, [None], clients, n, _Cpu(proc.proc.pid), bursts)
            rows.append(
                {"server": "bare FastAPI, same validation", **row, "projection_lag_p99_ms": None}
            )
    finally:
        proc.stop()
    return rows


# Column order of the report (its table takes the columns in the order rows first name
# them): the load and the latency, then where the CPU went.
_COLUMNS = (
    "server",
    "clients",
    "requests",
    "orders_per_s",
    "orders_per_s_range",
    "p50_ms",
    "p99_ms",
    "max_ms",
    "non_2xx",
    "projection_lag_p99_ms",
    "server_cores",
    "server_cpu_ms",
    "server_cpu_vs_bare",
    "engine_cpu_ms",
    "database_cpu_ms",
    "load_cpu_ms",
    "machine_cpu_ms",
    "cpu_ceiling_per_s",
)


def _ordered(row: dict[str, Any]) -> dict[str, Any]:
    """`row` with every column of `_COLUMNS` (None where it has none), in that order."""
    return {c: row.get(c) for c in _COLUMNS} | {k: v for k, v in row.items() if k not in _COLUMNS}


def _finished(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows in report order (`_ordered`), each backend row with its CPU per order
    over the bare endpoint's per request at the same concurrency."""
    rows = [_ordered(r) for r in rows]
    bare = {
        r["clients"]: r["server_cpu_ms"]
        for r in rows
        if r["server"].startswith("bare") and r["server_cpu_ms"]
    }
    for r in rows:
        cpu = r["server_cpu_ms"]
        if not r["server"].startswith("bare") and r["clients"] in bare and cpu is not None:
            r["server_cpu_vs_bare"] = round(cpu / bare[r["clients"]], 1)
    return rows


def _compared(
    bursts: dict[str, list[dict[str, Any]]], labels: dict[str, str]
) -> tuple[list[dict[str, Any]], list[float]]:
    """One row per side of a comparison (medians over its bursts) and the per-round
    ratios of the working tree's orders/s to the baseline's. Round i pairs burst i of
    each side, run one right after the other."""
    ratios = [
        round(w["orders_per_s"] / b["orders_per_s"], 3)
        for b, w in zip(bursts["baseline"], bursts["working"], strict=True)
        if b["orders_per_s"]
    ]
    medians = ("orders_per_s", "p50_ms", "p99_ms")
    cpu = (
        "server_cores",
        "server_cpu_ms",
        "engine_cpu_ms",
        "database_cpu_ms",
        "load_cpu_ms",
        "machine_cpu_ms",
        "cpu_ceiling_per_s",
    )
    rows = []
    for side in ("baseline", "working"):
        runs = bursts[side]
        rows.append(
            {
                "server": labels[side],
                "clients": runs[0]["clients"],
                "requests": sum(r["requests"] for r in runs),
                **{key: _median(runs, key) for key in medians},
                "max_ms": max(r["max_ms"] for r in runs),
                "non_2xx": sum(r["non_2xx"] for r in runs),
                **{key: _median(runs, key) for key in cpu},
            }
        )
    if ratios:
        rows[1]["vs_baseline_pct"] = round(100 * statistics.median(ratios), 1)
    return rows, ratios


def _median(runs: list[dict[str, Any]], key: str) -> Any:
    """The median of `key` over the runs that have it (None if none has)."""
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def _compare(args: argparse.Namespace) -> dict[str, Any]:
    """The working tree against `--api-baseline`: both backends up at once, each with its
    own engine and database, the load alternating between them in bursts (ABBA), so a
    machine whose speed drifts slows both alike."""
    from hft.bench._baseline import BaselineTree

    clients = max(int(x) for x in str(args.api_concurrency).split(",") if x.strip())
    rounds = args.api_rounds
    database = "PostgreSQL" if args.api_postgres_url else "SQLite"
    t0 = time.perf_counter()
    with BaselineTree(args.api_baseline) as tree, tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        labels = {
            "baseline": f"backend ({database}, {args.api_baseline} = {tree.commit[:10]})",
            "working": f"backend ({database}, working tree)",
        }
        envs = {"baseline": tree.env(_env()), "working": _env()}
        if args.api_postgres_url:
            from hft.db.testing import TemporaryPostgres

            pg = TemporaryPostgres(args.api_postgres_url, prefix="hft_bench_compare")
            try:
                urls = {side: asyncio.run(pg.create()) for side in envs}
                bursts = _alternate(tmp, urls, envs, args, clients, rounds)
            finally:
                pg.close_sync()
        else:
            urls = {side: f"sqlite+aiosqlite:///{tmp / f'{side}.db'}" for side in envs}
            bursts = _alternate(tmp, urls, envs, args, clients, rounds)
    commit = tree.commit
    rows, ratios = _compared(bursts, labels)
    return {
        "title": f"{TITLE}: working tree against {args.api_baseline}",
        "core": default_core(),
        "cpus": os.cpu_count(),
        "seconds": round(time.perf_counter() - t0, 1),
        "rows": rows,
        "round_ratios": ratios,
        "notes": [
            f"{rounds} rounds of one burst of {args.api_requests} orders per backend at "
            f"{clients} clients, in alternating order; each row gives medians over its "
            "bursts (max_ms: the largest). vs_baseline_pct: the median over the rounds of the "
            "working tree's orders/s over the baseline's in the same round, in percent "
            f"(each round: {', '.join(f'{x:.2f}' for x in ratios)}).",
            "Both engines run the working tree's engine code; the baseline backend runs "
            f"{args.api_baseline} ({commit[:10]}) with the installed C++ extension.",
        ],
    }


def _alternate(
    tmp: Path,
    urls: dict[str, str],
    envs: dict[str, dict[str, str]],
    args: argparse.Namespace,
    clients: int,
    rounds: int,
) -> dict[str, list[dict[str, Any]]]:
    """Start a backend and an engine per side, then run the bursts, alternating."""
    bursts: dict[str, list[dict[str, Any]]] = {side: [] for side in urls}
    with contextlib.ExitStack() as stack:
        engines = {
            side: stack.enter_context(EngineProcess(tmp / f"engine-{side}")) for side in urls
        }
        procs: dict[str, tuple[_Proc, int]] = {}
        for side in urls:
            procs[side] = _start_backend(tmp, side, urls[side], engines[side], env=envs[side])
            stack.callback(procs[side][0].stop)
        tokens, cpus = {}, {}
        for side, (proc, port) in procs.items():
            proc.wait_http(f"http://127.0.0.1:{port}/health")
            tokens[side] = _register(f"http://127.0.0.1:{port}", args.api_users)
            engine_proc = engines[side].proc
            assert engine_proc is not None
            cpus[side] = _Cpu(
                proc.proc.pid, engine_proc.pid, database=urls[side].startswith("postgresql")
            )
            _warm_up(port, tokens[side], clients, args.api_warmup)
        sides = list(urls)
        for r in range(rounds):
            for side in sides if r % 2 == 0 else sides[::-1]:
                port = procs[side][1]
                run = _drive(port, tokens[side], clients, args.api_requests, cpus[side])
                bursts[side].append(asyncio.run(run))
    return bursts


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the backend (SQLite, PostgreSQL when configured) and the bare endpoint, or,
    with --api-baseline, compare the working tree with another revision."""
    if args.api_baseline:
        return _compare(args)
    levels = [int(x) for x in str(args.api_concurrency).split(",") if x.strip()]
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hft-bench-api-") as d:
        tmp = Path(d)
        rows += _bench_bare(tmp, levels, args.api_requests, args.api_warmup, args.api_bursts)
        with EngineProcess(tmp / "engine-sqlite") as engine:
            rows += _bench_backend(
                tmp,
                "SQLite",
                f"sqlite+aiosqlite:///{tmp / 'bench.db'}",
                engine,
                levels,
                args.api_requests,
                users=args.api_users,
                warmup=args.api_warmup,
                bursts=args.api_bursts,
            )
        if args.api_postgres_url:
            from hft.db.testing import TemporaryPostgres

            pg = TemporaryPostgres(args.api_postgres_url, prefix="hft_bench_api")
            try:
                url = asyncio.run(pg.create())
                with EngineProcess(tmp / "engine-pg") as engine:
                    rows += _bench_backend(
                        tmp,
                        "PostgreSQL",
                        url,
                        engine,
                        levels,
                        args.api_requests,
                        users=args.api_users,
                        warmup=args.api_warmup,
                        bursts=args.api_bursts,
                    )
                    if args.api_workers > 1:
                        notes.append(
                            f"{args.api_workers} workers: each runs its own entry, sender and "
                            "projection; one projection applies each batch and announces its "
                            "commit, the others follow those notices and read back only the "
                            "orders and fills their own requests wait for; the entries lock "
                            "the same traders' account rows, on cores the engine, PostgreSQL "
                            "and the load generator also need."
                        )
                        rows += _bench_backend(
                            tmp,
                            "PostgreSQL",
                            url,
                            engine,
                            [max(levels)],
                            args.api_requests,
                            workers=args.api_workers,
                            users=args.api_users,
                            warmup=args.api_warmup,
                            bursts=args.api_bursts,
                        )
            finally:
                pg.close_sync()
        else:
            notes.append("PostgreSQL skipped: no --api-postgres-url / HFT_TEST_POSTGRES_URL")
    rows = _finished(rows)
    notes.append(
        f"Each run first sends {args.api_warmup:,} orders unmeasured ({args.api_warmup // 5:,} "
        "at one client), so it measures the steady state rather than the first batches on "
        f"a cold database; above one client a row is the median of {args.api_bursts} bursts "
        "back to back (all its columns from that burst), orders_per_s_range the lowest and "
        "highest of them."
    )
    notes.append(
        "server_cpu_ms, engine_cpu_ms, database_cpu_ms, load_cpu_ms: user + system CPU time "
        "per request during the measured requests of the serving process (with its "
        "workers), the engine, every PostgreSQL server process, and the load generator. "
        "server_cores: the serving process's CPU time over the wall time (one worker is one "
        "Python interpreter: it cannot go much past 1). server_cpu_vs_bare: the backend's "
        "CPU per order over the bare endpoint's per request at the same concurrency, in "
        "this run: the cost of everything past validation, in units that depend far less "
        "on how fast the machine is at the moment than orders/s do. machine_cpu_ms: all "
        "of these together; cpu_ceiling_per_s: the requests a second the machine's CPUs "
        "could serve at that cost with every CPU busy all the time, a bound no batching or "
        "latency work can pass on this machine."
    )
    notes.append(
        "One API worker unless the row says otherwise; engine, backend, database and load "
        "generator share the machine "
        f"({os.cpu_count()} CPUs). Every measured order is risk-checked, inserted, sent to "
        "the engine, and answered after the projection committed its events (fills for "
        "about half of them)."
    )
    return {
        "title": TITLE,
        "core": default_core(),
        "cpus": os.cpu_count(),
        "seconds": round(time.perf_counter() - t0, 1),
        "rows": rows,
        "notes": notes,
    }


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--bare-server":
        _serve_bare(int(sys.argv[2]))
    else:
        parser = argparse.ArgumentParser(prog="python -m hft.bench.api")
        add_arguments(parser)
        print(json.dumps(run(parser.parse_args()), indent=2))
