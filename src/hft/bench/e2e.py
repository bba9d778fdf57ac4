"""End-to-end benchmark of the whole stack: engine + backend + simulation as processes.

`run(args) -> dict` starts the three in a temporary directory on free ports (SQLite, or
PostgreSQL with `database_url`), lets the simulation warm the market up, and measures:

* REST order latency: POST /orders sent -> response received (marketable IOC orders, so
  every measured order goes through risk, the engine and the projection), p50/p99/max;
* WebSocket fill latency: POST /orders sent -> the taker's fill visible on the `fills`
  channel of an authenticated WebSocket;
* whole-stack RSS at idle (engine + backend + simulation processes, simulation paused
  by stopping its load) against the published promise of < 500 MB;
* the throughput a load generator achieved at the requested rate (optional).

`generate_load` is also the load generator of the full-stack soak test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson

from hft.sim.agents import TokenBucket
from hft.sim.client import ApiError, UserSession
from hft.sim.market import InstrumentSpec, OrderIntent, Side

PROMISED_RSS_MB = 500.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentiles(samples_ms: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max/mean of `samples_ms` (milliseconds), exact (sorted), rounded to µs."""
    if not samples_ms:
        return {"count": 0}
    ordered = sorted(samples_ms)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {
        "count": len(ordered),
        "p50_ms": at(0.50),
        "p90_ms": at(0.90),
        "p99_ms": at(0.99),
        "max_ms": round(ordered[-1], 3),
        "mean_ms": round(sum(ordered) / len(ordered), 3),
    }


# ----------------------------------------------------------------------------- load


@dataclass
class LoadResult:
    """What the load generator did: requests by outcome and their latencies (ms)."""

    seconds: float = 0.0
    requests: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        rate = self.requests / self.seconds if self.seconds else 0.0
        return {
            "seconds": round(self.seconds, 1),
            "requests": self.requests,
            "requests_per_s": round(rate, 1),
            "by_status": dict(self.by_status),
            "latency": percentiles(self.latencies_ms),
        }


class _Market:
    """Mid prices (ticks) per symbol from the public book, refreshed in the background."""

    def __init__(self, specs: dict[str, InstrumentSpec]) -> None:
        self.specs = specs
        self.mid = {s: float(sp.to_ticks(sp.anchor_price)) for s, sp in specs.items()}
        self.last = {s: int(m) for s, m in self.mid.items()}

    async def refresh(self, session: UserSession, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for symbol, spec in self.specs.items():
                with contextlib.suppress(ApiError, KeyError, ValueError, TypeError, IndexError):
                    book = await session.call("GET", f"/markets/{symbol}/book", params={"depth": 1})
                    if book["bids"] and book["asks"]:
                        bid = spec.to_ticks(Decimal(book["bids"][0][0]))
                        ask = spec.to_ticks(Decimal(book["asks"][0][0]))
                        self.mid[symbol] = (bid + ask) / 2
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


def _load_order(rng: random.Random, spec: InstrumentSpec, mid: float) -> OrderIntent:
    """One order of the load mix around `mid` (ticks): crossing IOCs, resting GTCs, markets."""
    side = Side.BUY if rng.random() < 0.5 else Side.SELL
    lots = spec.clamp_lots(rng.randint(1, 5) * spec.min_lots)
    roll = rng.random()
    lo, hi = spec.band_ticks(int(mid))
    if roll < 0.15:
        return OrderIntent(spec.symbol, side, "market", "ioc", 0, lots)
    if roll < 0.55:
        # Through the touch by up to 10 bp: takes liquidity, the rest is canceled.
        price = mid * (1 + side.sign * rng.random() * 10e-4)
        tif = "ioc"
    else:
        # Passive within 20 bp: rests and gives the others something to take.
        price = mid * (1 - side.sign * rng.random() * 20e-4)
        tif = "gtc"
    ticks = min(hi, max(lo, round(price)))
    return OrderIntent(spec.symbol, side, "limit", tif, ticks, lots)


async def generate_load(
    url: str,
    credentials: Sequence[tuple[str, str]],
    *,
    rate: float,
    seconds: float,
    seed: int = 1,
    concurrency: int = 32,
    symbols: Sequence[str] | None = None,
    max_open_per_user: int = 40,
) -> LoadResult:
    """Send a mix of orders and cancels at about `rate` requests/s for `seconds`.

    `credentials` are (username, password) pairs; users are registered when needed.
    Every request counts (orders and cancels); 4xx answers are outcomes, not failures,
    since risk rejections are part of the mix. Decisions are drawn from `seed`.
    """
    result = LoadResult()
    limits = httpx.Limits(
        max_connections=concurrency + 8, max_keepalive_connections=concurrency + 8
    )
    async with httpx.AsyncClient(base_url=url, timeout=60.0, limits=limits) as http:
        sessions = [UserSession(http, u, p) for u, p in credentials]
        for session in sessions:
            await session.ensure_user()
        rows = await sessions[0].call("GET", "/instruments")
        specs = {
            s.symbol: s
            for s in (InstrumentSpec.from_api(r) for r in rows)
            if s.status == "trading" and (not symbols or s.symbol in symbols)
        }
        market = _Market(specs)
        stop = asyncio.Event()
        refresher = asyncio.create_task(market.refresh(sessions[0], stop))
        bucket = TokenBucket(rate, burst=max(1.0, rate / 10))
        open_orders: dict[str, list[str]] = {s.username: [] for s in sessions}
        names = sorted(specs)
        started = time.monotonic()
        deadline = started + seconds

        async def worker(index: int) -> None:
            rng = random.Random(f"{seed}:load:{index}")
            while time.monotonic() < deadline:
                await bucket.acquire()
                session = rng.choice(sessions)
                mine = open_orders[session.username]
                cancel = mine and (rng.random() < 0.25 or len(mine) >= max_open_per_user)
                t0 = time.perf_counter()
                try:
                    if cancel:
                        oid = mine.pop(rng.randrange(len(mine)))
                        await session.call("DELETE", f"/orders/{oid}")
                        outcome = "cancel_ok"
                    else:
                        symbol = rng.choice(names)
                        intent = _load_order(rng, specs[symbol], market.mid[symbol])
                        order = await session.call(
                            "POST", "/orders", json=intent.to_request(specs[symbol])
                        )
                        outcome = f"order_{order.get('status')}"
                        if order.get("status") in ("new", "partially_filled"):
                            mine.append(str(order["id"]))
                except ApiError as err:
                    outcome = f"{err.status}_{err.code}"
                    if err.transient:
                        await asyncio.sleep(err.retry_after or 0.5)
                result.latencies_ms.append((time.perf_counter() - t0) * 1000)
                result.requests += 1
                result.by_status[outcome] += 1

        try:
            await asyncio.gather(*(worker(i) for i in range(concurrency)))
        finally:
            result.seconds = time.monotonic() - started
            stop.set()
            await refresher
    return result


# ----------------------------------------------------------------------------- stack


class BenchStack:
    """engine + backend (+ simulation) as child processes in a temporary directory."""

    def __init__(
        self, root: Path, *, database_url: str | None = None, config: Path | None = None
    ) -> None:
        self.root = root
        self.data = root / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.engine_port = free_port()
        self.api_port = free_port()
        self.url = f"http://127.0.0.1:{self.api_port}"
        self.database_url = database_url or f"sqlite+aiosqlite:///{self.data / 'hft.db'}"
        self.config = config or Path(__file__).resolve().parents[3] / "config" / "default.yaml"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.env = dict(os.environ, PYTHONUNBUFFERED="1", HFT_ACCESS_LOG="false")

    def _spawn(self, name: str, args: list[str]) -> None:
        log = (self.root / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "hft.cli", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            start_new_session=True,
        )
        log.close()

    def _wait(self, name: str, ready: Any, limit: float = 120.0) -> None:
        deadline = time.monotonic() + limit
        while not ready():
            proc = self.procs[name]
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (self.root / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} did not start:\n{tail}")
            time.sleep(0.1)

    def start(self, sim_rate: float | None = None, seed: int = 1) -> None:
        """Start the engine, then the backend, then (with `sim_rate`) the simulation."""
        self._spawn(
            "engine",
            [
                "engine", "--config", str(self.config), "--host", "127.0.0.1",
                "--port", str(self.engine_port), "--data-dir", str(self.data / "engine"),
                "--metrics-port", "0",
            ],
        )  # fmt: skip
        self._wait("engine", self._engine_ready)
        self._spawn(
            "api",
            [
                "api", "--config", str(self.config), "--host", "127.0.0.1",
                "--port", str(self.api_port), "--engine-address", f"127.0.0.1:{self.engine_port}",
                "--data-dir", str(self.data),
                "--database-url", self.database_url, "--web-dir", str(self.root / "no-web"),
            ],
        )  # fmt: skip
        self._wait("api", self._api_ready)
        if sim_rate is not None:
            self.start_sim(sim_rate, seed)

    def start_sim(self, rate: float, seed: int = 1) -> None:
        self._spawn(
            "sim",
            [
                "simulate", "--api", self.url, "--config", str(self.config),
                "--data-dir", str(self.data), "--rate", str(rate), "--seed", str(seed),
            ],
        )  # fmt: skip

    def stop_sim(self) -> None:
        proc = self.procs.pop("sim", None)
        if proc is not None:
            _stop(proc)

    def _engine_ready(self) -> bool:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        with grpc.insecure_channel(f"127.0.0.1:{self.engine_port}") as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=2
                )
            except grpc.RpcError:
                return False
            return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    def _api_ready(self) -> bool:
        try:
            return httpx.get(self.url + "/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.procs.items() if p.poll() is None}

    def stop(self) -> None:
        for name in ("sim", "api", "engine"):
            proc = self.procs.pop(name, None)
            if proc is not None:
                _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def rss_mb(pids: dict[str, int]) -> dict[str, float]:
    """Resident memory (MiB) of each process including its children (uvicorn workers)."""
    import psutil

    out: dict[str, float] = {}
    for name, pid in pids.items():
        try:
            proc = psutil.Process(pid)
            total = proc.memory_info().rss
            for child in proc.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += child.memory_info().rss
        except psutil.Error:
            continue
        out[name] = round(total / (1 << 20), 1)
    return out


# ----------------------------------------------------------------------------- latency


async def _liquid_symbol(
    session: UserSession, symbol: str, wait: float = 60.0
) -> tuple[Decimal, Decimal]:
    """Best bid and ask of `symbol` once the simulation quotes both sides."""
    deadline = time.monotonic() + wait
    while True:
        book = await session.call("GET", f"/markets/{symbol}/book", params={"depth": 1})
        if book["bids"] and book["asks"]:
            return Decimal(book["bids"][0][0]), Decimal(book["asks"][0][0])
        if time.monotonic() > deadline:
            raise RuntimeError(f"{symbol} has no two-sided market after {wait:.0f} s")
        await asyncio.sleep(0.5)


async def measure_latency(url: str, *, orders: int, symbol: str, seed: int = 1) -> dict[str, Any]:
    """REST (place -> response) and WebSocket (place -> fill message) latency, in ms.

    Each order is a small marketable IOC limit order at the best ask/bid plus a few
    ticks: it takes liquidity the simulation provides, so the fill is real.
    """
    import websockets

    rng = random.Random(seed)
    rest: list[float] = []
    ws_lat: list[float] = []
    outcomes: Counter[str] = Counter()
    ws_url = url.replace("http://", "ws://", 1) + "/api/v1/ws"
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as http:
        session = UserSession(http, f"bench-{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}")
        session.register_first = True
        await session.ensure_user()
        rows = await session.call("GET", "/instruments")
        spec = next(InstrumentSpec.from_api(r) for r in rows if r["symbol"] == symbol)
        async with websockets.connect(ws_url, max_size=1 << 22) as ws:
            await ws.send(orjson.dumps({"op": "auth", "token": session.token}).decode())
            await ws.send(orjson.dumps({"op": "subscribe", "channels": ["fills"]}).decode())
            pending: dict[str, float] = {}
            arrived: dict[str, float] = {}

            async def reader() -> None:
                async for raw in ws:
                    now = time.perf_counter()
                    msg = orjson.loads(raw)
                    if str(msg.get("channel", "")) != "fills":
                        continue
                    data = msg.get("data") or {}
                    for fill in data if isinstance(data, list) else [data]:
                        oid = str(fill.get("order_id", ""))
                        arrived.setdefault(oid, now)

            task = asyncio.create_task(reader())
            try:
                await asyncio.sleep(0.5)
                for _ in range(orders):
                    bid, ask = await _liquid_symbol(session, symbol)
                    side = Side.BUY if rng.random() < 0.5 else Side.SELL
                    price = spec.to_ticks(ask) + 2 if side is Side.BUY else spec.to_ticks(bid) - 2
                    intent = OrderIntent(symbol, side, "limit", "ioc", price, spec.min_lots)
                    t0 = time.perf_counter()
                    try:
                        order = await session.call("POST", "/orders", json=intent.to_request(spec))
                    except ApiError as err:
                        outcomes[f"{err.status}_{err.code}"] += 1
                        await asyncio.sleep(err.retry_after or 0.2)
                        continue
                    rest.append((time.perf_counter() - t0) * 1000)
                    outcomes[str(order.get("status"))] += 1
                    if order.get("fills"):
                        pending[str(order["id"])] = t0
                    await asyncio.sleep(0.02)
                # Give the last fill messages a moment to arrive.
                for _ in range(50):
                    if all(oid in arrived for oid in pending):
                        break
                    await asyncio.sleep(0.1)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            for oid, t0 in pending.items():
                if oid in arrived:
                    ws_lat.append((arrived[oid] - t0) * 1000)
    return {
        "rest_place_to_response": percentiles(rest),
        "ws_place_to_fill": {**percentiles(ws_lat), "fills_expected": len(pending)},
        "outcomes": dict(outcomes),
    }


# ----------------------------------------------------------------------------- run


TITLE = "End to end: REST and WebSocket order latency, whole-stack memory"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `hft bench e2e` (prefixed: `hft bench all` shares one command line)."""
    g = parser.add_argument_group("e2e")
    g.add_argument("--e2e-orders", type=int, default=300, help="measured marketable orders")
    g.add_argument("--e2e-symbol", default="AAPL", help="symbol the measured orders trade")
    g.add_argument("--e2e-sim-rate", type=float, default=40.0, help="simulation orders/s meanwhile")
    g.add_argument(
        "--e2e-load-rate",
        type=float,
        default=0.0,
        help="extra load generator requests/s (0 = none)",
    )
    g.add_argument("--e2e-load-seconds", type=float, default=20.0, help="load generator duration")
    g.add_argument(
        "--e2e-idle-seconds", type=float, default=10.0, help="settle time before idle RSS"
    )
    g.add_argument(
        "--e2e-database-url", default=None, help="backend database (default: SQLite in a temp dir)"
    )
    g.add_argument("--e2e-seed", type=int, default=1)
    g.add_argument("--e2e-workdir", default=None, help="keep processes' data and logs here")


def _arg(args: Any, name: str, default: Any) -> Any:
    for attr in (f"e2e_{name}", name):
        value = getattr(args, attr, None) if args is not None else None
        if value is not None:
            return value
    return default


def _rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    latency = result.get("latency", {})
    for key, label in (
        ("rest_place_to_response", "REST: POST /orders sent -> response"),
        ("ws_place_to_fill", "WebSocket: POST /orders sent -> fill message"),
    ):
        stats = latency.get(key) or {}
        rows.append(
            {
                "measure": label,
                "count": stats.get("count", 0),
                "p50 ms": stats.get("p50_ms", ""),
                "p90 ms": stats.get("p90_ms", ""),
                "p99 ms": stats.get("p99_ms", ""),
                "max ms": stats.get("max_ms", ""),
            }
        )
    load = result.get("load")
    if load:
        lat = load["latency"]
        rows.append(
            {
                "measure": f"load generator: {load['requests_per_s']} req/s achieved "
                f"(asked {result['settings']['load_rate']:.0f})",
                "count": load["requests"],
                "p50 ms": lat.get("p50_ms", ""),
                "p90 ms": lat.get("p90_ms", ""),
                "p99 ms": lat.get("p99_ms", ""),
                "max ms": lat.get("max_ms", ""),
            }
        )
    rss = result.get("rss_mb", {})
    for key, label in (
        ("with_simulation", "RSS MiB, engine + backend + simulation"),
        ("idle_engine_api", "RSS MiB at idle, engine + backend"),
    ):
        if key in rss:
            parts = ", ".join(f"{k} {v}" for k, v in rss[key].items() if k != "total")
            rows.append({"measure": f"{label} ({parts})", "count": "", "p50 ms": rss[key]["total"]})
    return rows


def run(args: Any = None) -> dict[str, Any]:
    """The end-to-end benchmark; `args` may carry (with or without the `e2e_` prefix)
    `orders`, `symbol`, `sim_rate`, `load_rate`, `load_seconds`, `idle_seconds`,
    `database_url`, `seed`, `workdir`.

    Returns the measured numbers (milliseconds, MiB, requests/s), the settings, and
    `rows`/`notes` for the benchmark report.
    """
    orders = int(_arg(args, "orders", 300))
    symbol = str(_arg(args, "symbol", "AAPL"))
    sim_rate = float(_arg(args, "sim_rate", 40.0))
    load_rate = float(_arg(args, "load_rate", 0.0))
    load_seconds = float(_arg(args, "load_seconds", 20.0))
    idle_seconds = float(_arg(args, "idle_seconds", 10.0))
    seed = int(_arg(args, "seed", 1))
    database_url = _arg(args, "database_url", None)
    workdir = _arg(args, "workdir", None)
    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="hft-bench-e2e-"))
    stack = BenchStack(root, database_url=database_url)
    started = time.perf_counter()
    result: dict[str, Any] = {
        "title": TITLE,
        "settings": {
            "orders": orders,
            "symbol": symbol,
            "sim_rate": sim_rate,
            "load_rate": load_rate,
            "database": "postgresql" if database_url and "postgres" in database_url else "sqlite",
        },
    }
    try:
        stack.start(sim_rate=sim_rate, seed=seed)
        # Let the simulation log in and fill the books before measuring.
        time.sleep(5.0)
        result["latency"] = asyncio.run(
            measure_latency(stack.url, orders=orders, symbol=symbol, seed=seed)
        )
        if load_rate > 0:
            creds = [
                (f"load-{i}-{uuid.uuid4().hex[:6]}", f"pw-{uuid.uuid4().hex}") for i in range(8)
            ]
            load = asyncio.run(
                generate_load(stack.url, creds, rate=load_rate, seconds=load_seconds, seed=seed)
            )
            result["load"] = load.summary()
        with_sim = rss_mb(stack.pids())
        # Idle: no simulated traders, nothing arriving; the processes settle.
        stack.stop_sim()
        time.sleep(idle_seconds)
        idle = rss_mb(stack.pids())
        total = round(sum(with_sim.values()), 1)
        result["rss_mb"] = {
            "with_simulation": {**with_sim, "total": total},
            "idle_engine_api": {**idle, "total": round(sum(idle.values()), 1)},
            "promise_total_mb": PROMISED_RSS_MB,
            "within_promise": total < PROMISED_RSS_MB,
        }
    finally:
        stack.stop()
        if not workdir:
            shutil.rmtree(root, ignore_errors=True)
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["rows"] = _rows(result)
    verdict = "met" if result["rss_mb"]["within_promise"] else "NOT met"
    result["notes"] = [
        f"Real processes on one machine ({os.cpu_count()} CPUs), "
        f"{result['settings']['database']} database, "
        f"simulation at {sim_rate:.0f} orders/s while measuring.",
        "Measured orders are marketable IOC limit orders (1 lot) against the simulation's "
        "quotes: each goes through authentication, validation, pre-trade risk, the engine "
        "and the projection before POST /orders answers.",
        f"Promise: whole stack < {PROMISED_RSS_MB:.0f} MB resident with the simulation "
        f"running: {total} MiB, {verdict}.",
    ]
    return result


def main(argv: list[str] | None = None) -> int:
    """`python -m hft.bench.e2e`: run and print the numbers as JSON."""
    p = argparse.ArgumentParser(prog="python -m hft.bench.e2e")
    add_arguments(p)
    result = run(p.parse_args(argv))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
