"""Market-data relay: one SubscribeMarketData stream from the engine, kept as an L2 book
per symbol and fanned out to WebSocket clients.

The engine's `book_sequence` is contiguous per symbol over deltas *and* trades; a gap
means a lost event, so the relay resubscribes (fresh snapshots). WebSocket `book:SYM`
subscribers get the relay's own per-symbol counter `seq`, which advances by exactly one
per delta message, so a client sees snapshot(seq=N) then updates N+1, N+2, ...
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from hft.engine.client import EngineError
from hft.engine.pb import engine_pb2 as pb
from hft.services.decimals import from_units

if TYPE_CHECKING:
    from hft.api.trading.runtime import TradingRuntime

log = logging.getLogger("hft.api.trading.relay")


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat().replace("+00:00", "Z")


@dataclass(slots=True)
class BookState:
    symbol: str
    tick: Decimal
    lot: Decimal
    bids: dict[int, tuple[int, int]] = field(default_factory=dict)  # ticks -> (lots, count)
    asks: dict[int, tuple[int, int]] = field(default_factory=dict)
    book_sequence: int = 0  # engine's
    sequence: int = 0  # global engine sequence of the last event
    seq: int = 0  # the WebSocket channel's own contiguous counter
    last_trade: tuple[int, int, int] | None = None  # (ticks, lots, ts_ns)
    trades: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=200))

    def price(self, ticks: int) -> str:
        return str(from_units(ticks, self.tick))

    def qty(self, lots: int) -> str:
        return str(from_units(lots, self.lot))

    def levels(
        self, side: dict[int, tuple[int, int]], depth: int, reverse: bool
    ) -> list[list[str]]:
        prices = sorted(side, reverse=reverse)[:depth]
        return [[self.price(p), self.qty(side[p][0])] for p in prices]

    def best(self) -> tuple[int | None, int | None]:
        return (max(self.bids) if self.bids else None, min(self.asks) if self.asks else None)

    def view(self, depth: int) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "sequence": self.sequence,
            "bids": self.levels(self.bids, depth, True),
            "asks": self.levels(self.asks, depth, False),
        }

    def ticker(self) -> dict[str, Any]:
        bid, ask = self.best()
        last = self.last_trade
        return {
            "symbol": self.symbol,
            "best_bid": None if bid is None else self.price(bid),
            "best_bid_quantity": None if bid is None else self.qty(self.bids[bid][0]),
            "best_ask": None if ask is None else self.price(ask),
            "best_ask_quantity": None if ask is None else self.qty(self.asks[ask][0]),
            "last_price": None if last is None else self.price(last[0]),
            "last_quantity": None if last is None else self.qty(last[1]),
            "time": None if last is None else iso(last[2]),
        }


class GapError(Exception):
    pass


class MarketDataRelay:
    def __init__(self, runtime: TradingRuntime) -> None:
        self.runtime = runtime
        self.books: dict[str, BookState] = {}
        self.live = False
        self.resubscribes = 0

    async def run(self) -> None:
        delay = 0.1
        while True:
            try:
                async for batch in self.runtime.client.subscribe_market_data_batches([], 0):
                    self.live = True
                    delay = 0.1
                    for ev in batch:
                        self._handle(ev)
            except asyncio.CancelledError:
                self.live = False
                raise
            except GapError as exc:
                log.warning("market data gap (%s); resubscribing", exc)
            except EngineError:
                pass
            except Exception:
                log.exception("market-data relay failed; resubscribing")
            self.live = False
            self.resubscribes += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _hub(self) -> Any:
        return self.runtime.hub

    def _handle(self, ev: pb.MarketDataEvent) -> None:
        which = ev.WhichOneof("event")
        if which == "snapshot":
            snap = ev.snapshot
            old = self.books.get(snap.symbol)
            book = BookState(
                snap.symbol,
                Decimal(snap.tick_size or "1"),
                Decimal(snap.lot_size or "1"),
                bids={lv.price: (lv.quantity, lv.order_count) for lv in snap.bids},
                asks={lv.price: (lv.quantity, lv.order_count) for lv in snap.asks},
                book_sequence=snap.book_sequence or ev.book_sequence,
                sequence=snap.sequence or ev.sequence,
                seq=(old.seq + 1) if old else 1,
                last_trade=old.last_trade if old else None,
            )
            if old is not None:
                book.trades = old.trades
            self.books[snap.symbol] = book
            hub = self._hub()
            if hub is not None:
                hub.book_snapshot(book)
            return
        if which == "delta":
            symbol = ev.delta.symbol
        elif which == "trade":
            symbol = ev.trade.symbol
        else:
            return
        found = self.books.get(symbol)
        if found is None:
            raise GapError(f"{symbol}: event before snapshot")
        book = found
        if ev.book_sequence and ev.book_sequence != book.book_sequence + 1:
            raise GapError(f"{symbol}: book_sequence {ev.book_sequence} after {book.book_sequence}")
        if ev.book_sequence:
            book.book_sequence = ev.book_sequence
        book.sequence = max(book.sequence, ev.sequence)
        hub = self._hub()
        if which == "delta":
            d = ev.delta
            side = book.bids if d.side == pb.SIDE_BUY else book.asks
            if d.quantity <= 0:
                side.pop(d.price, None)
            else:
                side[d.price] = (d.quantity, d.order_count)
            book.seq += 1
            if hub is not None:
                hub.book_update(book, d)
        else:
            t = ev.trade
            book.last_trade = (t.price, t.quantity, t.timestamp_ns)
            trade = {
                "trade_id": str(t.trade_id),
                "price": book.price(t.price),
                "quantity": book.qty(t.quantity),
                "taker_side": "buy" if t.taker_side == pb.SIDE_BUY else "sell",
                "time": iso(t.timestamp_ns),
            }
            book.trades.appendleft(trade)
            self.runtime.note_trade_price(symbol, t.price)
            if hub is not None:
                hub.trade(book, trade)

    def book(self, symbol: str, depth: int) -> dict[str, Any] | None:
        """The relay's current view of a book, or None when it has none (not live)."""
        if not self.live:
            return None
        book = self.books.get(symbol)
        return None if book is None else book.view(depth)

    def best(self, symbol: str) -> tuple[int | None, int | None] | None:
        """(best bid, best ask) in ticks from the live book, or None when not live."""
        if not self.live:
            return None
        book = self.books.get(symbol)
        return None if book is None else book.best()
