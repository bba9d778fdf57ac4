"""Ownership and authorization on every trading endpoint."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import websockets

from hft.api.trading.testing import (  # noqa: F401 - fixtures
    engine_fixture,
    place,
    settings_overrides_fixture,
    trading_overrides_fixture,
    with_trading_fixture,
)


async def test_another_users_objects_are_404(make_user):
    alice, bob = await make_user(), await make_user()
    mine = await place(bob, side="buy", quantity="2", price="189.00", client_order_id="bob-1")
    await place(alice, side="sell", quantity="1", price="189.00")  # bob gets a fill
    oid = mine["id"]
    for method, path, body in [
        ("GET", f"/api/v1/orders/{oid}", None),
        ("PATCH", f"/api/v1/orders/{oid}", {"quantity": "5"}),
        ("DELETE", f"/api/v1/orders/{oid}", None),
        ("GET", "/api/v1/orders/by-client-id/bob-1", None),
    ]:
        r = await alice.request(method, path, json=body)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"]["code"] == "order_not_found"
    assert [o["id"] for o in (await alice.get("/api/v1/orders")).json()] != [oid]
    assert all(o["id"] != oid for o in (await alice.get("/api/v1/orders")).json())
    assert all(f["order_id"] != oid for f in (await alice.get("/api/v1/fills")).json())
    # bob's order is untouched by alice's attempts
    r = await bob.get(f"/api/v1/orders/{oid}")
    assert (r.json()["quantity"], r.json()["status"]) == ("2", "partially_filled")
    # cancel-all of alice never touches bob's orders
    r = await alice.delete("/api/v1/orders")
    assert r.json()["canceled"] == 0
    assert (await bob.get(f"/api/v1/orders/{oid}")).json()["status"] == "partially_filled"
    for bad in ("0", "-1", "abc", "99999999999999999999", "1e3"):
        r = await bob.get(f"/api/v1/orders/{bad}")
        assert r.status_code == 404


async def test_every_private_endpoint_needs_auth(client):
    for method, path in [
        ("POST", "/api/v1/orders"),
        ("GET", "/api/v1/orders"),
        ("GET", "/api/v1/orders/1"),
        ("GET", "/api/v1/orders/by-client-id/x"),
        ("PATCH", "/api/v1/orders/1"),
        ("DELETE", "/api/v1/orders/1"),
        ("DELETE", "/api/v1/orders"),
        ("GET", "/api/v1/fills"),
        ("GET", "/api/v1/positions"),
        ("GET", "/api/v1/portfolio"),
        ("GET", "/api/v1/account"),
        ("GET", "/api/v1/risk/limits"),
        ("PUT", "/api/v1/risk/limits"),
        ("POST", "/api/v1/risk/kill-switch"),
    ]:
        r = await client.request(method, path, json={})
        assert r.status_code == 401, (method, path, r.text)
        r = await client.request(
            method, path, json={}, headers={"Authorization": "Bearer not-a-token"}
        )
        assert r.status_code == 401, (method, path, r.text)


async def test_risk_admin_only_operations(make_user):
    alice, bob = await make_user(), await make_user()
    r = await alice.put("/api/v1/risk/limits", json={"max_open_orders": 3})
    assert r.status_code == 403
    r = await alice.post("/api/v1/risk/kill-switch", json={"user_id": bob.user_id, "enabled": True})
    assert r.status_code == 403
    r = await alice.get(f"/api/v1/risk/limits?user_id={bob.user_id}")
    assert r.status_code == 404
    # a user may halt himself but not lift it
    await place(alice, side="buy", quantity="1", price="180.00")
    r = await alice.post("/api/v1/risk/kill-switch", json={"enabled": True})
    assert r.status_code == 200, r.text
    assert (r.json()["trading_enabled"], r.json()["canceled"]) == (False, 1)
    r = await place(alice, side="buy", quantity="1", price="180.00", expect=403)
    assert r["error"]["code"] == "kill_switch"
    r = await alice.post("/api/v1/risk/kill-switch", json={"enabled": False})
    assert r.status_code == 403
    assert (await bob.get("/api/v1/account")).json()["trading_enabled"] is True


async def _ws_messages(ws, seconds):
    out = []
    try:
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), seconds))
            if msg.get("type") != "heartbeat":
                out.append(msg)
    except TimeoutError:
        return out


async def test_websocket_private_channels_only_carry_own_data(app, live_server, make_user):
    alice, bob = await make_user(), await make_user()
    url = live_server.replace("http", "ws") + "/api/v1/ws"
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"op": "subscribe", "channels": ["orders"]}))
        msgs = await _ws_messages(ws, 0.5)
        assert any(m.get("error", {}).get("code") == "not_authenticated" for m in msgs), msgs
        await ws.send(json.dumps({"op": "auth", "token": "garbage"}))
        msgs = await _ws_messages(ws, 0.5)
        assert any(m.get("type") == "error" for m in msgs)
        await ws.send(json.dumps({"op": "auth", "token": alice.token}))
        await ws.send(json.dumps({"op": "subscribe", "channels": ["orders", "fills", "account"]}))
        await _ws_messages(ws, 0.3)
        theirs = await place(bob, side="buy", quantity="1", price="189.00")
        mine = await place(alice, side="sell", quantity="1", price="189.00")
        msgs = await _ws_messages(ws, 1.0)
    order_ids = {m["data"]["id"] for m in msgs if m.get("channel") == "orders"}
    fill_orders = {m["data"]["order_id"] for m in msgs if m.get("channel") == "fills"}
    assert mine["id"] in order_ids
    assert theirs["id"] not in order_ids
    assert fill_orders == {mine["id"]}


async def test_websocket_private_channels_stop_when_the_token_expires(app, live_server, make_user):
    from hft.api.security import decode_token, encode_token

    alice = await make_user()
    settings = app.state.settings
    # `iat` is whole seconds, so a token "valid 4 s" may have 3.01 s left: wait for the
    # expiry the token actually carries, and keep every message from before it, since
    # a slow order round trip can make the expiry notice arrive in an earlier read.
    short = encode_token(
        alice.user_id, settings.jwt_key(), expires_in=4, issuer=settings.jwt_issuer
    )
    expires_at = decode_token(short, settings.jwt_key(), issuer=settings.jwt_issuer).expires_at
    url = live_server.replace("http", "ws") + "/api/v1/ws"
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"op": "auth", "token": short}))
        await ws.send(json.dumps({"op": "subscribe", "channels": ["orders", "trades:AAPL"]}))
        seen = await _ws_messages(ws, 0.3)
        before = await place(alice, side="buy", quantity="1", price="180.00")
        seen += await _ws_messages(ws, 0.5)
        assert before["id"] in {m["data"]["id"] for m in seen if m.get("channel") == "orders"}
        await asyncio.sleep(max(0.0, expires_at - time.time()) + 0.5)
        seen += await _ws_messages(ws, 0.5)
        assert any(m.get("error", {}).get("code") == "token_expired" for m in seen), seen
        after = await place(alice, side="buy", quantity="1", price="180.01")
        msgs = await _ws_messages(ws, 0.5)
        assert after["id"] not in {m["data"]["id"] for m in msgs if m.get("channel") == "orders"}
        await ws.send(json.dumps({"op": "subscribe", "channels": ["orders"]}))
        msgs = await _ws_messages(ws, 0.3)
        assert any(m.get("error", {}).get("code") == "not_authenticated" for m in msgs), msgs
        await ws.send(json.dumps({"op": "auth", "token": alice.token}))
        await ws.send(json.dumps({"op": "subscribe", "channels": ["orders"]}))
        await _ws_messages(ws, 0.3)
        again = await place(alice, side="buy", quantity="1", price="180.02")
        msgs = await _ws_messages(ws, 0.5)
        assert again["id"] in {m["data"]["id"] for m in msgs if m.get("channel") == "orders"}


async def test_signed_bad_tokens_rejected(app, make_user):
    alice = await make_user()
    forged = alice.token[:-4] + ("AAAA" if not alice.token.endswith("AAAA") else "BBBB")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.get("/api/v1/orders", headers={"Authorization": f"Bearer {forged}"})
        assert r.status_code == 401


async def test_websocket_bad_messages_get_errors_and_the_connection_stays(app, live_server):
    url = live_server.replace("http", "ws") + "/api/v1/ws"
    async with websockets.connect(url) as ws:
        for channel in ("book:NOPE", "candles:AAPL:2m", "weird", "orders:1", "book:AAPL:x"):
            await ws.send(json.dumps({"op": "subscribe", "channels": [channel]}))
            msgs = await _ws_messages(ws, 0.3)
            assert any(m.get("type") == "error" for m in msgs), (channel, msgs)
        for raw in (
            "not json",
            "[]",
            '{"op": "dance"}',
            '{"op": "subscribe"}',
            '{"op": "subscribe", "channels": [1, 2]}',
            "x" * 10000,
            '{"op": null}',
        ):
            await ws.send(raw)
            msgs = await _ws_messages(ws, 0.3)
            assert [m["type"] for m in msgs] == ["error"], (raw[:20], msgs)
        await ws.send(json.dumps({"op": "ping", "id": 7}))
        msgs = await _ws_messages(ws, 0.3)
        assert next(m for m in msgs if m["type"] == "pong")["id"] == 7
