"""State survives a full restart of every process: clean stop (snapshot) and kill -9."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from hft_e2e_support import Stack, eventually

from hft.engine.pb import engine_pb2 as pb
from hft.engine.pb import engine_pb2_grpc

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]


def engine_book(stack: Stack, symbol: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    with grpc.insecure_channel(stack.engine_address) as channel:
        book = engine_pb2_grpc.TradingEngineStub(channel).GetOrderBook(
            pb.GetOrderBookRequest(symbol=symbol, depth=1000), timeout=5
        )
    return [(lv.price, lv.quantity) for lv in book.bids], [
        (lv.price, lv.quantity) for lv in book.asks
    ]


def snapshot_state(stack: Stack, traders: list[Any]) -> dict[str, Any]:
    """Everything a user can see of their account, plus the engine's books."""
    state: dict[str, Any] = {}
    for t in traders:
        orders = t.get("/orders", params={"status": "all", "limit": 500})
        state[t.username] = {
            "orders": sorted(
                (o["id"], o["status"], o["filled_quantity"], o["remaining_quantity"])
                for o in orders
            ),
            "fills": sorted(
                (f["trade_id"], f["quantity"], f["price"], f["fee"]) for f in t.get("/fills")
            ),
            "portfolio": {k: v for k, v in t.get("/portfolio").items() if k != "positions"},
            "positions": sorted(
                (p["symbol"], p["quantity"], p["average_cost"]) for p in t.get("/positions")
            ),
        }
    state["books"] = {s: engine_book(stack, s) for s in ("AAPL", "BTC-USD")}
    return state


def trade_some(stack: Stack) -> list[Any]:
    a, b = stack.trader("pa"), stack.trader("pb")
    a.placed(symbol="AAPL", side="sell", type="limit", quantity="10", price="191.00")
    a.placed(symbol="AAPL", side="sell", type="limit", quantity="5", price="192.00")
    b.placed(symbol="AAPL", side="buy", type="limit", quantity="4", price="189.00")
    b.placed(symbol="AAPL", side="buy", type="market", quantity="12")
    b.placed(symbol="BTC-USD", side="buy", type="limit", quantity="0.0150", price="64000.00")
    a.placed(
        symbol="BTC-USD",
        side="sell",
        type="limit",
        time_in_force="ioc",
        quantity="0.0100",
        price="64000.00",
    )
    canceled = a.placed(symbol="AAPL", side="buy", type="limit", quantity="1", price="188.00")
    a.req("DELETE", f"/orders/{canceled['id']}")
    # A cancel-all with nothing to cancel is a command like any other: it must not break recovery.
    nothing = b.req("DELETE", "/orders", params={"symbol": "NVDA"})
    assert nothing.status_code == 200, nothing.text
    return [a, b]


def settled(stack: Stack, traders: list[Any]) -> dict[str, Any]:
    """The state once the projection has applied every event (two equal reads in a row)."""
    previous: list[dict[str, Any]] = [snapshot_state(stack, traders)]

    def stable() -> dict[str, Any] | None:
        current = snapshot_state(stack, traders)
        same = current == previous[0]
        previous[0] = current
        return current if same else None

    result: dict[str, Any] = eventually(stable, seconds=30, interval=0.5)
    return result


@pytest.mark.parametrize("how", ["clean", "kill9"])
def test_everything_survives_a_full_restart(make_stack: Callable[..., Stack], how: str) -> None:
    stack = make_stack().start()
    traders = trade_some(stack)
    before = settled(stack, traders)
    assert before["books"]["AAPL"][0] == [(18900, 4)]
    assert before["books"]["AAPL"][1] == [(19200, 3)]
    if how == "clean":
        stack.stop(signal.SIGTERM)
        # Both stopped on their own (exit 0), the engine after writing its snapshot.
        assert [p.stop() for p in (stack.api, stack.engine)] == [0, 0]
        assert list((stack.data_dir / "engine").rglob("*.snap"))
    else:
        stack.engine.kill()
        stack.api.kill()
    stack.start()
    for t in traders:
        t.login()
    after = settled(stack, traders)
    assert after == before
    # The market goes on from where it was: the resting sell at 192.00 still trades.
    b = traders[1]
    fill = b.placed(symbol="AAPL", side="buy", type="market", quantity="3")
    assert fill["status"] == "filled"
    assert fill["fills"][0]["price"] == "192.00"
    eventually(lambda: engine_book(stack, "AAPL")[1] == [])


def test_engine_restarts_after_commands_without_executions(
    make_stack: Callable[..., Stack],
) -> None:
    """Programs may talk gRPC directly: a cancel-all that finds nothing to cancel is
    sequenced and journaled but produces no execution event; recovery must accept that."""
    stack = make_stack()
    stack.start_engine()
    with grpc.insecure_channel(stack.engine_address) as channel:
        engine = engine_pb2_grpc.TradingEngineStub(channel)
        order = pb.OrderRequest(
            order_id=1, account_id=1, symbol="AAPL", side=pb.SIDE_BUY, type=pb.ORDER_TYPE_LIMIT,
            time_in_force=pb.TIME_IN_FORCE_GTC, price=19_000, quantity=1,
        )  # fmt: skip
        assert engine.SubmitOrder(order, timeout=5).accepted
        engine.CancelAll(pb.CancelAllRequest(account_id=7), timeout=5)
        order.order_id, order.price = 2, 19_001
        assert engine.SubmitOrder(order, timeout=5).accepted
    assert stack.engine.stop() == 0
    stack.start_engine()
    assert engine_book(stack, "AAPL")[0] == [(19001, 1), (19000, 1)]
