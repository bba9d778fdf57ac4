"""WebSocket market data: book snapshot + contiguous deltas, trades, ticker, candles."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import websockets

from hft.api.trading.testing import (  # noqa: F401 - fixtures
    engine_fixture,
    place,
    settings_overrides_fixture,
    trading_overrides_fixture,
    with_trading_fixture,
)

D = Decimal


async def _drain(ws, seconds):
    out = []
    try:
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), seconds))
            if msg.get("type") != "heartbeat":
                out.append(msg)
    except TimeoutError:
        return out


async def test_book_snapshot_then_contiguous_deltas_rebuild_the_book(app, live_server, make_user):
    alice, bob = await make_user(), await make_user()
    await place(alice, side="sell", quantity="5", price="191.00")
    url = live_server.replace("http", "ws") + "/api/v1/ws"
    async with websockets.connect(url) as ws:
        await ws.send(
            json.dumps(
                {
                    "op": "subscribe",
                    "channels": ["book:AAPL", "trades:AAPL", "ticker:AAPL", "candles:AAPL:1m"],
                }
            )
        )
        first = await _drain(ws, 0.5)
        snap = next(m for m in first if m.get("channel") == "book:AAPL")
        assert snap["type"] == "snapshot"
        assert snap["data"]["asks"] == [["191.00", "5"]]
        await place(alice, side="sell", quantity="2", price="192.00")
        await place(bob, side="buy", quantity="3", price="189.00")
        await place(bob, side="buy", quantity="6", price="191.00")  # trades 5, rests 1
        await alice.delete("/api/v1/orders")
        msgs = await _drain(ws, 1.0)
    updates = [m for m in msgs if m.get("channel") == "book:AAPL"]
    assert all(m["type"] == "update" for m in updates)
    seqs = [m["seq"] for m in updates]
    assert seqs == list(range(snap["seq"] + 1, snap["seq"] + 1 + len(seqs)))
    bids = {p: q for p, q in snap["data"]["bids"]}
    asks = {p: q for p, q in snap["data"]["asks"]}
    for m in updates:
        d = m["data"]
        side = bids if d["side"] == "buy" else asks
        if D(d["quantity"]) == 0:
            side.pop(d["price"], None)
        else:
            side[d["price"]] = d["quantity"]
    book = (await bob.get("/api/v1/markets/AAPL/book")).json()
    assert sorted(bids.items(), reverse=True) == [tuple(x) for x in book["bids"]]
    assert sorted(asks.items()) == [tuple(x) for x in book["asks"]]
    assert book["bids"] == [["191.00", "1"], ["189.00", "3"]]
    trades = [m["data"] for m in msgs if m.get("channel") == "trades:AAPL"]
    assert [(t["price"], t["quantity"], t["taker_side"]) for t in trades] == [
        ("191.00", "5", "buy")
    ]
    tickers = [m["data"] for m in msgs if m.get("channel") == "ticker:AAPL"]
    assert tickers[-1]["last_price"] == "191.00"
    assert tickers[-1]["best_bid"] == "191.00"
    candles = [m["data"] for m in msgs if m.get("channel") == "candles:AAPL:1m"]
    assert candles
    assert (candles[-1]["close"], candles[-1]["volume"]) == ("191", "5")


async def test_unsubscribe_and_fanout_to_many_clients(app, live_server, make_user):
    alice = await make_user()
    url = live_server.replace("http", "ws") + "/api/v1/ws"
    async with websockets.connect(url) as w1, websockets.connect(url) as w2:
        for ws in (w1, w2):
            await ws.send(json.dumps({"op": "subscribe", "channels": ["trades:MSFT"]}))
        await _drain(w1, 0.2)
        await _drain(w2, 0.2)
        await w2.send(json.dumps({"op": "unsubscribe", "channels": ["trades:MSFT"]}))
        await _drain(w2, 0.2)
        await place(alice, side="sell", quantity="1", price="420.00", symbol="MSFT")
        bob = await make_user()
        await place(bob, side="buy", quantity="1", price="420.00", symbol="MSFT")
        m1 = [m for m in await _drain(w1, 0.6) if m.get("channel") == "trades:MSFT"]
        m2 = [m for m in await _drain(w2, 0.3) if m.get("channel") == "trades:MSFT"]
    assert len(m1) == 1
    assert m2 == []
