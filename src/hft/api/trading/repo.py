"""SQL for the trading tables (the routers stay thin; services stay SQL-free)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hft.api.trading.config import TradingSettings
from hft.db.models.auth import Account
from hft.db.models.trading import FillRow, OrderRow, PositionRow, RiskLimitRow
from hft.services.orders import OPEN_STATUSES
from hft.services.risk import RiskLimits


async def account_of_user(session: AsyncSession, user_id: int) -> Account | None:
    return (
        await session.execute(select(Account).where(Account.user_id == user_id))
    ).scalar_one_or_none()


async def lock_account_fresh(session: AsyncSession, account_id: int) -> Account | None:
    """The account under its row lock (SELECT ... FOR UPDATE on PostgreSQL), with the
    values read under that lock even when the session already holds the object from an
    earlier read: a money update computed from a pre-lock copy would overwrite whatever
    another writer committed in between. None when the account does not exist."""
    result = await session.execute(
        select(Account)
        .where(Account.id == account_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def lock_order_and_account(
    session: AsyncSession, order_id: int, account_id: int | None = None
) -> tuple[Account | None, OrderRow | None]:
    """An order and its account under their row locks, inside `write_transaction`:
    the account first, then the order (the lock order of every writer, so PostgreSQL
    cannot deadlock), both read again under the locks (`lock_account_fresh`). The
    account is looked up from the order unless given. (None, None) when the order does
    not exist."""
    if account_id is None:
        account_id = (
            await session.execute(select(OrderRow.account_id).where(OrderRow.id == order_id))
        ).scalar_one_or_none()
        if account_id is None:
            return None, None
    account = await lock_account_fresh(session, account_id)
    order = await session.get(OrderRow, order_id, with_for_update=True, populate_existing=True)
    return account, order


async def own_order(session: AsyncSession, account_id: int, order_id: int) -> OrderRow | None:
    """The order if it belongs to the account (another account's order is None)."""
    return (
        await session.execute(
            select(OrderRow).where(OrderRow.id == order_id, OrderRow.account_id == account_id)
        )
    ).scalar_one_or_none()


async def own_order_status(session: AsyncSession, account_id: int, order_id: int) -> str | None:
    """The order's status if it belongs to the account, without loading the row."""
    status: str | None = (
        await session.execute(
            select(OrderRow.status).where(
                OrderRow.id == order_id, OrderRow.account_id == account_id
            )
        )
    ).scalar_one_or_none()
    return status


async def order_by_client_id(
    session: AsyncSession, account_id: int, client_order_id: str
) -> OrderRow | None:
    return (
        await session.execute(
            select(OrderRow).where(
                OrderRow.account_id == account_id, OrderRow.client_order_id == client_order_id
            )
        )
    ).scalar_one_or_none()


async def fills_of(session: AsyncSession, order_id: int) -> list[FillRow]:
    rows = await session.execute(
        select(FillRow).where(FillRow.order_id == order_id).order_by(FillRow.id)
    )
    return list(rows.scalars())


async def open_exposure(
    session: AsyncSession, account_id: int, symbol: str
) -> tuple[int, int, int]:
    """(open orders over all symbols, open buy leaves, open sell leaves in `symbol`) in
    lots."""
    rows = await session.execute(
        select(OrderRow.symbol, OrderRow.side, func.count(), func.sum(OrderRow.held_leaves_lots))
        .where(OrderRow.account_id == account_id, OrderRow.status.in_(OPEN_STATUSES))
        .group_by(OrderRow.symbol, OrderRow.side)
    )
    count = buy = sell = 0
    for sym, side, n, leaves in rows:
        count += int(n)
        if sym == symbol:
            if side == "buy":
                buy += int(leaves or 0)
            else:
                sell += int(leaves or 0)
    return count, buy, sell


async def position_quantity(session: AsyncSession, account_id: int, symbol: str) -> Decimal:
    qty = (
        await session.execute(
            select(PositionRow.quantity).where(
                PositionRow.account_id == account_id, PositionRow.symbol == symbol
            )
        )
    ).scalar_one_or_none()
    return qty if qty is not None else Decimal(0)


async def limit_rows(
    session: AsyncSession, account_id: int | None
) -> tuple[RiskLimitRow | None, RiskLimitRow | None]:
    """(defaults row, account row)."""
    cond: Any = RiskLimitRow.account_id.is_(None)
    if account_id is not None:
        cond = or_(cond, RiskLimitRow.account_id == account_id)
    rows = (await session.execute(select(RiskLimitRow).where(cond))).scalars().all()
    defaults = next((r for r in rows if r.account_id is None), None)
    own = next((r for r in rows if r.account_id is not None), None)
    return defaults, own


def effective_limits(
    settings: TradingSettings, defaults: RiskLimitRow | None, own: RiskLimitRow | None
) -> tuple[RiskLimits, bool]:
    """Combine configured defaults, the defaults row and the account's row (the most
    specific non-null value wins). Returns (limits, global halt)."""
    d = settings.default_limits
    values: dict[str, object] = {
        "max_order_quantity": d.max_order_quantity,
        "max_order_notional": d.max_order_notional,
        "max_position": d.max_position,
        "max_open_orders": d.max_open_orders,
        "short_limit": d.short_limit,
    }
    halted = settings.global_halt
    if defaults is not None:
        for name in values:
            values[name] = getattr(defaults, name)
        if defaults.short_limit is None:
            values["short_limit"] = Decimal(0)
        halted = halted or defaults.trading_halted
    if own is not None:
        for name in values:
            value = getattr(own, name)
            if value is not None:
                values[name] = value
    return RiskLimits(**values), halted  # type: ignore[arg-type]
