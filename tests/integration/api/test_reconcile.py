"""Engine outages: new orders get 503, reads keep working, /health is degraded, orders
whose fate is unknown stay pending_new until reconciliation proves the engine never saw
them, and everything resumes when the engine returns."""

from __future__ import annotations

import asyncio

from hft.api.trading.testing import (  # noqa: F401 - fixtures
    engine_fixture,
    place,
    settings_overrides_fixture,
    trading_overrides_fixture,
    with_trading_fixture,
)


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
