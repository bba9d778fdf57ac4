"""Soak: the simulation plus a load generator, then engine, database and API reconciled.

Short by default (HFT_SOAK_SECONDS, 45); the load generator asks for HFT_SOAK_RATE
requests/s (300) and reports what the stack actually sustained. Afterwards:

* cash is conserved: the sum of all cash changes equals minus the sum of all fees;
* positions per symbol sum to zero; no order is stuck in `pending_new`;
* every trade has exactly two fills (one maker, one taker, same price and quantity,
  opposite sides, different accounts), and each order's filled quantity equals the sum
  of its fills;
* reservations: an account without open orders reserves nothing;
* the engine agrees: every open order in the database is live in the engine with the
  same open quantity, the books' totals match, and the trade counts match;
* the API agrees with the database for the users whose passwords we know.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import grpc
import pytest
from hft_e2e_support import Stack, dec, eventually

from hft.bench.e2e import generate_load
from hft.engine.pb import engine_pb2 as pb
from hft.engine.pb import engine_pb2_grpc

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1800)]

SOAK_SECONDS = float(os.environ.get("HFT_SOAK_SECONDS", "45"))
SOAK_RATE = float(os.environ.get("HFT_SOAK_RATE", "300"))
STARTING_CASH = Decimal("1000000")
OPEN = ("new", "partially_filled")


def engine_stub(stack: Stack) -> tuple[grpc.Channel, Any]:
    channel = grpc.insecure_channel(stack.engine_address)
    return channel, engine_pb2_grpc.TradingEngineStub(channel)


def quiescent(stack: Stack) -> None:
    """Wait until nothing moves: the engine's last sequence is unchanged for five seconds
    (requests cut off by stopping the clients may still be on their way) and the
    projection has applied all of it."""
    channel, engine = engine_stub(stack)
    seen: list[int] = []
    with channel:

        def settled() -> bool:
            last = int(engine.HealthCheck(pb.HealthCheckRequest(), timeout=5).last_sequence)
            (cursor,) = stack.db.query("SELECT sequence FROM engine_cursor")
            seen.append(last)
            return len(seen) >= 6 and len(set(seen[-6:])) == 1 and int(cursor["sequence"]) >= last

        eventually(settled, seconds=180, interval=1.0)


def test_soak_reconciles(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(api_config={"starting_cash": str(STARTING_CASH)}).start()
    stack.start_sim("--rate", "60", "--seed", "5")
    creds = [(f"load{i}-{uuid.uuid4().hex[:6]}", f"pw-{uuid.uuid4().hex}") for i in range(8)]
    load = asyncio.run(
        generate_load(stack.url, creds, rate=SOAK_RATE, seconds=SOAK_SECONDS, seed=9)
    )
    summary = load.summary()
    print(f"soak load: {summary}")
    assert stack.sim is not None
    assert stack.sim.stop(signal.SIGTERM) == 0, stack.sim.tail()
    assert stack.api.running, stack.api.tail()
    assert stack.engine.running, stack.engine.tail()
    # Nothing the generator sent came back as a server error.
    assert not [k for k in summary["by_status"] if k.startswith("5")], summary
    assert summary["requests"] > 0
    quiescent(stack)
    db = stack.db

    accounts = db.query("SELECT id, cash, reserved_cash FROM accounts")
    orders = db.query(
        "SELECT id, account_id, symbol, side, status, quantity, filled_quantity, leaves_lots, "
        "filled_lots, reserved FROM orders"
    )
    fills = db.query(
        "SELECT trade_id, order_id, account_id, symbol, side, price, quantity, liquidity, fee "
        "FROM fills"
    )
    positions = db.query("SELECT account_id, symbol, quantity FROM positions")
    print(f"soak: {len(accounts)} accounts, {len(orders)} orders, {len(fills)} fills")
    assert len(fills) > 100, "the soak should trade"

    # No order stuck in pending_new.
    assert [o["id"] for o in orders if o["status"] == "pending_new"] == []

    # Every trade has exactly two fills that mirror each other.
    by_trade: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for f in fills:
        by_trade[f["trade_id"]].append(f)
    for trade_id, pair in by_trade.items():
        assert len(pair) == 2, (trade_id, pair)
        a, b = pair
        assert {a["liquidity"], b["liquidity"]} == {"maker", "taker"}, pair
        assert {a["side"], b["side"]} == {"buy", "sell"}, pair
        assert dec(a["price"]) == dec(b["price"]), pair
        assert dec(a["quantity"]) == dec(b["quantity"]), pair
        assert a["symbol"] == b["symbol"], pair
        assert a["account_id"] != b["account_id"], pair

    # Each order's filled quantity is the sum of its fills.
    filled: dict[Any, Decimal] = defaultdict(Decimal)
    for f in fills:
        filled[f["order_id"]] += dec(f["quantity"])
    for o in orders:
        assert dec(o["filled_quantity"]) == filled.get(o["id"], Decimal(0)), o

    # Cash and positions are conserved across all accounts.
    fees = sum((dec(f["fee"]) for f in fills), Decimal(0))
    cash = sum((dec(a["cash"]) for a in accounts), Decimal(0))
    assert cash - STARTING_CASH * len(accounts) == -fees
    per_symbol: dict[str, Decimal] = defaultdict(Decimal)
    for p in positions:
        per_symbol[p["symbol"]] += dec(p["quantity"])
    assert all(q == 0 for q in per_symbol.values()), dict(per_symbol)

    # Reservations belong to open orders only.
    open_by_account: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for o in orders:
        if o["status"] in OPEN:
            open_by_account[o["account_id"]].append(o)
    for a in accounts:
        reserved = dec(a["reserved_cash"])
        if not open_by_account.get(a["id"]):
            assert reserved == 0, a
        assert reserved == sum(
            (dec(o["reserved"]) for o in open_by_account.get(a["id"], [])), Decimal(0)
        ), a

    # The engine holds exactly the database's open orders.
    channel, engine = engine_stub(stack)
    with channel:
        book_total: dict[tuple[str, str], int] = defaultdict(int)
        for o in orders:
            if o["status"] in OPEN:
                state = engine.GetOrder(pb.GetOrderRequest(order_id=int(o["id"])), timeout=5)
                assert state.found, o
                assert state.order.leaves_quantity == int(o["leaves_lots"]), (o, state)
                book_total[(o["symbol"], o["side"])] += int(o["leaves_lots"])
        for symbol in {o["symbol"] for o in orders} | {"AAPL"}:
            book = engine.GetOrderBook(
                pb.GetOrderBookRequest(symbol=symbol, depth=100000), timeout=10
            )
            assert sum(lv.quantity for lv in book.bids) == book_total[(symbol, "buy")], symbol
            assert sum(lv.quantity for lv in book.asks) == book_total[(symbol, "sell")], symbol
        stats = engine.GetStats(pb.GetStatsRequest(), timeout=5)
        assert stats.trades == len(by_trade)

    # The API shows what the database holds, for the generator's users.
    for username, password in creds:
        resp = stack.http.post(
            "/api/v1/auth/token", data={"username": username, "password": password}
        )
        token = resp.json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        me = stack.http.get("/api/v1/account", headers=headers).json()
        (row,) = [a for a in accounts if str(a["id"]) == str(me["account_id"])]
        assert dec(me["cash"]) == dec(row["cash"])
        api_positions = {
            p["symbol"]: dec(p["quantity"])
            for p in stack.http.get("/api/v1/positions", headers=headers).json()
        }
        db_positions = {
            p["symbol"]: dec(p["quantity"])
            for p in positions
            if str(p["account_id"]) == str(me["account_id"])
        }
        assert {k: v for k, v in api_positions.items() if v} == {
            k: v for k, v in db_positions.items() if v
        }
