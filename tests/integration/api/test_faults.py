"""kill -9 during a load of orders: of the backend (a real `hft api` process) and of the
engine. Afterwards nothing acknowledged is lost or applied twice: every fill is in the
database once, balances and positions add up from the fills, and the database agrees
with the engine about every order."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from hft.api.trading.testing import (  # noqa: F401 - fixtures
    engine_fixture,
    free_port,
    place,
    settings_overrides_fixture,
    trading_overrides_fixture,
    with_trading_fixture,
)
from hft.db.models.auth import Account
from hft.db.models.trading import FillRow, OrderRow, TradeRow
from hft.db.session import Database
from hft.engine.client import EngineClient

D = Decimal
REPO = Path(__file__).resolve().parents[3]
START_CASH = D(1_000_000)
OPEN = ("pending_new", "new", "partially_filled")


class ApiProcess:
    """`hft api` as a subprocess on a fixed port."""

    def __init__(self, tmp: Path, db_url: str, engine_address: str, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "api.log"
        self.cmd = [
            sys.executable,
            "-m",
            "hft.cli",
            "api",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--engine-address",
            engine_address,
            "--database-url",
            db_url,
            "--data-dir",
            str(tmp / "api-data"),
            "--config",
            str(REPO / "config" / "default.yaml"),
            *args,
        ]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HFT_")}
        self.env.update(
            {
                "HFT_RATE_LIMITS__ENABLED": "false",
                "HFT_ARGON2_TIME_COST": "1",
                "HFT_ARGON2_MEMORY_KIB": "8192",
                "HFT_ACCESS_LOG": "false",
                "HFT_TRADING__RECONCILE_GRACE_S": "2",
                "HFT_TRADING__RECONCILE_INTERVAL_S": "0.5",
                "HFT_TRADING__ENGINE_TIMEOUT_S": "2",
            }
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.cmd, stdout=log, stderr=log, env=self.env, start_new_session=True
            )

    async def start(self) -> None:
        self.spawn()
        assert self.proc is not None
        async with httpx.AsyncClient(base_url=self.url) as c:
            for _ in range(600):
                if self.proc.poll() is not None:
                    raise RuntimeError(self.log.read_text()[-3000:])
                with contextlib.suppress(httpx.HTTPError):
                    if (await c.get("/health")).status_code == 200:
                        return
                await asyncio.sleep(0.05)
        raise TimeoutError(self.log.read_text()[-3000:])

    def workers(self) -> list[int]:
        """The pids of the live worker processes (with --workers N); a killed one the
        supervisor has not reaped yet (a zombie) is not counted."""
        import psutil

        assert self.proc is not None
        pids = []
        for child in psutil.Process(self.proc.pid).children():
            with contextlib.suppress(psutil.Error):
                if "spawn_main" in " ".join(child.cmdline()):
                    pids.append(child.pid)
        return pids

    async def wait_workers(self, n: int, limit: float = 60.0) -> list[int]:
        """The pids of the workers once `n` of them are alive (the supervisor starts
        one in place of each that dies)."""
        end = time.monotonic() + limit
        while len(workers := self.workers()) != n:
            assert time.monotonic() < end, workers
            await asyncio.sleep(0.1)
        return workers

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)


async def _register(base: str, transport: Any = None) -> list[httpx.AsyncClient]:
    clients = []
    for i in range(4):
        c = httpx.AsyncClient(base_url=base, transport=transport, timeout=30)
        name = f"trader{i}_{random.randrange(10**6)}"
        r = await c.post(
            "/api/v1/auth/register", json={"username": name, "password": "pass-word-123"}
        )
        assert r.status_code == 201, r.text
        r = await c.post("/api/v1/auth/token", data={"username": name, "password": "pass-word-123"})
        c.headers["Authorization"] = "Bearer " + r.json()["access_token"]
        clients.append(c)
    return clients


async def _load(
    clients: list[httpx.AsyncClient], stop: asyncio.Event, statuses: list[int], seed: int
) -> None:
    rng = random.Random(seed)
    while not stop.is_set():
        c = rng.choice(clients)
        side = rng.choice(("buy", "sell"))
        body: dict[str, Any] = {
            "symbol": rng.choice(("AAPL", "MSFT")),
            "side": side,
            "quantity": str(rng.randint(1, 5)),
        }
        ref = D("190.00") if body["symbol"] == "AAPL" else D("420.00")
        if rng.random() < 0.15:
            body["type"] = "market"
        else:
            body["price"] = str(ref + D(rng.randint(-5, 5)) / 100)
        try:
            r = await c.post("/api/v1/orders", json=body)
            statuses.append(r.status_code)
            if r.status_code == 201 and rng.random() < 0.2 and r.json()["status"] == "new":
                await c.delete(f"/api/v1/orders/{r.json()['id']}")
        except httpx.HTTPError:
            statuses.append(-1)
            await asyncio.sleep(0.05)


async def _run_load(clients, seconds_before, fault, seconds_after) -> list[int]:
    stop = asyncio.Event()
    statuses: list[int] = []
    workers = [asyncio.create_task(_load(clients, stop, statuses, seed)) for seed in range(8)]
    await asyncio.sleep(seconds_before)
    fault()
    await asyncio.sleep(seconds_after)
    stop.set()
    await asyncio.gather(*workers)
    return statuses


async def _settled(db: Database, limit: float = 40.0) -> None:
    """Wait until no order is pending_new (reconciliation and projection caught up)."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        async with db.session() as s:
            pending = (
                (await s.execute(select(OrderRow.id).where(OrderRow.status == "pending_new")))
                .scalars()
                .all()
            )
        if not pending:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"orders still pending_new: {pending}")


async def check_consistency(db_url: str, engine_address: str) -> int:
    """Database vs fills vs engine; returns the number of trades checked."""
    db = Database(db_url, pool_size=2)
    try:
        await _settled(db)
        async with EngineClient(engine_address) as eng:
            stats = await eng.get_stats()
            async with db.session() as s:
                orders = (await s.execute(select(OrderRow))).scalars().all()
                fills = (await s.execute(select(FillRow))).scalars().all()
                trades = (await s.execute(select(TradeRow))).scalars().all()
                accounts = (await s.execute(select(Account))).scalars().all()
            # every trade of the venue is ours on both sides: two fills per trade, once
            assert len(trades) == int(stats.trades)
            assert len(fills) == 2 * len(trades)
            assert len({(f.trade_id, f.order_id) for f in fills}) == len(fills)
            by_order: dict[int, list[FillRow]] = {}
            for f in fills:
                by_order.setdefault(f.order_id, []).append(f)
            for o in orders:
                filled = sum((f.quantity for f in by_order.get(o.id, [])), D(0))
                assert o.filled_quantity == filled, (o.id, o.status)
                live = await eng.get_order(o.id)
                if o.status in ("new", "partially_filled"):
                    assert live.found, (o.id, o.status)
                    assert live.order.leaves_quantity == o.leaves_lots
                    assert live.order.filled_quantity == o.filled_lots
                else:
                    assert not live.found, (o.id, o.status)
                    assert o.reserved == 0
            for a in accounts:
                mine = [f for f in fills if f.account_id == a.id]
                cash = START_CASH + sum(
                    ((-1 if f.side == "buy" else 1) * f.price * f.quantity - f.fee for f in mine),
                    D(0),
                )
                assert a.cash == cash, a.id
                open_reserved = sum(
                    (o.reserved for o in orders if o.account_id == a.id and o.status in OPEN), D(0)
                )
                assert a.reserved_cash == open_reserved, a.id
        return len(trades)
    finally:
        await db.dispose()


async def _trade_on_and_check(
    clients: list[httpx.AsyncClient], db_url: str, engine_address: str
) -> None:
    """Trading goes on after the fault; then everything reconciles (check_consistency)."""
    statuses = await _run_load(clients, 0.5, lambda: None, 0.0)
    assert 201 in statuses
    for c in clients:
        await c.aclose()
    assert await check_consistency(db_url, engine_address) > 0


async def test_kill_backend_during_load(engine, db_url, tmp_path):
    api = ApiProcess(tmp_path, db_url, engine.address)
    await api.start()
    try:
        clients = await _register(api.url)
        statuses = await _run_load(clients, 1.5, api.kill, 0.3)
        assert 201 in statuses
        assert -1 in statuses  # requests failed while it was down
        await api.start()
        # the restarted backend serves the same users and keeps trading
        r = await clients[0].get("/api/v1/portfolio")
        assert r.status_code == 200
        await _trade_on_and_check(clients, db_url, engine.address)
    finally:
        api.kill()


async def test_kill_each_of_two_workers_during_load(engine, db_url, tmp_path):
    """With two workers one projection applies and the other follows its commit
    notices; whichever is killed, the other (or the one started in its place) applies
    what is left, exactly once."""
    api = ApiProcess(tmp_path, db_url, engine.address, "--workers", "2")
    await api.start()
    try:
        clients = await _register(api.url)
        for _ in range(2):
            workers = await api.wait_workers(2)
            statuses = await _run_load(
                clients, 1.5, lambda pid=workers[0]: os.kill(pid, signal.SIGKILL), 1.5
            )
            assert 201 in statuses
        # The supervisor replaced the killed workers; trading goes on.
        end = time.monotonic() + 60
        await api.wait_workers(2)
        while (await clients[0].get("/health")).status_code != 200:
            assert time.monotonic() < end
            await asyncio.sleep(0.2)
        await _trade_on_and_check(clients, db_url, engine.address)
    finally:
        api.kill()


async def test_kill_engine_during_load(app, engine, db_url):
    clients = await _register("http://testserver", httpx.ASGITransport(app=app))

    statuses = await _run_load(clients, 1.0, engine.kill, 1.0)
    assert 201 in statuses
    assert 503 in statuses
    r = await clients[0].get("/api/v1/orders")
    assert r.status_code == 200  # reads work while the engine is down
    engine.start()
    end = time.monotonic() + 30
    while (await clients[0].get("/health")).status_code != 200:
        assert time.monotonic() < end
        await asyncio.sleep(0.1)
    await _trade_on_and_check(clients, db_url, engine.address)
