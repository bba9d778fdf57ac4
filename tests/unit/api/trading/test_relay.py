from types import SimpleNamespace

import pytest

from hft.api.trading.relay import GapError, MarketDataRelay
from hft.engine.pb import engine_pb2 as pb


class FakeHub:
    def __init__(self):
        self.events = []

    def book_snapshot(self, book):
        self.events.append(("snapshot", book.seq))

    def book_update(self, book, delta):
        self.events.append(("update", book.seq, delta))

    def trade(self, book, trade):
        self.events.append(("trade", trade))


def relay():
    rt = SimpleNamespace(hub=FakeHub(), note_trade_price=lambda s, p: None)
    return MarketDataRelay(rt), rt.hub


def snapshot(book_seq=10):
    return pb.MarketDataEvent(
        sequence=100,
        book_sequence=book_seq,
        snapshot=pb.OrderBook(
            symbol="AAPL",
            sequence=100,
            book_sequence=book_seq,
            tick_size="0.01",
            lot_size="1",
            bids=[pb.PriceLevel(price=19000, quantity=5, order_count=1)],
            asks=[pb.PriceLevel(price=19010, quantity=2, order_count=1)],
        ),
    )


def test_snapshot_deltas_and_trades_keep_a_contiguous_channel_seq():
    r, hub = relay()
    r.live = True
    r._handle(snapshot())
    r._handle(
        pb.MarketDataEvent(
            sequence=101,
            book_sequence=11,
            trade=pb.Trade(
                symbol="AAPL",
                trade_id=1,
                price=19010,
                quantity=2,
                taker_side=pb.SIDE_BUY,
                timestamp_ns=1_700_000_000_000_000_000,
            ),
        )
    )
    r._handle(
        pb.MarketDataEvent(
            sequence=101,
            book_sequence=12,
            delta=pb.BookDelta(symbol="AAPL", side=pb.SIDE_SELL, price=19010, quantity=0),
        )
    )
    r._handle(
        pb.MarketDataEvent(
            sequence=102,
            book_sequence=13,
            delta=pb.BookDelta(
                symbol="AAPL", side=pb.SIDE_BUY, price=19005, quantity=3, order_count=1
            ),
        )
    )
    kinds = [e[0] for e in hub.events]
    assert kinds == ["snapshot", "trade", "update", "update"]
    assert [e[1] for e in hub.events if e[0] == "update"] == [2, 3]
    assert r.book("AAPL", 10) == {
        "symbol": "AAPL",
        "sequence": 102,
        "bids": [["190.05", "3"], ["190.00", "5"]],
        "asks": [],
    }
    assert r.best("AAPL") == (19005, None)
    assert hub.events[1][1]["price"] == "190.10"


def test_gap_forces_resubscribe():
    r, _ = relay()
    r._handle(snapshot())
    with pytest.raises(GapError):
        r._handle(
            pb.MarketDataEvent(
                sequence=105,
                book_sequence=12,
                delta=pb.BookDelta(symbol="AAPL", side=pb.SIDE_BUY, price=19000, quantity=1),
            )
        )


def test_not_live_means_no_book():
    r, _ = relay()
    r._handle(snapshot())
    assert r.book("AAPL", 5) is None
    assert r.best("AAPL") is None
