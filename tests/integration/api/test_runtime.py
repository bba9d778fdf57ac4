"""The trading runtime against a real engine and database: instrument sync."""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hft.api.trading.config import TradingSettings
from hft.api.trading.runtime import TradingRuntime
from hft.api.trading.testing import engine_fixture  # noqa: F401 - fixture
from hft.db.migrate import upgrade
from hft.db.models.trading import InstrumentRow
from hft.db.session import Database
from hft.engine.testing import EngineProcess


async def _rows(db: Database) -> dict[str, InstrumentRow]:
    async with db.session() as session:
        return {r.symbol: r for r in (await session.execute(select(InstrumentRow))).scalars()}


async def test_backends_starting_together_sync_instruments_once(
    db_url: str, engine: EngineProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Several workers start at once on a fresh database: every one copies the engine's
    # instruments, none fails on another's rows.
    databases = [Database(db_url, pool_size=1) for _ in range(4)]
    runtimes = [TradingRuntime(db, engine.address, TradingSettings()) for db in databases]
    # Each sync's statements wait (briefly) for the others' after running, so all four
    # transactions are open at once, as in processes starting together.
    barrier = asyncio.Barrier(len(runtimes))
    execute = AsyncSession.execute

    async def in_step(self: AsyncSession, *args: Any, **kwargs: Any) -> Any:
        result = await execute(self, *args, **kwargs)
        with contextlib.suppress(TimeoutError, asyncio.BrokenBarrierError):
            await asyncio.wait_for(barrier.wait(), 0.5)
        return result

    try:
        await upgrade(databases[0].engine)
        for rt in runtimes:
            await rt.client.list_instruments()  # connected: the syncs start together
        with monkeypatch.context() as patch:
            patch.setattr(AsyncSession, "execute", in_step)
            await asyncio.gather(*(rt.sync_instruments() for rt in runtimes))
        listed = (await runtimes[0].client.list_instruments()).instruments
        rows = await _rows(databases[0])
        assert sorted(rows) == sorted(i.symbol for i in listed)
        for inst in listed:
            row = rows[inst.symbol]
            assert (row.symbol_id, row.tick_size, row.lot_size) == (
                inst.symbol_id,
                Decimal(inst.tick_size),
                Decimal(inst.lot_size),
            )
            assert (row.min_qty, row.max_qty, row.band_bps, row.reference_price) == (
                inst.min_quantity,
                inst.max_quantity,
                inst.price_band_bps,
                inst.reference_price,
            )
            assert row.status == "trading"
        assert all(rt.instruments_synced for rt in runtimes)
        assert set(runtimes[1].instruments) == set(rows)
        # A later sync of unchanged instruments leaves the rows alone.
        await runtimes[2].sync_instruments()
        again = await _rows(databases[0])
        assert {s: r.updated_at for s, r in again.items()} == {
            s: r.updated_at for s, r in rows.items()
        }
        # A row that differs from the engine is brought back in line.
        async with databases[0].session() as session, session.begin():
            row = await session.get(InstrumentRow, listed[0].symbol)
            assert row is not None
            row.band_bps = 1
            row.status = "halted"
        await runtimes[3].sync_instruments()
        fixed = (await _rows(databases[0]))[listed[0].symbol]
        assert (fixed.band_bps, fixed.status) == (listed[0].price_band_bps, "trading")
    finally:
        for rt in runtimes:
            await rt.client.close()
        for db in databases:
            await db.dispose()


async def test_limits_are_served_from_the_cache_until_it_expires(
    db_url: str, engine: EngineProcess
) -> None:
    # Order entry asks the cache first and opens no session while every account it
    # checks is cached; a stale or cleared entry is read again.
    db = Database(db_url, pool_size=1)
    rt = TradingRuntime(db, engine.address, TradingSettings(limits_cache_s=0.2))
    try:
        await upgrade(db.engine)
        assert rt.cached_limits(7) is None
        async with db.session() as session:
            limits = await rt.limits_for(session, 7)
        assert rt.cached_limits(7) == limits
        assert rt.cached_limits(8) is None
        rt.limits_changed()
        assert rt.cached_limits(7) is None
        async with db.session() as session:
            await rt.limits_for(session, 7)
        await asyncio.sleep(0.25)
        assert rt.cached_limits(7) is None
    finally:
        await rt.client.close()
        await db.dispose()
