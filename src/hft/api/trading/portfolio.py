"""Account, positions and portfolio, marked to the last trade price."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hft.api.deps import CurrentUser, SessionDep
from hft.api.errors import ApiError
from hft.api.trading.common import FastJSON, RuntimeDep, errors
from hft.api.trading.repo import account_of_user
from hft.api.trading.runtime import TradingRuntime
from hft.api.trading.schemas import AccountPublic, PortfolioPublic, PositionPublic, money, qty_str
from hft.db.models.auth import Account
from hft.db.models.trading import InstrumentRow, PositionRow
from hft.services.portfolio import Position, Valuation, equity, mark

router = APIRouter(tags=["portfolio"])


async def _account(session: AsyncSession, user_id: int) -> Account:
    account = await account_of_user(session, user_id)
    if account is None:
        raise ApiError(404, "account_not_found", "this user has no trading account")
    return account


async def portfolio_of(
    rt: TradingRuntime, session: AsyncSession, account: Account
) -> dict[str, Any]:
    """The portfolio document (positions valued at each symbol's last trade price)."""
    rows = (
        (
            await session.execute(
                select(PositionRow)
                .where(PositionRow.account_id == account.id)
                .order_by(PositionRow.symbol)
            )
        )
        .scalars()
        .all()
    )
    marks = {
        r.symbol: r.last_price for r in (await session.execute(select(InstrumentRow))).scalars()
    }
    positions: list[dict[str, Any]] = []
    valuations: list[Valuation] = []
    realized = unrealized = fees = Decimal(0)
    for row in rows:
        inst = rt.instruments.get(row.symbol)
        last = marks.get(row.symbol)
        price = inst.price(last) if inst is not None and last else None
        pos = Position(row.quantity, row.cost_basis, row.realized_pnl, row.fees)
        val = mark(pos, price)
        valuations.append(val)
        realized += row.realized_pnl
        unrealized += val.unrealized_pnl
        fees += row.fees
        positions.append(
            {
                "symbol": row.symbol,
                "quantity": qty_str(row.quantity, inst),
                "average_cost": money(pos.average_cost()),
                "market_price": None if price is None else str(price),
                "market_value": money(val.market_value),
                "unrealized_pnl": money(val.unrealized_pnl),
                "realized_pnl": money(row.realized_pnl),
                "fees": money(row.fees),
            }
        )
    market_value = sum((v.market_value for v in valuations), Decimal(0))
    return {
        "cash": money(account.cash),
        "reserved_cash": money(account.reserved_cash),
        "buying_power": money(account.cash - account.reserved_cash),
        "positions": positions,
        "market_value": money(market_value),
        "equity": money(equity(account.cash, valuations)),
        "realized_pnl": money(realized),
        "unrealized_pnl": money(unrealized),
        "fees": money(fees),
    }


@router.get(
    "/positions",
    response_model=list[PositionPublic],
    summary="The caller's positions, marked to the last trade",
    responses=errors(404),
)
async def positions(user: CurrentUser, session: SessionDep, rt: RuntimeDep) -> FastJSON:
    account = await _account(session, user.id)
    doc = await portfolio_of(rt, session, account)
    return FastJSON(doc["positions"])


@router.get(
    "/portfolio",
    response_model=PortfolioPublic,
    summary="Cash, positions, P&L and equity",
    responses=errors(404),
)
async def portfolio(user: CurrentUser, session: SessionDep, rt: RuntimeDep) -> FastJSON:
    account = await _account(session, user.id)
    return FastJSON(await portfolio_of(rt, session, account))


@router.get(
    "/account",
    response_model=AccountPublic,
    summary="Cash, reservations, buying power and equity",
    responses=errors(404),
)
async def account_view(user: CurrentUser, session: SessionDep, rt: RuntimeDep) -> FastJSON:
    account = await _account(session, user.id)
    doc = await portfolio_of(rt, session, account)
    return FastJSON(
        {
            "user_id": str(user.id),
            "account_id": str(account.id),
            "cash": doc["cash"],
            "reserved_cash": doc["reserved_cash"],
            "buying_power": doc["buying_power"],
            "equity": doc["equity"],
            "trading_enabled": account.trading_enabled,
        }
    )
