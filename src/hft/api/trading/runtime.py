"""The trading layer's long-lived state: engine client, instruments, projection,
reconciliation, market-data relay and WebSocket hub, started by `lifespan`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import or_, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from hft.api.audit import AuditWriter
from hft.api.trading import metrics
from hft.api.trading.config import TradingSettings
from hft.api.trading.entry import OrderEntry
from hft.api.trading.projection import FeeSchedule, Projection
from hft.api.trading.recent import RecentOrders
from hft.api.trading.repo import effective_limits, limit_rows
from hft.api.trading.sender import OrderSender
from hft.db.base import utcnow
from hft.db.models.trading import InstrumentRow
from hft.db.session import Database, write_transaction
from hft.engine.client import EngineClient, EngineUnavailable, ExecutionSubscriber
from hft.engine.pb import engine_pb2 as pb
from hft.services.instruments import InstrumentInfo
from hft.services.risk import RiskLimits

log = logging.getLogger("hft.api.trading")

T = TypeVar("T")

# Runtimes of the apps running in this process, newest last (one outside of tests).
_runtimes: list[TradingRuntime] = []


def current_runtime() -> TradingRuntime | None:
    return _runtimes[-1] if _runtimes else None


def info_from_pb(inst: pb.Instrument) -> InstrumentInfo:
    return InstrumentInfo(
        symbol_id=inst.symbol_id,
        symbol=inst.symbol,
        tick_size=Decimal(inst.tick_size),
        lot_size=Decimal(inst.lot_size),
        min_qty=inst.min_quantity,
        max_qty=inst.max_quantity,
        band_bps=inst.price_band_bps,
        reference_price=inst.reference_price,
        trading=inst.status != pb.INSTRUMENT_STATUS_HALTED,
    )


def info_from_row(row: InstrumentRow) -> InstrumentInfo:
    return InstrumentInfo(
        symbol_id=row.symbol_id,
        symbol=row.symbol,
        tick_size=row.tick_size,
        lot_size=row.lot_size,
        min_qty=row.min_qty,
        max_qty=row.max_qty,
        band_bps=row.band_bps,
        reference_price=row.last_price or row.reference_price,
        trading=row.status == "trading",
    )


class TradingRuntime:
    """Everything the trading routes need beyond the request."""

    def __init__(self, db: Database, engine_address: str, trading: TradingSettings) -> None:
        self.db = db
        self.engine_address = engine_address
        self.settings = trading
        self.client = EngineClient(engine_address, timeout=trading.engine_timeout_s)
        self.instruments: dict[str, InstrumentInfo] = {}
        self.fees = FeeSchedule(
            trading.maker_fee_bps, trading.taker_fee_bps, trading.money_decimals
        )
        self.projection = Projection(
            db.sessionmaker,
            lambda seq: ExecutionSubscriber(engine_address, seq),
            self.fees,
            batch=trading.projection_batch,
        )
        self._engine_state = "unavailable"
        self._limits_cache: dict[int, tuple[float, RiskLimits, bool]] = {}
        # user id -> account id (fixed once the account exists)
        self.account_ids: dict[int, int] = {}
        self.entry = OrderEntry(self)
        self.audit = AuditWriter(db)
        self.sender = OrderSender(
            self.client.submit_orders,
            self.client.submit_order,
            max_batch=trading.engine_batch_max,
            max_in_flight=trading.engine_batches_in_flight,
            on_batch=metrics.BATCH_SIZE.labels("engine_submit").observe,
        )
        self.recent = RecentOrders(lambda: self.instruments)
        self._tasks: list[asyncio.Task[None]] = []
        self.started_at = time.time()
        # set by the market-data relay and the WebSocket hub modules
        self.relay: Any = None
        self.hub: Any = None

    # -- engine -------------------------------------------------------------------
    def engine_status(self) -> str:
        return self._engine_state

    def mark_unavailable(self) -> None:
        self._engine_state = "unavailable"

    async def call(self, name: str, fn: Callable[[], Awaitable[T]]) -> T:
        """Call the engine, timing the round trip; EngineUnavailable marks it down."""
        start = time.perf_counter()
        try:
            result = await fn()
        except EngineUnavailable:
            self._engine_state = "unavailable"
            raise
        finally:
            metrics.ENGINE_RTT_BY(name).observe(time.perf_counter() - start)
        return result

    async def _monitor(self) -> None:
        while True:
            try:
                health = await self.client.health()
                serving = health.status == pb.HealthCheckResponse.STATUS_SERVING
                state = "ok" if serving else "recovering"
                if state == "ok" and not self.instruments_synced:
                    await self.sync_instruments()
                self._engine_state = state
            except EngineUnavailable:
                self._engine_state = "unavailable"
            except Exception:
                log.exception("engine health check failed")
                self._engine_state = "unavailable"
            await asyncio.sleep(1.0 if self._engine_state == "ok" else 0.3)

    # -- risk limits ----------------------------------------------------------------
    def cached_limits(self, account_id: int) -> tuple[RiskLimits, bool] | None:
        """`limits_for` from the cache alone: None when it would read the database."""
        hit = self._limits_cache.get(account_id)
        if hit is not None and time.monotonic() - hit[0] < self.settings.limits_cache_s:
            return hit[1], hit[2]
        return None

    async def limits_for(self, session: AsyncSession, account_id: int) -> tuple[RiskLimits, bool]:
        """Effective limits of an account and the global halt, cached for
        `limits_cache_s` (a change made through this process applies at once)."""
        cached = self.cached_limits(account_id)
        if cached is not None:
            return cached
        now = time.monotonic()
        defaults, own = await limit_rows(session, account_id)
        limits, halted = effective_limits(self.settings, defaults, own)
        if len(self._limits_cache) > 100_000:
            self._limits_cache.clear()
        self._limits_cache[account_id] = (now, limits, halted)
        return limits, halted

    def limits_changed(self) -> None:
        self._limits_cache.clear()

    # -- instruments ----------------------------------------------------------------
    instruments_synced = False

    async def load_instruments(self) -> None:
        async with self.db.session() as session:
            rows = (await session.execute(select(InstrumentRow))).scalars().all()
        self.instruments = {r.symbol: info_from_row(r) for r in rows}

    async def sync_instruments(self) -> None:
        """Copy the engine's instruments into the database and the cache.

        One upsert: several backend processes starting at once on a fresh database all
        insert the same instruments, and a read-then-insert would let all but one fail
        on the primary key (PostgreSQL runs these transactions side by side). The upsert
        settles a conflict on the symbol only, so on PostgreSQL the processes also take
        turns (a transaction-level advisory lock): two inserting the same instrument at
        once would otherwise collide on its other unique column, `symbol_id`. A row
        that already matches the engine is left alone, keeping its updated_at.
        """
        listed = await self.client.list_instruments()
        now = utcnow()
        rows = [
            {
                "symbol": inst.symbol,
                "symbol_id": inst.symbol_id,
                "tick_size": Decimal(inst.tick_size),
                "lot_size": Decimal(inst.lot_size),
                "min_qty": inst.min_quantity,
                "max_qty": inst.max_quantity,
                "band_bps": inst.price_band_bps,
                "reference_price": inst.reference_price,
                "status": "halted" if inst.status == pb.INSTRUMENT_STATUS_HALTED else "trading",
                "updated_at": now,
            }
            for inst in listed.instruments
        ]
        if rows:
            dialect = self.db.engine.dialect.name
            async with self.db.session() as session, write_transaction(session):
                if dialect == "postgresql":
                    await session.execute(
                        text(f"SELECT pg_advisory_xact_lock({_PG_INSTRUMENTS_LOCK})")
                    )
                await session.execute(_UPSERT_INSTRUMENTS[dialect], rows)
        self.instruments = {i.symbol: info_from_pb(i) for i in listed.instruments}
        self.instruments_synced = True

    def note_trade_price(self, symbol: str, ticks: int) -> None:
        """Keep the cached reference price (the engine's band centre) current."""
        inst = self.instruments.get(symbol)
        if inst is not None and inst.reference_price != ticks:
            from dataclasses import replace

            self.instruments[symbol] = replace(inst, reference_price=ticks)

    # -- lifecycle ------------------------------------------------------------------
    def spawn(self, coro: Awaitable[None], name: str) -> None:
        self._tasks.append(asyncio.ensure_future(coro))
        self._tasks[-1].set_name(name)

    async def start(self) -> None:
        await self.load_instruments()
        with contextlib.suppress(EngineUnavailable):
            await self.sync_instruments()
            self._engine_state = "ok"
        await self.projection.start()
        self.entry.start()
        self.spawn(self._monitor(), "engine-monitor")
        from hft.api.trading.reconcile import Reconciler

        self.reconciler = Reconciler(self)
        self.spawn(self.reconciler.run(), "reconcile")
        from hft.api.trading.relay import MarketDataRelay

        self.relay = MarketDataRelay(self)
        self.spawn(self.relay.run(), "market-data")
        from hft.api.trading.ws import Hub

        self.hub = Hub(self)
        self.projection.listeners.append(self.hub.on_applied)
        self.projection.observe = self.hub.wants_applied
        self.projection.listeners.append(self.recent.on_applied)

    async def stop(self) -> None:
        await self.entry.stop()
        await self.sender.close()
        await self.audit.close()
        await self.projection.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.hub is not None:
            await self.hub.close()
        with contextlib.suppress(Exception):
            await self.client.close()


async def start_runtime(app: Any) -> TradingRuntime:
    """Build and start the runtime from ``app.state.settings`` and ``app.state.db``."""
    settings = app.state.settings
    runtime = TradingRuntime(app.state.db, settings.engine_address, settings.trading)
    _runtimes.append(runtime)
    app.state.trading = runtime
    try:
        await runtime.start()
    except BaseException:
        await stop_runtime(runtime)
        raise
    return runtime


async def stop_runtime(runtime: TradingRuntime) -> None:
    try:
        await runtime.stop()
    finally:
        if runtime in _runtimes:
            _runtimes.remove(runtime)


def _upsert_instruments(insert: Any) -> Any:
    table = InstrumentRow.__table__
    stmt = insert(table)
    synced = (
        "symbol_id",
        "tick_size",
        "lot_size",
        "min_qty",
        "max_qty",
        "band_bps",
        "reference_price",
        "status",
    )
    return stmt.on_conflict_do_update(
        index_elements=[table.c.symbol],
        set_={c: stmt.excluded[c] for c in (*synced, "updated_at")},
        where=or_(*(table.c[c].is_distinct_from(stmt.excluded[c]) for c in synced)),
    )


# Any constant works; it only has to be the same in every backend process.
_PG_INSTRUMENTS_LOCK = 0x48465449  # "HFTI"
_UPSERT_INSTRUMENTS = {
    "postgresql": _upsert_instruments(pg_insert),
    "sqlite": _upsert_instruments(sqlite_insert),
}
