"""Risk limits (defaults and per user) and the kill switch, enforced end to end."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY

from hft.api.trading.sender import OrderSender
from hft.api.trading.testing import (  # noqa: F401 - fixtures
    engine_fixture,
    place,
    settings_overrides_fixture,
    trader_with_max_position,
    trading_overrides_fixture,
    with_trading_fixture,
)
from hft.db.models.trading import OrderRow
from hft.engine.client import EngineRequestError


async def test_limits_defaults_and_per_user(make_user):
    admin, alice, bob = await make_user(admin=True), await make_user(), await make_user()
    r = await alice.get("/api/v1/risk/limits")
    assert r.status_code == 200
    assert r.json()["effective"]["max_open_orders"] == 500
    r = await admin.put(
        "/api/v1/risk/limits", json={"max_open_orders": 2, "max_order_quantity": "50"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["defaults"]["max_open_orders"] == 2
    await place(alice, side="buy", quantity="1", price="180.00")
    await place(alice, side="buy", quantity="1", price="181.00")
    r = await place(alice, side="buy", quantity="1", price="182.00", expect=403)
    assert r["error"]["code"] == "max_open_orders"
    r = await place(bob, side="buy", quantity="51", price="182.00", expect=403)
    assert r["error"]["code"] == "order_quantity_limit"
    # per-user override beats the default
    r = await admin.put(
        "/api/v1/risk/limits",
        json={"user_id": bob.user_id, "max_order_quantity": "100", "max_position": "60"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["effective"]["max_order_quantity"] == "100"
    big = await place(bob, side="buy", quantity="51", price="182.00")
    r = await place(bob, side="buy", quantity="10", price="182.00", expect=403)
    assert r["error"]["code"] == "position_limit"
    # amends are held to the same limits: 51 open + 10 more > 60
    r = await bob.patch(f"/api/v1/orders/{big['id']}", json={"quantity": "61"})
    assert (r.status_code, r.json()["error"]["code"]) == (403, "position_limit")
    r = await bob.patch(f"/api/v1/orders/{big['id']}", json={"quantity": "60"})
    assert r.status_code == 200, r.text
    assert r.json()["quantity"] == "60"
    r = await bob.get("/api/v1/risk/limits")
    assert r.json()["account"]["max_position"] == "60"
    # bad input
    for body, code in [
        ({"max_open_orders": 0}, "invalid_max_open_orders"),
        ({"max_position": "-5"}, "invalid_max_position"),
        ({"max_position": "NaN"}, "invalid_max_position"),
        ({"user_id": "999999", "max_position": "1"}, "user_not_found"),
        ({"bogus": 1}, "unknown_field"),
    ]:
        r = await admin.put("/api/v1/risk/limits", json=body)
        assert r.json()["error"]["code"] == code, (body, r.text)
    # global halt
    r = await admin.put("/api/v1/risk/limits", json={"global_halt": True})
    assert r.status_code == 200
    r = await place(bob, side="sell", quantity="1", price="199.00", expect=403)
    assert r["error"]["code"] == "trading_halted"
    await admin.put("/api/v1/risk/limits", json={"global_halt": False})
    await place(bob, side="sell", quantity="1", price="199.00")


async def test_short_limit_and_admin_kill_switch(make_user):
    admin, alice = await make_user(admin=True), await make_user()
    await admin.put("/api/v1/risk/limits", json={"short_limit": "5"})
    await place(alice, side="sell", quantity="3", price="195.00")
    r = await place(alice, side="sell", quantity="3", price="196.00", expect=403)
    assert r["error"]["code"] == "insufficient_position"
    r = await admin.post(
        "/api/v1/risk/kill-switch", json={"user_id": alice.user_id, "enabled": True}
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"user_id": alice.user_id, "trading_enabled": False, "canceled": 1}
    orders = (await alice.get("/api/v1/orders")).json()
    assert [(o["status"], o["reason"]) for o in orders] == [("canceled", "kill_switch")]
    r = await place(alice, side="sell", quantity="1", price="195.00", expect=403)
    assert r["error"]["code"] == "kill_switch"
    r = await admin.post(
        "/api/v1/risk/kill-switch", json={"user_id": alice.user_id, "enabled": False}
    )
    assert r.json()["trading_enabled"] is True
    await place(alice, side="sell", quantity="1", price="195.00")


async def test_sells_are_covered_by_the_position_less_open_sells(make_user):
    """Without short selling, a sell needs a long position; what it may sell is the
    position minus the sells already open."""
    admin, alice, bob = await make_user(admin=True), await make_user(), await make_user()
    r = await admin.put("/api/v1/risk/limits", json={"user_id": alice.user_id, "short_limit": "0"})
    assert r.status_code == 200, r.text
    r = await place(alice, side="sell", quantity="1", price="199.00", expect=403)
    assert r["error"]["code"] == "insufficient_position"
    await place(bob, side="sell", quantity="5", price="190.00")
    bought = await place(alice, side="buy", quantity="5", price="190.00")
    assert bought["status"] == "filled", bought
    await place(alice, side="sell", quantity="3", price="199.00")
    r = await place(alice, side="sell", quantity="3", price="199.00", expect=403)
    assert r["error"]["code"] == "insufficient_position"
    await place(alice, side="sell", quantity="2", price="199.00")
    r = await place(alice, side="sell", quantity="1", price="199.00", expect=403)
    assert r["error"]["code"] == "insufficient_position"


async def test_an_amend_on_its_way_to_the_engine_counts_against_new_orders(
    app, make_user, monkeypatch: pytest.MonkeyPatch
):
    # The amend is checked and committed before the engine sees it, and the order's
    # leaves change only when its answer is applied: meanwhile a new order must be
    # checked against the amended quantity, or the two together pass a position limit
    # that each passes alone (30 raised to 50, then 20 more: 70 > 60).
    bob = await trader_with_max_position(make_user, "60")
    order = await place(bob, side="buy", quantity="30", price="182.00")
    client = app.state.trading.client
    forward = client.amend_order
    entered: list[dict[str, Any]] = []

    async def enter_first(*args: Any, **kwargs: Any) -> Any:
        entered.append(await place(bob, side="buy", quantity="20", price="182.00", expect=None))
        return await forward(*args, **kwargs)

    monkeypatch.setattr(client, "amend_order", enter_first)
    r = await bob.patch(f"/api/v1/orders/{order['id']}", json={"quantity": "50"})
    assert r.status_code == 200, r.text
    assert r.json()["remaining_quantity"] == "50"
    assert [e.get("error", {}).get("code") for e in entered] == ["position_limit"]
    monkeypatch.setattr(client, "amend_order", forward)
    # The engine's answer is applied: the hold is gone, the order counts 50 (+ 10 = 60).
    async with app.state.db.session() as session:
        row = await session.get(OrderRow, int(order["id"]))
        assert row is not None
        assert (row.leaves_lots, row.amend_leaves_lots, row.amends_in_flight) == (50, None, 0)
    await place(bob, side="buy", quantity="10", price="182.00")
    r = await place(bob, side="buy", quantity="1", price="182.00", expect=403)
    assert r["error"]["code"] == "position_limit"


async def _amend_state(app: Any, order_id: int) -> tuple[int, int | None, int, str]:
    async with app.state.db.session() as session:
        row = await session.get(OrderRow, order_id)
        assert row is not None
        return row.leaves_lots, row.amend_leaves_lots, row.amends_in_flight, str(row.reserved)


async def test_an_amend_the_engine_refused_holds_nothing(
    app, make_user, monkeypatch: pytest.MonkeyPatch
):
    # Refused before sequencing, the amend never reaches the book and no answer to it
    # will come: its hold and its reservation end with the refusal, or the order would
    # count 50 until it ends (and the next 30 would pass no limit of 60).
    bob = await trader_with_max_position(make_user, "60")
    order = await place(bob, side="buy", quantity="30", price="182.00")
    before = await _amend_state(app, int(order["id"]))
    reserved = (await bob.get("/api/v1/account")).json()["reserved_cash"]

    async def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise EngineRequestError(grpc.StatusCode.INVALID_ARGUMENT, "amend refused")

    monkeypatch.setattr(app.state.trading.client, "amend_order", refuse)
    r = await bob.patch(f"/api/v1/orders/{order['id']}", json={"quantity": "50"})
    assert r.status_code == 502, r.text
    assert r.json()["error"]["code"] == "engine_refused"
    assert await _amend_state(app, int(order["id"])) == before == (30, None, 0, before[3])
    assert (await bob.get("/api/v1/account")).json()["reserved_cash"] == reserved
    await place(bob, side="buy", quantity="30", price="182.00")
    r = await place(bob, side="buy", quantity="1", price="182.00", expect=403)
    assert r["error"]["code"] == "position_limit"


async def test_an_order_the_engine_refused_is_rejected_holds_nothing_and_is_announced(
    app, make_user, monkeypatch: pytest.MonkeyPatch
):
    # Refused before sequencing, the order never reaches the book: it is rejected at
    # once with its reservation released, counted like any rejection, and its owner's
    # `orders` stream hears of it (as when reconciliation rejects an order).
    bob = await make_user()
    rt = app.state.trading
    before = (await bob.get("/api/v1/account")).json()["reserved_cash"]

    async def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise EngineRequestError(grpc.StatusCode.INVALID_ARGUMENT, "order refused")

    announced: list[tuple[int, str]] = []
    if rt.hub is not None:
        tell = rt.hub.order_changed
        monkeypatch.setattr(
            rt.hub, "order_changed", lambda o: (announced.append((o.id, o.status)), tell(o))
        )
    monkeypatch.setattr(rt, "sender", OrderSender(refuse, refuse))
    rejected = REGISTRY.get_sample_value("hft_orders_total", {"status": "rejected"}) or 0.0
    order = await place(bob, side="buy", quantity="30", price="182.00")
    assert (order["status"], order["reason"]) == ("rejected", "engine_refused")
    assert order["remaining_quantity"] == "0"
    assert (await bob.get("/api/v1/account")).json()["reserved_cash"] == before
    async with app.state.db.session() as session:
        row = await session.get(OrderRow, int(order["id"]))
        assert row is not None
        assert (row.status, row.reserved, row.leaves_lots) == ("rejected", 0, 0)
    assert REGISTRY.get_sample_value("hft_orders_total", {"status": "rejected"}) == rejected + 1
    if rt.hub is not None:
        assert announced == [(int(order["id"]), "rejected")]


async def test_two_amends_at_once_each_answered_leave_nothing_held(app, make_user):
    # Both amends are counted in flight until the engine's answer to each is applied;
    # whichever the engine took last decides the order, and then nothing stays held and
    # the reservation is what that order needs.
    bob = await trader_with_max_position(make_user, "100")
    order = await place(bob, side="buy", quantity="30", price="182.00")
    first, second = await asyncio.gather(
        bob.patch(f"/api/v1/orders/{order['id']}", json={"quantity": "40"}),
        bob.patch(f"/api/v1/orders/{order['id']}", json={"quantity": "50"}),
    )
    assert (first.status_code, second.status_code) == (200, 200), (first.text, second.text)
    leaves, held, in_flight, reserved = await _amend_state(app, int(order["id"]))
    assert leaves in (40, 50)
    assert (held, in_flight) == (None, 0)
    account = (await bob.get("/api/v1/account")).json()
    assert Decimal(account["reserved_cash"]) == Decimal(reserved)
    # The limit counts the order as the engine has it: 100 minus its leaves is left.
    await place(bob, side="buy", quantity=str(100 - leaves), price="182.00")
    r = await place(bob, side="buy", quantity="1", price="182.00", expect=403)
    assert r["error"]["code"] == "position_limit"
