"""The promised end-to-end cases through real processes: orders, cancels, retrieval,
portfolio valuation, risk limits and bad input (REST -> backend -> engine -> database)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from hft_e2e_support import dec, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

# Each test trades its own symbol range of prices so that tests sharing the stack never
# match each other's orders: prices far from the others' and within the band.
MAKER_FEE = Decimal("0.0001")
TAKER_FEE = Decimal("0.0002")


def level_qty(book: dict[str, Any], side: str, price: str) -> Decimal:
    return sum((dec(q) for p, q in book[side] if dec(p) == dec(price)), Decimal(0))


def await_level(trader: Any, symbol: str, side: str, price: str, quantity: int) -> None:
    """The public book is fed by the engine's market data: it converges, it may lag."""

    def check() -> bool:
        book = trader.get(f"/markets/{symbol}/book", params={"depth": 200})
        assert level_qty(book, side, price) == quantity, book
        return True

    eventually(check, seconds=10)


def test_limit_order_rests_in_the_book(stack: Any) -> None:
    t = stack.trader()
    order = t.placed(
        symbol="MSFT", side="buy", type="limit", time_in_force="gtc", quantity="7", price="401.13"
    )
    assert order["status"] == "new"
    assert order["remaining_quantity"] == "7"
    assert order["filled_quantity"] == "0"
    assert order["fills"] == []
    await_level(t, "MSFT", "bids", "401.13", 7)
    assert [o["id"] for o in t.get("/orders", params={"status": "open"})] == [order["id"]]
    # Reserved: price x quantity plus the worst-case fee, released on cancel.
    account = t.get("/account")
    assert dec(account["reserved_cash"]) >= Decimal("401.13") * 7
    assert dec(account["buying_power"]) == dec(account["cash"]) - dec(account["reserved_cash"])


def test_market_order_executes_against_resting_liquidity(stack: Any) -> None:
    maker, taker = stack.trader("mk"), stack.trader("tk")
    ask = maker.placed(
        symbol="NVDA", side="sell", type="limit", time_in_force="gtc", quantity="10", price="131.07"
    )
    resp = taker.order(symbol="NVDA", side="buy", type="market", quantity="4")
    assert resp.status_code == 201, resp.text
    order = resp.json()
    # A market order's response is already final, with its fills.
    assert order["status"] == "filled"
    assert order["filled_quantity"] == "4"
    assert dec(order["average_price"]) == Decimal("131.07")
    (fill,) = order["fills"]
    assert fill["liquidity"] == "taker"
    assert dec(fill["price"]) == Decimal("131.07")
    assert dec(fill["fee"]) == Decimal("131.07") * 4 * TAKER_FEE

    def maker_filled() -> dict[str, Any]:
        o = maker.get(f"/orders/{ask['id']}")
        assert o["status"] == "partially_filled"
        return dict(o)

    resting = eventually(maker_filled)
    assert resting["remaining_quantity"] == "6"
    (mfill,) = resting["fills"]
    assert mfill["liquidity"] == "maker"
    assert mfill["trade_id"] == fill["trade_id"]
    assert dec(mfill["fee"]) == Decimal("131.07") * 4 * MAKER_FEE
    trades = taker.get("/markets/NVDA/trades", params={"limit": 50})
    assert any(t["trade_id"] == fill["trade_id"] and t["taker_side"] == "buy" for t in trades)


def test_market_order_without_liquidity_is_rejected_not_hung(stack: Any) -> None:
    t = stack.trader()
    # Nobody quotes TSLA in this module's tests: the opposite side is empty.
    resp = t.order(symbol="TSLA", side="buy", type="market", quantity="1")
    assert resp.status_code in (201, 409, 422), resp.text
    body = resp.json()
    if resp.status_code == 201:
        assert body["status"] == "rejected"
        assert body["reason"] == "market_no_liquidity"
    else:
        assert body["error"]["code"] == "market_no_liquidity"
    assert dec(t.get("/account")["reserved_cash"]) == 0


def test_cancel_removes_the_order_and_releases_cash(stack: Any) -> None:
    t = stack.trader()
    order = t.placed(symbol="MSFT", side="buy", type="limit", quantity="3", price="399.01")
    resp = t.req("DELETE", f"/orders/{order['id']}")
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "canceled"
    assert resp.json()["reason"] == "user"
    again = t.req("DELETE", f"/orders/{order['id']}")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "order_not_open"
    await_level(t, "MSFT", "bids", "399.01", 0)
    assert dec(t.get("/account")["reserved_cash"]) == 0
    assert t.get("/orders", params={"status": "open"}) == []


def test_cancel_all_and_amend(stack: Any) -> None:
    t = stack.trader()
    a = t.placed(symbol="SPY", side="buy", type="limit", quantity="5", price="551.10")
    b = t.placed(symbol="SPY", side="buy", type="limit", quantity="5", price="551.20")
    amended = t.req("PATCH", f"/orders/{a['id']}", json={"quantity": "3"})
    assert amended.status_code == 200, amended.text
    assert amended.json()["remaining_quantity"] == "3"
    moved = t.req("PATCH", f"/orders/{b['id']}", json={"price": "551.30"})
    assert moved.status_code == 200, moved.text
    assert dec(moved.json()["price"]) == Decimal("551.30")
    await_level(t, "SPY", "bids", "551.10", 3)
    await_level(t, "SPY", "bids", "551.30", 5)
    await_level(t, "SPY", "bids", "551.20", 0)
    resp = t.req("DELETE", "/orders", params={"symbol": "SPY"})
    assert resp.status_code == 200, resp.text
    assert t.get("/orders", params={"status": "open"}) == []


def test_order_retrieval_and_ownership(stack: Any) -> None:
    owner, other = stack.trader(), stack.trader()
    cid = f"c-{uuid.uuid4().hex[:10]}"
    order = owner.placed(
        symbol="BTC-USD",
        side="buy",
        type="limit",
        quantity="0.0125",
        price="60000.01",
        client_order_id=cid,
    )
    got = owner.get(f"/orders/{order['id']}")
    assert got["client_order_id"] == cid
    assert got["quantity"] == "0.0125"
    assert got["price"] == "60000.01"
    assert owner.get(f"/orders/by-client-id/{cid}")["id"] == order["id"]
    # Someone else's order does not exist for them.
    assert other.req("GET", f"/orders/{order['id']}").status_code == 404
    assert other.req("GET", f"/orders/by-client-id/{cid}").status_code == 404
    assert other.req("DELETE", f"/orders/{order['id']}").status_code == 404
    assert (
        other.req("PATCH", f"/orders/{order['id']}", json={"quantity": "0.0001"}).status_code == 404
    )
    # Idempotent retry with the same client id and payload: the same order, no new one.
    retry = owner.order(
        symbol="BTC-USD",
        side="buy",
        type="limit",
        quantity="0.0125",
        price="60000.01",
        client_order_id=cid,
    )
    assert retry.status_code in (200, 201)
    assert retry.json()["id"] == order["id"]
    clash = owner.order(
        symbol="BTC-USD",
        side="buy",
        type="limit",
        quantity="0.0200",
        price="60000.01",
        client_order_id=cid,
    )
    assert clash.status_code == 409
    assert clash.json()["error"]["code"] == "duplicate_client_order_id"
    assert len(owner.get("/orders", params={"status": "all"})) == 1
    owner.req("DELETE", f"/orders/{order['id']}")
    closed = owner.get("/orders", params={"status": "closed"})
    assert [o["id"] for o in closed] == [order["id"]]


def test_portfolio_is_valued_at_the_last_price(stack: Any) -> None:
    seller, buyer, marker = stack.trader("s"), stack.trader("b"), stack.trader("m")
    seller.placed(symbol="AAPL", side="sell", type="limit", quantity="10", price="180.00")
    buy = buyer.placed(
        symbol="AAPL", side="buy", type="limit", time_in_force="ioc", quantity="10", price="180.00"
    )
    assert buy["status"] == "filled"
    # A later trade at 181.50 between two other users moves the mark.
    marker.placed(symbol="AAPL", side="sell", type="limit", quantity="1", price="181.50")
    stack.trader("x").placed(
        symbol="AAPL", side="buy", type="limit", time_in_force="ioc", quantity="1", price="181.50"
    )

    def valued() -> dict[str, Any]:
        p = buyer.get("/portfolio")
        (pos,) = p["positions"]
        assert dec(pos["market_price"]) == Decimal("181.50")
        return dict(p)

    portfolio = eventually(valued)
    (pos,) = portfolio["positions"]
    fee = Decimal("1800.00") * TAKER_FEE
    start = Decimal(1_000_000)
    assert dec(pos["quantity"]) == 10
    assert dec(pos["average_cost"]) == Decimal("180.00")
    assert dec(pos["market_value"]) == Decimal("1815.00")
    assert dec(pos["unrealized_pnl"]) == Decimal("15.00")
    assert dec(portfolio["cash"]) == start - Decimal("1800.00") - fee
    assert dec(portfolio["equity"]) == dec(portfolio["cash"]) + Decimal("1815.00")
    # The short side: negative position, valued the same way.
    short = eventually(
        lambda: seller.get("/portfolio") if seller.get("/portfolio")["positions"] else None
    )
    (spos,) = short["positions"]
    assert dec(spos["quantity"]) == -10
    assert dec(spos["market_value"]) == Decimal("-1815.00")
    assert dec(short["cash"]) == start + Decimal("1800.00") - Decimal("1800.00") * MAKER_FEE


def test_buying_power_limit_rejects_and_changes_nothing(stack: Any) -> None:
    t = stack.trader()
    # 1,000,000 of cash cannot pay for 6,000 x 185 = 1,110,000.
    resp = t.order(symbol="AAPL", side="buy", type="limit", quantity="6000", price="185.00")
    assert resp.status_code == 403, resp.text
    assert resp.json()["error"]["code"] == "insufficient_buying_power"
    assert t.get("/orders", params={"status": "all"}) == []
    assert dec(t.get("/account")["reserved_cash"]) == 0


def test_admin_limits_are_enforced(stack: Any) -> None:
    admin, t = stack.admin(), stack.trader()
    user_id = t.get("/auth/me")["id"]
    resp = admin.req(
        "PUT", "/risk/limits", json={"user_id": user_id, "max_position": "5", "max_open_orders": 2}
    )
    assert resp.status_code == 200, resp.text
    too_big = t.order(symbol="MSFT", side="buy", type="limit", quantity="6", price="398.00")
    assert too_big.status_code == 403
    assert too_big.json()["error"]["code"] == "position_limit"
    t.placed(symbol="MSFT", side="buy", type="limit", quantity="1", price="398.00")
    t.placed(symbol="MSFT", side="buy", type="limit", quantity="1", price="398.01")
    third = t.order(symbol="MSFT", side="buy", type="limit", quantity="1", price="398.02")
    assert third.status_code == 403, third.text
    assert third.json()["error"]["code"] in ("max_open_orders", "open_orders_limit")
    # A trader cannot change limits.
    assert (
        t.req("PUT", "/risk/limits", json={"user_id": user_id, "max_position": "500"}).status_code
        == 403
    )


def test_kill_switch_halts_and_cancels(stack: Any) -> None:
    t = stack.trader()
    t.placed(symbol="MSFT", side="sell", type="limit", quantity="2", price="440.00")
    resp = t.req("POST", "/risk/kill-switch", json={"enabled": True})
    assert resp.status_code == 200, resp.text
    eventually(lambda: t.get("/orders", params={"status": "open"}) == [])
    blocked = t.order(symbol="MSFT", side="sell", type="limit", quantity="2", price="440.00")
    assert blocked.status_code == 403
    assert blocked.json()["error"]["code"] == "kill_switch"


BAD_ORDERS = [
    ({"side": "buy", "type": "limit", "quantity": "1", "price": "190.00"}, "symbol"),
    (
        {"symbol": "NOPE", "side": "buy", "type": "limit", "quantity": "1", "price": "1.00"},
        "unknown_symbol",
    ),
    ({"symbol": "AAPL", "side": "hold", "type": "limit", "quantity": "1", "price": "190.00"}, None),
    ({"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": "0", "price": "190.00"}, None),
    ({"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": "-1", "price": "190.00"}, None),
    (
        {"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": "1.5", "price": "190.00"},
        "quantity_not_on_lot",
    ),
    (
        {"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": "1", "price": "190.001"},
        "price_not_on_tick",
    ),
    ({"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": "1"}, None),
    ({"symbol": "AAPL", "side": "buy", "type": "market", "quantity": "1", "price": "190.00"}, None),
    (
        {"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": "NaN", "price": "190.00"},
        None,
    ),
    (
        {"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": "1", "price": "Infinity"},
        None,
    ),
    ({"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": "1", "price": "-0"}, None),
    (
        {"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": "1e3", "price": "190.00"},
        None,
    ),
    (
        {"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": "200000", "price": "190.00"},
        None,
    ),
    (
        {"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": "1", "price": "500.00"},
        "price_out_of_band",
    ),
    (
        {
            "symbol": "AAPL",
            "side": "buy",
            "type": "limit",
            "quantity": "1",
            "price": "190.00",
            "extra": 1,
        },
        None,
    ),
    ('{"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": 1e400, "price": "190"}', None),
    ('{"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": 1, "price": 190.001}', None),
    ('{"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": true, "price": "190"}', None),
    (
        {
            "symbol": "AAPL",
            "side": "buy",
            "type": "limit",
            "time_in_force": "gtd",
            "quantity": "1",
            "price": "190",
        },
        None,
    ),
    (
        {
            "symbol": "AAPL",
            "side": "buy",
            "type": "limit",
            "quantity": "1",
            "price": "190.00",
            "client_order_id": "x" * 65,
        },
        None,
    ),
]


@pytest.mark.parametrize(("body", "code"), BAD_ORDERS, ids=[str(i) for i in range(len(BAD_ORDERS))])
def test_bad_orders_get_a_clear_error_and_change_nothing(
    stack: Any, body: dict[str, Any] | str, code: str | None
) -> None:
    t = stack.trader()
    before = t.get("/account")
    if isinstance(body, str):
        # Raw JSON: values that a JSON encoder in Python would refuse to produce.
        resp = t.req(
            "POST", "/orders", content=body.encode(), headers={"content-type": "application/json"}
        )
    else:
        resp = t.order(**body)
    assert 400 <= resp.status_code < 500, f"{resp.status_code} {resp.text}"
    error = resp.json()["error"]
    assert error["code"]
    assert error["message"]
    if code is not None:
        assert error["code"] == code or error.get("field") == code
    assert t.get("/orders", params={"status": "all"}) == []
    assert t.get("/account") == before


def test_malformed_requests_are_4xx(stack: Any) -> None:
    t = stack.trader()
    raw = t.req(
        "POST", "/orders", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert raw.status_code in (400, 422)
    assert t.req("GET", "/orders/not-a-number").status_code in (400, 404, 422)
    assert t.req("GET", "/orders/99999999999999999999999").status_code in (400, 404, 422)
    assert t.req("GET", "/markets/NOPE/book").status_code == 404
    assert t.req("GET", "/orders", params={"status": "weird"}).status_code in (400, 422)
    assert stack.http.get("/api/v1/orders").status_code == 401
    assert (
        stack.http.get("/api/v1/orders", headers={"Authorization": "Bearer junk"}).status_code
        == 401
    )
