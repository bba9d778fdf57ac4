"""Positions, cash, fees and P&L to the cent after a scripted sequence of trades.

Fees: maker 1 bps, taker 2 bps; starting cash 1,000,000. Expected values are worked out
by hand below (not by the code under test).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from hft.api.trading.testing import (  # noqa: F401 - fixtures
    engine_fixture,
    place,
    settings_overrides_fixture,
    with_trading_fixture,
)

D = Decimal


@pytest.fixture
def trading_overrides():
    return {"maker_fee_bps": "1", "taker_fee_bps": "2"}


async def test_scripted_sequence_to_the_cent(make_user):
    a, b = await make_user(), await make_user()
    # 1. B rests 10 @ 190.00, A takes all of it: 1900 notional; A pays 0.38, B 0.19.
    await place(b, side="sell", quantity="10", price="190.00")
    await place(a, side="buy", quantity="10", price="190.00")
    # 2. A rests a sell 4 @ 189.50, B takes it with a market order: 758 notional;
    #    A (maker) pays 0.0758, B (taker) 0.1516. A realizes 758 - 4 x 190 = -2.
    await place(a, side="sell", quantity="4", price="189.50")
    mkt = await place(b, side="buy", quantity="4", type="market", price=None)
    assert (mkt["status"], mkt["average_price"]) == ("filled", "189.50")
    # 3. B bids 3 @ 192.50, A sells into it: 577.50 notional; A (taker) 0.1155, B 0.05775.
    #    A realizes 577.50 - 3 x 190 = 7.50; B covers 3 of a 190.00 short: -7.50.
    await place(b, side="buy", quantity="3", price="192.50")
    await place(a, side="sell", quantity="3", price="192.50")

    pa = (await a.get("/api/v1/portfolio")).json()
    assert D(pa["cash"]) == D("999434.9287")
    assert pa["reserved_cash"] == "0"
    [pos] = pa["positions"]
    assert (pos["symbol"], pos["quantity"], D(pos["average_cost"])) == ("AAPL", "3", D(190))
    assert pos["market_price"] == "192.50"
    assert D(pos["market_value"]) == D("577.50")
    assert D(pos["unrealized_pnl"]) == D("7.50")
    assert D(pos["realized_pnl"]) == D("5.50")
    assert D(pos["fees"]) == D("0.5713")
    assert D(pa["equity"]) == D("1000012.4287")
    assert D(pa["realized_pnl"]) + D(pa["unrealized_pnl"]) - D(pa["fees"]) == D("12.4287")

    pb = (await b.get("/api/v1/portfolio")).json()
    assert D(pb["cash"]) == D("1000564.10065")
    [pos] = pb["positions"]
    assert (pos["quantity"], D(pos["average_cost"])) == ("-3", D(190))
    assert D(pos["market_value"]) == D("-577.50")
    assert D(pos["unrealized_pnl"]) == D("-7.50")
    assert D(pos["realized_pnl"]) == D("-5.50")
    assert D(pos["fees"]) == D("0.39935")
    assert D(pb["equity"]) == D("999986.60065")

    account = (await a.get("/api/v1/account")).json()
    assert D(account["equity"]) == D("1000012.4287")
    assert D(account["buying_power"]) == D("999434.9287")
    # Fills add up to the cash: every fill's notional and fee, per side.
    total = D(0)
    for f in (await a.get("/api/v1/fills")).json():
        notional = D(f["price"]) * D(f["quantity"])
        total += (-notional if f["side"] == "buy" else notional) - D(f["fee"])
    assert D(1_000_000) + total == D(pa["cash"])

    trades = (await a.get("/api/v1/markets/AAPL/trades")).json()
    assert [(t["price"], t["quantity"], t["taker_side"]) for t in trades] == [
        ("192.50", "3", "sell"),
        ("189.50", "4", "buy"),
        ("190.00", "10", "buy"),
    ]
    candles = (await a.get("/api/v1/markets/AAPL/candles?interval=1h")).json()
    assert sum(D(c["volume"]) for c in candles) == 17
    assert candles[-1]["close"] == "192.5"
    inst = {i["symbol"]: i for i in (await a.get("/api/v1/instruments")).json()}
    assert inst["AAPL"]["last_price"] == "192.50"


async def test_buy_reservation_tracks_open_orders(make_user):
    a, b = await make_user(), await make_user()
    bid = await place(a, side="buy", quantity="10", price="115.00", symbol="NVDA")
    acct = (await a.get("/api/v1/account")).json()
    # 10 x 115.00 = 1150 + 2 bps taker fee (0.23)
    assert D(acct["reserved_cash"]) == D("1150.23")
    r = await a.post(
        "/api/v1/orders", json={"symbol": "NVDA", "side": "buy", "quantity": "1", "price": "100.00"}
    )
    assert r.json()["error"]["code"] == "price_out_of_band"
    await place(b, side="sell", quantity="4", price="120.00", symbol="NVDA")
    r = await a.patch(f"/api/v1/orders/{bid['id']}", json={"price": "120.00"})
    assert r.status_code == 200, r.text
    assert r.json()["filled_quantity"] == "4"
    acct = (await a.get("/api/v1/account")).json()
    # 6 left at 120.00: 720 + 0.144 fee
    assert D(acct["reserved_cash"]) == D("720.144")
    await a.delete(f"/api/v1/orders/{bid['id']}")
    acct = (await a.get("/api/v1/account")).json()
    assert acct["reserved_cash"] == "0"
