"""Engine outages: new orders get 503, reads keep working, /health is degraded, orders
whose fate is unknown stay pending_new until reconciliation proves the engine never saw
them, and everything resumes when the engine returns."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from hft.api.trading.testing import (  # noqa: F401 - fixtures
    engine_fixture,
    place,
    settings_overrides_fixture,
    trader_with_max_position,
    trading_overrides_fixture,
    with_trading_fixture,
)
from hft.db.models.trading import OrderRow
from hft.engine.client import EngineUnavailable


async def _until(predicate, limit=30.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while loop.time() < end:
        if await predicate():
            return True
        await asyncio.sleep(0.1)
    return False


async def test_engine_down_then_back(app, client, engine, make_user, monkeypatch):
    alice = await make_user()
    resting = await place(alice, side="buy", quantity="2", price="185.00")
    runtime = app.state.trading
    engine.kill()
    # The order is sent before the backend noticed: its fate is unknown -> pending_new.
    # (Patched, not set: the health monitor would otherwise notice the dead engine
    # first now and then, and the order would be refused up front.)
    monkeypatch.setattr(runtime, "engine_status", lambda: "ok")
    r = await alice.post(
        "/api/v1/orders",
        json={
            "symbol": "AAPL",
            "side": "buy",
            "quantity": "1",
            "price": "186.00",
            "client_order_id": "in-doubt",
        },
    )
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "engine_unavailable"
    monkeypatch.undo()
    doubt = (await alice.get("/api/v1/orders/by-client-id/in-doubt")).json()
    assert doubt["status"] == "pending_new"
    # Known down: refused up front, nothing written.
    assert await _until(lambda: _status(client, 503))
    r = await alice.post(
        "/api/v1/orders",
        json={
            "symbol": "AAPL",
            "side": "buy",
            "quantity": "1",
            "price": "186.00",
            "client_order_id": "refused",
        },
    )
    assert r.status_code == 503
    assert (await alice.get("/api/v1/orders/by-client-id/refused")).status_code == 404
    health = (await client.get("/health")).json()
    assert (health["status"], health["engine"]) == ("degraded", "unavailable")
    # Reads work.
    assert (await alice.get("/api/v1/portfolio")).status_code == 200
    assert len((await alice.get("/api/v1/orders")).json()) == 2
    r = await alice.delete(f"/api/v1/orders/{resting['id']}")
    assert r.status_code == 503
    # The engine comes back (same journal): everything resumes by itself.
    engine.start()
    assert await _until(lambda: _status(client, 200)), (await client.get("/health")).text

    async def resolved():
        o = (await alice.get("/api/v1/orders/by-client-id/in-doubt")).json()
        return o["status"] != "pending_new"

    assert await _until(resolved)
    doubt = (await alice.get("/api/v1/orders/by-client-id/in-doubt")).json()
    assert (doubt["status"], doubt["reason"]) == ("rejected", "engine_unavailable")
    # the resting order survived the engine restart and can be canceled now
    r = await alice.delete(f"/api/v1/orders/{resting['id']}")
    assert r.status_code == 200, r.text
    assert (await alice.get("/api/v1/account")).json()["reserved_cash"] == "0"
    await place(alice, side="buy", quantity="1", price="185.00")


async def _status(client, code):
    return (await client.get("/health")).status_code == code


async def _amend_state(app, order_id):
    async with app.state.db.session() as session:
        row = await session.get(OrderRow, order_id)
        return row.leaves_lots, row.amend_leaves_lots, row.amends_in_flight


async def test_amends_whose_outcome_is_unknown(app, client, make_user, monkeypatch):
    # The engine did not answer an amend: unknown is not failed, so the amend stays in
    # flight (held, counted by the risk checks) until its answer is applied or
    # reconciliation proves the engine never sequenced it.
    bob = await trader_with_max_position(make_user, "60")
    lost = await place(bob, side="buy", quantity="30", price="182.00")
    reached = await place(bob, side="buy", quantity="5", price="181.00")
    lost_reserved = await _reserved(app, int(lost["id"]))
    engine_client = app.state.trading.client
    forward = engine_client.amend_order

    async def never_sent(*_args, **_kwargs):
        raise EngineUnavailable("the engine did not answer")

    async def answer_lost(*args, **kwargs):
        await forward(*args, **kwargs)
        raise EngineUnavailable("the engine did not answer")

    monkeypatch.setattr(engine_client, "amend_order", never_sent)
    r = await bob.patch(f"/api/v1/orders/{lost['id']}", json={"quantity": "50"})
    assert r.status_code == 503, r.text
    monkeypatch.setattr(engine_client, "amend_order", answer_lost)
    r = await bob.patch(f"/api/v1/orders/{reached['id']}", json={"quantity": "6"})
    assert r.status_code == 503, r.text
    monkeypatch.setattr(engine_client, "amend_order", forward)
    assert await _until(lambda: _status(client, 200))
    # The amend the engine sequenced is answered through the stream as usual.
    assert await _until(lambda: _answered(app, int(reached["id"])))
    assert await _amend_state(app, int(reached["id"])) == (6, None, 0)
    # The other stays held (50 + 6 open, 10 more would pass 60) until the grace period
    # has passed and the projection has caught up with the engine; then it is released.
    assert await _amend_state(app, int(lost["id"])) == (30, 50, 1)
    r = await place(bob, side="buy", quantity="10", price="182.00", expect=403)
    assert r["error"]["code"] == "position_limit"
    assert await _until(lambda: _answered(app, int(lost["id"])))
    assert await _amend_state(app, int(lost["id"])) == (30, None, 0)
    assert app.state.trading.reconciler.released_amends == 1
    # Its reservation is again what 30 at 182.00 needs, and the account's is the sum of
    # its open orders'.
    assert await _reserved(app, int(lost["id"])) == lost_reserved
    account = (await bob.get("/api/v1/account")).json()
    open_orders = await _reserved(app, int(lost["id"])) + await _reserved(app, int(reached["id"]))
    assert Decimal(account["reserved_cash"]) == open_orders
    await place(bob, side="buy", quantity="24", price="182.00")
    r = await place(bob, side="buy", quantity="1", price="182.00", expect=403)
    assert r["error"]["code"] == "position_limit"


async def _reserved(app, order_id):
    async with app.state.db.session() as session:
        row = await session.get(OrderRow, order_id)
        return row.reserved


async def _answered(app, order_id):
    return (await _amend_state(app, order_id))[2] == 0
