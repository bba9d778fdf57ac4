"""Reservations stay exact under concurrent amends, cancels and fills.

A market maker re-prices its resting buys with many concurrent PATCHes while another
user sells into them and the maker cancels and re-places; the projection applies the
resulting AMENDED, TRADE and CANCELED events while further amends hold the account's
row lock. Afterwards the account's reserved cash must equal the sum of its open orders'
reservations, each order's reservation must be what its price and leaves call for, and
cash must equal the starting cash plus the cash effect of every fill.
"""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from hft.api.trading.testing import (  # noqa: F401 - fixtures
    TRADING_TEST_SETTINGS,
    engine_fixture,
    place,
    with_trading_fixture,
)
from hft.db.models.auth import Account
from hft.db.models.trading import FillRow, OrderRow
from hft.services.risk import reservation

D = Decimal
TAKER_BPS = D(2)
MAKER_BPS = D(1)
START = D(1_000_000)
OPEN = ("pending_new", "new", "partially_filled")
ROUNDS = 25


@pytest.fixture
def settings_overrides(engine):
    return {
        "engine_address": engine.address,
        "starting_cash": str(START),
        "trading": {
            **TRADING_TEST_SETTINGS,
            "maker_fee_bps": str(MAKER_BPS),
            "taker_fee_bps": str(TAKER_BPS),
        },
    }


def _reserve(app: Any, side: str, price_ticks: int, leaves_lots: int) -> D:
    rt = app.state.trading
    return reservation(
        side,
        price_ticks,
        leaves_lots,
        rt.instruments["NVDA"],
        rt.settings.taker_fee_bps,
        rt.settings.money_decimals,
    )


async def _settled(app: Any) -> None:
    projection = app.state.trading.projection
    for _ in range(500):
        if projection.idle():
            await asyncio.sleep(0.05)
            if projection.idle():
                return
        await asyncio.sleep(0.02)
    raise AssertionError("the projection did not catch up")


async def _check_books(app: Any, account_id: int) -> None:
    async with app.state.db.session() as session:
        account = await session.get(Account, account_id)
        assert account is not None
        orders = list(
            (await session.execute(select(OrderRow).where(OrderRow.account_id == account_id)))
            .scalars()
            .all()
        )
        fills = list(
            (await session.execute(select(FillRow).where(FillRow.account_id == account_id)))
            .scalars()
            .all()
        )
    for order in orders:
        want = (
            _reserve(app, order.side, order.price_ticks, order.leaves_lots)
            if order.status in OPEN
            else D(0)
        )
        assert order.reserved == want, (order.id, order.status, order.reserved, want)
    held = sum((o.reserved for o in orders if o.status in OPEN), D(0))
    assert account.reserved_cash == held, (account.reserved_cash, held)
    cash = START
    for fill in fills:
        notional = fill.price * fill.quantity
        cash += (-notional if fill.side == "buy" else notional) - fill.fee
    assert account.cash == cash


async def test_concurrent_amends_cancels_and_fills_keep_reservations_exact(app, make_user):
    maker = await make_user()
    taker = await make_user()
    rng = random.Random(7)
    resting: list[str] = []
    for i in range(6):
        order = await place(maker, "NVDA", "buy", str(5 + i), f"{120 + i * 0.25:.2f}")
        resting.append(order["id"])

    async def amend(order_id: str, body: dict[str, str]) -> int:
        r = await maker.patch(f"/api/v1/orders/{order_id}", json=body)
        assert r.status_code in (200, 409, 422), r.text
        return r.status_code

    for round_no in range(ROUNDS):
        jobs: list[Any] = []
        for order_id in resting:
            for _ in range(3):
                body = {"price": f"{D(rng.randint(11800, 12400)) / 100:.2f}"}
                if rng.random() < 0.4:
                    body["quantity"] = str(rng.randint(4, 15))
                jobs.append(amend(order_id, body))
        # Sells at or below the bids: passive fills of the maker's orders.
        for _ in range(2):
            jobs.append(
                place(
                    taker,
                    "NVDA",
                    "sell",
                    str(rng.randint(1, 4)),
                    f"{D(rng.randint(11900, 12300)) / 100:.2f}",
                    time_in_force="ioc",
                    expect=None,
                )
            )
        victim = resting[rng.randrange(len(resting))]
        jobs.append(maker.delete(f"/api/v1/orders/{victim}"))
        rng.shuffle(jobs)
        await asyncio.gather(*jobs)
        # Replace whatever is no longer open so the maker keeps quoting.
        listed = (await maker.get("/api/v1/orders?status=open&limit=1000")).json()
        open_ids = {o["id"] for o in listed}
        for idx, order_id in enumerate(resting):
            if order_id not in open_ids:
                price = f"{D(rng.randint(11800, 12200)) / 100:.2f}"
                fresh = await place(maker, "NVDA", "buy", str(rng.randint(3, 12)), price)
                resting[idx] = fresh["id"]
        if round_no % 5 == 4:
            await _settled(app)
            await _check_books(app, int(maker.account_id))
    await _settled(app)
    await _check_books(app, int(maker.account_id))
    await _check_books(app, int(taker.account_id))
    # The same through the API: reserved cash is what the open orders call for.
    account = (await maker.get("/api/v1/account")).json()
    open_orders = (await maker.get("/api/v1/orders?status=open&limit=1000")).json()
    want = sum(
        (
            _reserve(app, o["side"], int(D(o["price"]) * 100), int(D(o["remaining_quantity"])))
            for o in open_orders
        ),
        D(0),
    )
    assert D(account["reserved_cash"]) == want
