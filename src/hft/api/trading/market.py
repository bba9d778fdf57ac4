"""Public market data: instruments, book depth, recent trades, candles."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy import select

from hft.api.deps import SessionDep
from hft.api.errors import ApiError
from hft.api.trading.common import FastJSON, RuntimeDep, engine_unavailable, errors
from hft.api.trading.schemas import (
    BookPublic,
    CandlePublic,
    InstrumentPublic,
    TradePublic,
    candle_public,
    iso,
    price_str,
    qty_str,
)
from hft.db.models.trading import CandleRow, InstrumentRow, TradeRow
from hft.engine.client import EngineUnavailable
from hft.services.candles import INTERVALS
from hft.services.decimals import fmt
from hft.services.instruments import InstrumentInfo

router = APIRouter(tags=["market data"])

Symbol = Annotated[str, Path(max_length=32)]


def _instrument(rt: RuntimeDep, symbol: str) -> InstrumentInfo:
    inst = rt.instruments.get(symbol)
    if inst is None:
        raise ApiError(404, "unknown_symbol", f"unknown symbol {symbol[:32]!r}", "symbol")
    return inst


@router.get(
    "/instruments",
    response_model=list[InstrumentPublic],
    summary="Tradable instruments",
    responses={429: errors()[429]},
)
async def instruments(session: SessionDep, rt: RuntimeDep) -> FastJSON:
    rows = (
        await session.execute(select(InstrumentRow).order_by(InstrumentRow.symbol_id))
    ).scalars()
    out = []
    for row in rows:
        inst = rt.instruments.get(row.symbol)
        status = "trading" if (inst.trading if inst else row.status == "trading") else "halted"
        ref = inst.reference_price if inst else row.reference_price
        out.append(
            {
                "symbol": row.symbol,
                "tick_size": fmt(row.tick_size),
                "lot_size": fmt(row.lot_size),
                "min_quantity": fmt(row.min_qty * row.lot_size),
                "max_quantity": fmt(row.max_qty * row.lot_size),
                "price_band_pct": fmt(Decimal(row.band_bps) / 100),
                "reference_price": price_str(ref * row.tick_size, inst) if ref else None,
                "last_price": price_str(row.last_price * row.tick_size, inst)
                if row.last_price
                else None,
                "status": status,
            }
        )
    return FastJSON(out)


@router.get(
    "/markets/{symbol}/book",
    response_model=BookPublic,
    summary="Order book depth, best first",
    responses=errors(404, 503),
)
async def book(
    symbol: Symbol, rt: RuntimeDep, depth: Annotated[int, Query(ge=1, le=1000)] = 20
) -> FastJSON:
    inst = _instrument(rt, symbol)
    view = rt.relay.book(symbol, depth) if rt.relay is not None else None
    if view is not None:
        return FastJSON(view)
    try:
        ob = await rt.call("get_order_book", lambda: rt.client.get_order_book(symbol, depth))
    except EngineUnavailable:
        raise engine_unavailable() from None
    return FastJSON(
        {
            "symbol": symbol,
            "sequence": int(ob.sequence),
            "bids": [
                [str(inst.price(lv.price)), str(inst.quantity(lv.quantity))] for lv in ob.bids
            ],
            "asks": [
                [str(inst.price(lv.price)), str(inst.quantity(lv.quantity))] for lv in ob.asks
            ],
        }
    )


@router.get(
    "/markets/{symbol}/trades",
    response_model=list[TradePublic],
    summary="Recent trades, newest first",
    responses=errors(404),
)
async def trades(
    symbol: Symbol,
    session: SessionDep,
    rt: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> FastJSON:
    inst = _instrument(rt, symbol)
    rows = (
        await session.execute(
            select(TradeRow)
            .where(TradeRow.symbol == symbol)
            .order_by(TradeRow.trade_id.desc())
            .limit(limit)
        )
    ).scalars()
    return FastJSON(
        [
            {
                "trade_id": str(t.trade_id),
                "price": price_str(t.price, inst),
                "quantity": qty_str(t.quantity, inst),
                "taker_side": t.taker_side,
                "time": iso(t.time),
            }
            for t in rows
        ]
    )


@router.get(
    "/markets/{symbol}/candles",
    response_model=list[CandlePublic],
    summary="OHLCV candles, oldest first",
    responses=errors(404, 422),
)
async def candles(
    symbol: Symbol,
    session: SessionDep,
    rt: RuntimeDep,
    interval: Annotated[str, Query(pattern="^(1s|1m|5m|1h)$")] = "1m",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    end: Annotated[datetime | None, Query(description="candles starting before this")] = None,
) -> FastJSON:
    _instrument(rt, symbol)
    if interval not in INTERVALS:
        raise ApiError(422, "invalid_interval", "unknown interval", "interval")
    stmt = select(CandleRow).where(CandleRow.symbol == symbol, CandleRow.interval == interval)
    if end is not None:
        end_utc = end if end.tzinfo else end.replace(tzinfo=UTC)
        stmt = stmt.where(CandleRow.start < int(end_utc.timestamp()))
    rows = list(
        (await session.execute(stmt.order_by(CandleRow.start.desc()).limit(limit))).scalars()
    )
    rows.reverse()
    return FastJSON([candle_public(c) for c in rows])
