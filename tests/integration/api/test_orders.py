"""Order flows against a real engine process, on SQLite and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

from hft.api.trading.testing import (  # noqa: F401 - fixtures
    engine_fixture,
    place,
    settings_overrides_fixture,
    trading_overrides_fixture,
    with_trading_fixture,
)

D = Decimal


async def test_limit_order_rests_and_market_order_fills_with_fills_in_response(make_user):
    alice, bob = await make_user(), await make_user()
    ask = await place(alice, side="sell", quantity="10", price="190.00")
    assert ask["status"] == "new"
    assert ask["remaining_quantity"] == "10"
    assert ask["fills"] == []
    buy = await place(bob, side="buy", quantity="4", type="market", price=None)
    assert buy["status"] == "filled"
    assert buy["type"] == "market"
    assert buy["filled_quantity"] == "4"
    assert buy["average_price"] == "190.00"
    assert [(f["price"], f["quantity"], f["liquidity"]) for f in buy["fills"]] == [
        ("190.00", "4", "taker")
    ]
    r = await alice.get(f"/api/v1/orders/{ask['id']}")
    maker = r.json()
    assert maker["status"] == "partially_filled"
    assert maker["filled_quantity"] == "4"
    assert maker["remaining_quantity"] == "6"
    assert maker["fills"][0]["liquidity"] == "maker"
    book = (await bob.get("/api/v1/markets/AAPL/book")).json()
    assert book["asks"] == [["190.00", "6"]]
    assert book["bids"] == []


async def test_crossing_limit_returns_the_fills_it_took_and_rests_the_rest(make_user):
    alice, bob = await make_user(), await make_user()
    await place(alice, side="sell", quantity="3", price="190.00")
    await place(alice, side="sell", quantity="3", price="190.05")
    buy = await place(bob, side="buy", quantity="10", price="190.05")
    assert buy["status"] == "partially_filled"
    assert [(f["price"], f["quantity"]) for f in buy["fills"]] == [
        ("190.00", "3"),
        ("190.05", "3"),
    ]
    assert buy["remaining_quantity"] == "4"
    assert buy["average_price"] == "190.025"
    book = (await bob.get("/api/v1/markets/AAPL/book")).json()
    assert book["bids"] == [["190.05", "4"]]
    assert book["asks"] == []


async def test_ioc_fok_and_market_without_liquidity(make_user):
    alice, bob = await make_user(), await make_user()
    none = await place(bob, side="buy", quantity="1", type="market", price=None)
    assert (none["status"], none["reason"]) == ("rejected", "market_no_liquidity")
    await place(alice, side="sell", quantity="2", price="190.00")
    fok = await place(bob, side="buy", quantity="5", price="190.00", time_in_force="fok")
    assert (fok["status"], fok["reason"], fok["filled_quantity"]) == (
        "rejected",
        "fok_unfilled",
        "0",
    )
    ioc = await place(bob, side="buy", quantity="5", price="190.00", time_in_force="ioc")
    assert (ioc["status"], ioc["reason"], ioc["filled_quantity"]) == (
        "canceled",
        "ioc_remainder",
        "2",
    )
    account = (await bob.get("/api/v1/account")).json()
    assert account["reserved_cash"] == "0"


async def test_partial_fills_between_two_users_update_both_sides(make_user):
    alice, bob = await make_user(), await make_user()
    bid = await place(alice, side="buy", quantity="10", price="100.00", symbol="MSFT", expect=422)
    assert bid["error"]["code"] == "price_out_of_band"
    bid = await place(alice, side="buy", quantity="10", price="420.00", symbol="MSFT")
    for qty in ("3", "4"):
        sell = await place(bob, side="sell", quantity=qty, price="419.00", symbol="MSFT")
        assert sell["status"] == "filled"
        assert sell["fills"][0]["price"] == "420.00"
    order = (await alice.get(f"/api/v1/orders/{bid['id']}")).json()
    assert (order["status"], order["filled_quantity"], order["remaining_quantity"]) == (
        "partially_filled",
        "7",
        "3",
    )
    assert len(order["fills"]) == 2
    fills = (await alice.get("/api/v1/fills?symbol=MSFT")).json()
    assert [f["quantity"] for f in fills] == ["4", "3"]
    positions = {p["symbol"]: p for p in (await bob.get("/api/v1/positions")).json()}
    assert positions["MSFT"]["quantity"] == "-7"


async def test_cancel_amend_and_cancel_all(make_user):
    alice, bob, carol = await make_user(), await make_user(), await make_user()
    a = await place(alice, side="sell", quantity="5", price="191.00")
    await place(bob, side="sell", quantity="5", price="191.00")
    # Reducing quantity keeps the place in the queue: carol's buy hits alice first.
    r = await alice.patch(f"/api/v1/orders/{a['id']}", json={"quantity": "3"})
    assert r.status_code == 200, r.text
    assert (r.json()["quantity"], r.json()["remaining_quantity"]) == ("3", "3")
    take = await place(carol, side="buy", quantity="2", price="191.00")
    assert take["status"] == "filled"
    order_a = (await alice.get(f"/api/v1/orders/{a['id']}")).json()
    assert order_a["filled_quantity"] == "2"
    # Quantity is the new total: 2 filled, total 6 -> 4 open; an increase re-queues it.
    r = await alice.patch(f"/api/v1/orders/{a['id']}", json={"quantity": "6"})
    assert r.status_code == 200, r.text
    assert (r.json()["quantity"], r.json()["remaining_quantity"]) == ("6", "4")
    take = await place(carol, side="buy", quantity="5", price="191.00")
    assert take["fills"][0]["quantity"] == "5"  # all from bob, now ahead of alice
    r = await alice.patch(f"/api/v1/orders/{a['id']}", json={"quantity": "2"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_quantity"
    r = await alice.patch(f"/api/v1/orders/{a['id']}", json={"price": "191.005"})
    assert r.json()["error"]["code"] == "price_not_on_tick"
    # Cancel: 200 with the order; again: 409.
    r = await alice.delete(f"/api/v1/orders/{a['id']}")
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["reason"]) == ("canceled", "user")
    r = await alice.delete(f"/api/v1/orders/{a['id']}")
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "order_not_open"
    for price in ("180.00", "181.00"):
        await place(alice, side="buy", quantity="1", price=price)
    await place(alice, side="buy", quantity="1", price="420.00", symbol="MSFT")
    r = await alice.delete("/api/v1/orders?symbol=AAPL")
    assert r.status_code == 200
    assert r.json()["canceled"] == 2
    assert {o["status"] for o in r.json()["orders"]} == {"canceled"}
    open_orders = (await alice.get("/api/v1/orders?status=open")).json()
    assert [o["symbol"] for o in open_orders] == ["MSFT"]
    r = await alice.delete("/api/v1/orders")
    assert r.json()["canceled"] == 1
    account = (await alice.get("/api/v1/account")).json()
    assert account["reserved_cash"] == "0"


async def test_idempotent_client_order_id(make_user):
    alice = await make_user()
    first = await place(alice, side="buy", quantity="2", price="189.00", client_order_id="abc-1")
    r = await alice.post(
        "/api/v1/orders",
        json={
            "symbol": "AAPL",
            "side": "buy",
            "type": "limit",
            "quantity": "2",
            "price": "189.00",
            "client_order_id": "abc-1",
        },
    )
    assert r.status_code == 200
    assert r.json()["id"] == first["id"]
    r = await alice.post(
        "/api/v1/orders",
        json={
            "symbol": "AAPL",
            "side": "buy",
            "type": "limit",
            "quantity": "3",
            "price": "189.00",
            "client_order_id": "abc-1",
        },
    )
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "duplicate_client_order_id"
    r = await alice.get("/api/v1/orders/by-client-id/abc-1")
    assert r.json()["id"] == first["id"]
    assert len((await alice.get("/api/v1/orders")).json()) == 1
    account = (await alice.get("/api/v1/account")).json()
    # one reservation only: 2 x 189 + 2 bps taker fee
    assert D(account["reserved_cash"]) == D("378.0756")


async def test_orders_listing_filters_and_order(make_user):
    alice = await make_user()
    ids = [
        (await place(alice, side="buy", quantity="1", price=p))["id"]
        for p in ("180.00", "181.00", "182.00")
    ]
    await alice.delete(f"/api/v1/orders/{ids[0]}")
    all_orders = (await alice.get("/api/v1/orders?status=all")).json()
    assert [o["id"] for o in all_orders] == ids[::-1]
    assert [o["id"] for o in (await alice.get("/api/v1/orders?status=closed")).json()] == [ids[0]]
    assert [o["id"] for o in (await alice.get("/api/v1/orders?status=open&limit=1")).json()] == [
        ids[2]
    ]
    r = await alice.get("/api/v1/orders?status=bogus")
    assert r.status_code == 422
