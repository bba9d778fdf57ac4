"""Benchmark of the projection: CPU time of the backend per applied execution event.

Measured, never asserted: a seeded, realistic execution stream is applied through
`Projection._apply` (the same transaction, cursor lock and `BatchApplier` the running
backend uses) on a fresh database, once per batch size, and the process CPU time
(`time.process_time`, so the aiosqlite worker thread counts; the PostgreSQL server's own
CPU does not) is reported per applied event, beside the wall time.

The stream comes from the reference matching engine fed with crossing order flow on
several symbols (one with fractional lots) by several accounts: limit orders that rest
or trade (maker and taker fills, partial fills), IOC and market orders that sweep and
cancel their remainder, user cancels, amends, some rejects, and a few orders of another
venue participant that the backend does not know. Every order the backend knows is
inserted beforehand as order entry would (pending, with its cash reservation), so the
projection does exactly the work it does in production.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hft.api.trading.projection import AppliedBatch, FeeSchedule, Projection
from hft.db.migrate import upgrade
from hft.db.models.auth import Account, User
from hft.db.models.trading import InstrumentRow, OrderRow
from hft.db.session import create_engine, make_sessionmaker, write_transaction
from hft.engine.mapping import exec_events
from hft.engine.pb import engine_pb2 as pb
from hft.engine.reference import ReferenceEngine
from hft.engine.types import (
    CancelReason,
    EventType,
    Instrument,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
)
from hft.services.instruments import InstrumentInfo
from hft.services.risk import reservation

TITLE = "Projection: CPU per applied execution event"

# symbol, symbol id, tick size, lot size, mid price (ticks), max lots per order
SYMBOLS: tuple[tuple[str, int, str, str, int, int], ...] = (
    ("AAPL", 1, "0.01", "1", 19_000, 12),
    ("MSFT", 2, "0.01", "1", 42_000, 8),
    ("BTC-USD", 6, "0.01", "0.0001", 6_500_000, 400),
)
# The account of another venue participant: its orders trade, the backend has no rows.
FOREIGN_ACCOUNT = 9_999
STARTING_CASH = Decimal(10_000_000)
FEES = FeeSchedule(Decimal(1), Decimal(2), 8)
# 2024-01-01T00:00:00Z; one command every 3 ms, so 1 s candles roll over every ~330.
START_NS = 1_704_067_200_000_000_000
STEP_NS = 3_000_000


@dataclass
class Stream:
    """An execution stream and the database state it starts from."""

    accounts: list[int]
    instruments: dict[str, InstrumentInfo]
    orders: list[dict[str, Any]] = field(default_factory=list)  # OrderRow values
    reserved: dict[int, Decimal] = field(default_factory=dict)  # account -> reserved cash
    commands: list[list[pb.ExecutionEvent]] = field(default_factory=list)

    @property
    def events(self) -> int:
        return sum(len(c) for c in self.commands)


def make_stream(commands: int, *, accounts: int = 8, seed: int = 1) -> Stream:
    """A seeded stream of `commands` engine commands' execution events (see module doc).

    Raises ValueError for fewer than 1 command or fewer than 2 accounts.
    """
    if commands < 1 or accounts < 2:
        raise ValueError("need at least 1 command and 2 accounts")
    rng = random.Random(seed)
    engine = ReferenceEngine()
    infos: dict[int, tuple[str, str, str]] = {}
    instruments: dict[str, InstrumentInfo] = {}
    mids: dict[int, int] = {}
    for symbol, sid, tick, lot, mid, max_lots in SYMBOLS:
        engine.add_instrument(
            Instrument(sid, symbol, 1, max_lots * 10, 0, mid, tick_size=tick, lot_size=lot)
        )
        infos[sid] = (symbol, tick, lot)
        instruments[symbol] = InstrumentInfo(
            sid, symbol, Decimal(tick), Decimal(lot), 1, max_lots * 10, 0, mid
        )
        mids[sid] = mid
    account_ids = list(range(1, accounts + 1))
    stream = Stream(account_ids, instruments, reserved=dict.fromkeys(account_ids, Decimal(0)))
    live: dict[int, tuple[int, int, int]] = {}  # order id -> account, symbol id, side
    next_id = 1
    for i in range(commands):
        ts = START_NS + i * STEP_NS
        roll = rng.random()
        if live and roll < 0.18:
            oid = rng.choice(list(live))
            events = engine.cancel(oid, live[oid][0], ts=ts)
        elif live and roll < 0.23:
            oid = rng.choice(list(live))
            acc, sid, side = live[oid]
            state = engine.order(oid)
            assert state is not None
            # Buys only move down and shrink, so the reservation never grows (order entry
            # raises it before sending an amend that would; here nothing needs to).
            shift = -rng.randint(0, 3) if side == Side.BUY else rng.randint(-3, 3)
            events = engine.amend(
                oid, acc, state.price + shift, max(1, state.leaves_qty - rng.randint(0, 2)), ts=ts
            )
        else:
            symbol, sid, _tick, _lot, _mid, max_lots = rng.choice(SYMBOLS)
            if rng.random() < 0.1:
                mids[sid] += rng.choice((-1, 1))
            side = rng.choice((Side.BUY, Side.SELL))
            sign = 1 if side == Side.BUY else -1
            kind = rng.random()
            if kind < 0.05:
                otype, tif, price = "market", TimeInForce.IOC, mids[sid] + sign * mids[sid] // 20
            elif kind < 0.15:
                otype, tif, price = "limit", TimeInForce.IOC, mids[sid] + sign * rng.randint(0, 4)
            elif kind < 0.2:
                # Post-only at or near the touch: rejected when it would take.
                otype, tif, price = "post_only", TimeInForce.GTC, mids[sid] + rng.randint(-2, 2)
            else:
                otype, tif, price = "limit", TimeInForce.GTC, mids[sid] + rng.randint(-4, 3) * sign
            qty = rng.randint(1, max_lots)
            oid, next_id = next_id, next_id + 1
            foreign = rng.random() < 0.05
            acc = FOREIGN_ACCOUNT if foreign else rng.choice(account_ids)
            post_only = otype == "post_only"
            otype = "limit" if post_only else otype
            if not foreign:
                stream.orders.append(
                    _order_values(oid, acc, instruments[symbol], otype, tif, post_only)
                )
                stream.orders[-1].update(
                    _sized(instruments[symbol], side, price, qty, market=otype == "market")
                )
                stream.reserved[acc] += stream.orders[-1]["reserved"]
            events = engine.submit(
                oid, acc, sid, side, OrderType.LIMIT, tif, price, qty, post_only=post_only, ts=ts
            )
            if tif == TimeInForce.GTC and engine.order(oid) is not None:
                live[oid] = (acc, sid, side)
        for ev in events:
            touched = (ev.order_id, ev.maker_order_id)
            for oid in touched:
                if oid in live and engine.order(oid) is None:
                    del live[oid]
        rows = [e for e in events if e.type != EventType.BOOK_CHANGE]
        if rows:
            stream.commands.append(exec_events(rows, len(stream.commands) + 1, infos))
    return stream


def _order_values(
    oid: int, account: int, inst: InstrumentInfo, otype: str, tif: int, post_only: bool
) -> dict[str, Any]:
    created = datetime.fromtimestamp(START_NS / 1e9, tz=UTC)
    return {
        "id": oid,
        "account_id": account,
        "client_order_id": f"c{oid}",
        "symbol": inst.symbol,
        "type": otype,
        "time_in_force": "ioc" if tif == TimeInForce.IOC else "gtc",
        "post_only": post_only,
        "status": "pending_new",
        "created_at": created,
        "updated_at": created,
    }


def _sized(
    inst: InstrumentInfo, side: int, price: int, qty: int, *, market: bool
) -> dict[str, Any]:
    side_name = "buy" if side == Side.BUY else "sell"
    return {
        "side": side_name,
        # A market order's price_ticks is its protection (collar) price, not a limit.
        "price": None if market else inst.price(price),
        "price_ticks": price,
        "quantity": inst.quantity(qty),
        "quantity_lots": qty,
        "leaves_lots": qty,  # as order entry writes it: all of it open until the engine says
        "reserved": reservation(side_name, price, qty, inst, FEES.taker_bps, FEES.places),
    }


async def prepare(engine: AsyncEngine, stream: Stream) -> None:
    """Migrate an empty database and insert the accounts, instruments and orders."""
    await upgrade(engine)
    maker = make_sessionmaker(engine)
    async with maker() as session, write_transaction(session):
        await session.execute(
            insert(User),
            [
                {"id": a, "username": f"u{a}", "username_key": f"u{a}", "password_hash": "x"}
                for a in stream.accounts
            ],
        )
        await session.execute(
            insert(Account),
            [
                {"id": a, "user_id": a, "cash": STARTING_CASH, "reserved_cash": stream.reserved[a]}
                for a in stream.accounts
            ],
        )
        await session.execute(
            insert(InstrumentRow),
            [
                {
                    "symbol": i.symbol,
                    "symbol_id": i.symbol_id,
                    "tick_size": i.tick_size,
                    "lot_size": i.lot_size,
                    "min_qty": i.min_qty,
                    "max_qty": i.max_qty,
                    "reference_price": i.reference_price,
                }
                for i in stream.instruments.values()
            ],
        )
        if stream.orders:
            await session.execute(insert(OrderRow), stream.orders)


def batches(
    commands: Sequence[list[pb.ExecutionEvent]], size: int
) -> list[list[pb.ExecutionEvent]]:
    """Whole commands grouped as the projection's apply loop groups them: each batch takes
    one more command while it has fewer than `size` events."""
    out: list[list[pb.ExecutionEvent]] = []
    for command in commands:
        if out and len(out[-1]) < size:
            out[-1].extend(command)
        else:
            out.append(list(command))
    return out


def projection_for(maker: async_sessionmaker[AsyncSession]) -> Projection:
    """A projection on `maker` with no event source (batches are handed to `_apply`)."""

    def no_stream(_sequence: int) -> Any:
        raise RuntimeError("the benchmark applies batches directly")

    return Projection(maker, no_stream, FEES)


async def apply_all(
    projection: Projection, groups: list[list[pb.ExecutionEvent]]
) -> list[AppliedBatch | None]:
    """Apply every batch in order; what each handed to listeners."""
    return [await projection._apply(b) for b in groups]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _measure(url: str, stream: Stream, size: int, warmup: int) -> dict[str, Any]:
    engine = create_engine(url, pool_size=2)
    try:
        await prepare(engine, stream)
        projection = projection_for(make_sessionmaker(engine))
        groups = batches(stream.commands, size)
        # The first batches compile statements and fill SQLAlchemy's caches.
        head = max(1, warmup // size) if len(groups) > 1 else 0
        await apply_all(projection, groups[:head])
        cpu_per_event: list[float] = []
        events = 0
        cpu = wall = 0.0
        for group in groups[head:]:
            c0, w0 = time.process_time(), time.perf_counter()
            await projection._apply(group)
            dc, dw = time.process_time() - c0, time.perf_counter() - w0
            cpu += dc
            wall += dw
            events += len(group)
            cpu_per_event.append(dc / len(group))
    finally:
        await engine.dispose()
    return {
        "batch": size,
        "batches": len(groups) - head,
        "events": events,
        "cpu_us_per_event": round(cpu / events * 1e6, 1),
        "wall_us_per_event": round(wall / events * 1e6, 1),
        "events_per_cpu_s": round(events / cpu) if cpu > 0 else None,
        "batch_cpu_us_per_event_p50": round(_percentile(cpu_per_event, 0.5) * 1e6, 1),
        "batch_cpu_us_per_event_p90": round(_percentile(cpu_per_event, 0.9) * 1e6, 1),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `hft bench projection`."""
    g = parser.add_argument_group("projection")
    g.add_argument(
        "--projection-commands",
        type=int,
        default=3000,
        help="engine commands in the stream (about 1.5 execution events each)",
    )
    g.add_argument(
        "--projection-batches", default="1,16,256", help="comma-separated batch sizes (events)"
    )
    g.add_argument(
        "--projection-repeat", type=int, default=1, help="runs per database and batch size"
    )
    g.add_argument(
        "--projection-postgres-url",
        default=os.environ.get("HFT_TEST_POSTGRES_URL"),
        help="postgresql+asyncpg:// server for the PostgreSQL runs "
        "(default: env HFT_TEST_POSTGRES_URL; empty = SQLite only)",
    )
    g.add_argument("--projection-seed", type=int, default=1, help="random seed of the stream")


async def _run(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[str], Stream]:
    sizes = [int(x) for x in str(args.projection_batches).split(",") if x.strip()]
    if not sizes or min(sizes) < 1 or args.projection_repeat < 1:
        raise ValueError("batch sizes and --projection-repeat must be >= 1")
    stream = make_stream(args.projection_commands, seed=args.projection_seed)
    warmup = min(200, stream.events // 10)
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    pg = None
    if args.projection_postgres_url:
        from hft.db.testing import TemporaryPostgres

        pg = TemporaryPostgres(args.projection_postgres_url, prefix="hft_bench_projection")
    else:
        notes.append("PostgreSQL skipped: no --projection-postgres-url / HFT_TEST_POSTGRES_URL")
    try:
        with tempfile.TemporaryDirectory(prefix="hft-bench-projection-") as d:
            for size in sizes:
                for database in ("SQLite", "PostgreSQL") if pg is not None else ("SQLite",):
                    runs = []
                    for n in range(args.projection_repeat):
                        if pg is not None and database == "PostgreSQL":
                            url = await pg.clone()
                            try:
                                runs.append(await _measure(url, stream, size, warmup))
                            finally:
                                await pg.drop(url)
                        else:
                            url = f"sqlite+aiosqlite:///{Path(d) / f'{size}-{n}.db'}"
                            runs.append(await _measure(url, stream, size, warmup))
                    best = min(runs, key=lambda r: r["cpu_us_per_event"])
                    if len(runs) > 1:
                        best["median_cpu_us_per_event"] = statistics.median(
                            r["cpu_us_per_event"] for r in runs
                        )
                    rows.append({"measure": f"{database}, batch {size}", **best})
    finally:
        if pg is not None:
            await pg.close()
    return rows, notes, stream


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Apply the stream at each batch size on SQLite (and PostgreSQL when configured)."""
    t0 = time.perf_counter()
    rows, notes, stream = asyncio.run(_run(args))
    kinds: dict[str, int] = {}
    for command in stream.commands:
        for ev in command:
            name = pb.EventType.Name(ev.type).removeprefix("EVENT_TYPE_").lower()
            kinds[name] = kinds.get(name, 0) + 1
    notes.append(
        "CPU is the benchmark process's (time.process_time: the event loop and the aiosqlite "
        "thread; not the PostgreSQL server). Each batch is one write transaction with the "
        "cursor lock, as in the running backend. Of --projection-repeat runs on fresh "
        "databases, the one with the least CPU is shown (and the median CPU)."
    )
    return {
        "title": TITLE,
        "cpus": os.cpu_count(),
        "seconds": round(time.perf_counter() - t0, 1),
        "stream": {
            "commands": len(stream.commands),
            "events": stream.events,
            "orders_known": len(stream.orders),
            "accounts": len(stream.accounts),
            "symbols": [s[0] for s in SYMBOLS],
            "event_types": kinds,
            "cancel_reasons": sorted(
                {
                    CancelReason(ev.cancel_reason).name.lower()
                    for c in stream.commands
                    for ev in c
                    if ev.type == pb.EVENT_TYPE_CANCELED
                }
            ),
            "reject_reasons": sorted(
                {
                    RejectReason(ev.reject_reason).name.lower()
                    for c in stream.commands
                    for ev in c
                    if ev.type == pb.EVENT_TYPE_REJECTED
                }
            ),
        },
        "rows": rows,
        "notes": notes,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m hft.bench.projection")
    add_arguments(parser)
    print(json.dumps(run(parser.parse_args()), indent=2))
