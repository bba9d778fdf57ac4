import asyncio
import json
from decimal import Decimal
from types import SimpleNamespace

import pytest

from hft.api.errors import ApiError
from hft.api.trading.config import TradingSettings
from hft.api.trading.relay import BookState
from hft.api.trading.ws import _CLOSE, Connection, Hub
from hft.engine.pb import engine_pb2 as pb
from hft.services.instruments import InstrumentInfo

AAPL = InstrumentInfo(1, "AAPL", Decimal("0.01"), Decimal("1"), 1, 1000, 0, 0)


def hub_with_book():
    book = BookState("AAPL", Decimal("0.01"), Decimal("1"), bids={19000: (5, 1)}, seq=7)
    runtime = SimpleNamespace(
        instruments={"AAPL": AAPL},
        settings=TradingSettings(),
        relay=SimpleNamespace(books={"AAPL": book}),
    )
    return Hub(runtime), book


def test_slow_connection_is_dropped_not_blocking():
    conn = Connection(ws=None, queue_size=3, ip=None)
    for i in range(3):
        conn.offer(str(i))
    assert not conn.dropped
    conn.offer("overflow")
    assert conn.dropped
    items = [conn.queue.get_nowait() for _ in range(conn.queue.qsize())]
    assert items[-1] is _CLOSE
    conn.offer("after")  # ignored once dropped
    assert conn.queue.empty()


def test_subscribe_validation_and_private_channels():
    hub, _ = hub_with_book()
    conn = Connection(None, 10, None)
    for channel, code in [
        ("book:MSFT", "unknown_symbol"),
        ("candles:AAPL:2m", "invalid_interval"),
        ("orders", "not_authenticated"),
        ("nope", "invalid_channel"),
        ("book:AAPL:extra", "invalid_channel"),
    ]:
        with pytest.raises(ApiError) as exc:
            hub.subscribe(conn, channel)
        assert exc.value.code == code
    conn.account_id = 42
    hub.subscribe(conn, "orders")
    assert "orders:42" in hub.subs


def test_book_subscription_snapshot_then_updates_in_sequence():
    hub, book = hub_with_book()
    conn = Connection(None, 10, None)
    hub.subscribe(conn, "book:AAPL")
    snap = json.loads(conn.queue.get_nowait())
    assert (snap["type"], snap["seq"]) == ("snapshot", 7)
    assert snap["data"]["bids"] == [["190.00", "5"]]
    book.seq += 1
    hub.book_update(book, pb.BookDelta(symbol="AAPL", side=pb.SIDE_BUY, price=19000, quantity=0))
    upd = json.loads(conn.queue.get_nowait())
    assert (upd["type"], upd["seq"]) == ("update", 8)
    assert upd["data"] == {
        "side": "buy",
        "price": "190.00",
        "quantity": "0",
        "order_count": 0,
        "sequence": book.sequence,
    }
    other = Connection(None, 10, None)
    hub.publish("trades:AAPL", {"x": 1})
    assert other.queue.empty()
    hub.drop(conn)
    assert "book:AAPL" not in hub.subs


def test_sender_closes_dropped_connection_with_1013():
    from hft.api.trading.ws import _sender

    closed = {}

    class FakeWs:
        async def send_text(self, text):
            await asyncio.sleep(0)

        async def close(self, code=1000, reason=""):
            closed["code"] = code

    async def go():
        conn = Connection(FakeWs(), 2, None)
        conn.offer("a")
        conn.offer("b")
        conn.offer("c")
        await asyncio.wait_for(_sender(conn), 2)

    asyncio.run(go())
    assert closed["code"] == 1013


def test_ticker_goes_only_to_subscribers_and_only_when_it_changes():
    hub, book = hub_with_book()
    delta = pb.BookDelta(symbol="AAPL", side=pb.SIDE_BUY, price=19000, quantity=5, order_count=1)
    hub.book_update(book, delta)
    assert hub._tickers == {}  # nobody watching: nothing computed or kept
    conn = Connection(None, 10, None)
    hub.subscribe(conn, "ticker:AAPL")
    first = json.loads(conn.queue.get_nowait())
    assert (first["type"], first["data"]["best_bid"]) == ("ticker", "190.00")
    hub.book_update(book, delta)  # same best bid: no message
    assert conn.queue.empty()
    book.bids[19001] = (2, 1)
    hub.book_update(book, pb.BookDelta(symbol="AAPL", side=pb.SIDE_BUY, price=19001, quantity=2))
    assert json.loads(conn.queue.get_nowait())["data"]["best_bid"] == "190.01"


def test_hub_wants_applied_batches_only_while_someone_subscribes_to_them():
    hub, _ = hub_with_book()
    conn = Connection(None, 10, None)
    assert not hub.wants_applied()
    hub.subscribe(conn, "book:AAPL")
    hub.subscribe(conn, "trades:AAPL")
    assert not hub.wants_applied()  # fed by the market-data relay, not the projection
    hub.subscribe(conn, "candles:AAPL:1m")
    assert hub.wants_applied()
    hub.unsubscribe(conn, "candles:AAPL:1m")
    assert not hub.wants_applied()
    conn.account_id = 7
    for channel in ("orders", "fills", "account"):
        hub.subscribe(conn, channel)
        assert hub.wants_applied()
        hub.unsubscribe(conn, channel)
        assert not hub.wants_applied()
