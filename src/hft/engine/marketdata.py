"""Level-2 books as published: the market-data side of the engine.

The books here are rebuilt from the published BOOK_CHANGE events, so a snapshot taken
from them is exactly consistent with the deltas that follow it on a stream (the core
itself may already be a group commit ahead, and its state is not released until that
batch is journaled). Each symbol's `book_seq` counts its TRADE and BOOK_CHANGE events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from hft.engine.mapping import (
    E_BSEQ,
    E_CMD,
    E_COUNT,
    E_PRICE,
    E_QTY,
    E_SIDE,
    E_SYMBOL,
    E_TRADE,
    E_TS,
    E_TYPE,
    T_BOOK_CHANGE,
    T_TRADE,
    select_rows,
)
from hft.engine.pb import engine_pb2 as pb
from hft.engine.streams import Subscriber
from hft.engine.types import Side

BUY = int(Side.BUY)
_MD_TYPES = (T_TRADE, T_BOOK_CHANGE)
SMALL_BATCH = 64  # events; up to here `apply` loops over rows instead of using numpy
MdItem = tuple[int, np.ndarray[Any, Any]]  # (first sequence of the batch, TRADE/BOOK_CHANGE events)


class L2Book:
    __slots__ = ("asks", "bids", "book_seq")

    def __init__(self) -> None:
        self.bids: dict[int, tuple[int, int]] = {}  # price ticks -> (qty lots, order count)
        self.asks: dict[int, tuple[int, int]] = {}
        self.book_seq = 0

    def levels(self, side: int, depth: int) -> list[tuple[int, int, int]]:
        book = self.bids if side == BUY else self.asks
        prices = sorted(book, reverse=side == BUY)
        if depth > 0:
            prices = prices[:depth]
        return [(p, *book[p]) for p in prices]


class MarketData:
    """Published L2 books per symbol id and the market-data subscribers."""

    def __init__(
        self, symbol_ids: Iterable[int], infos: Mapping[int, tuple[str, str, str]]
    ) -> None:
        self.books: dict[int, L2Book] = {sid: L2Book() for sid in symbol_ids}
        self.infos = infos
        self.subscribers: set[tuple[Subscriber[MdItem], frozenset[int]]] = set()

    def add_symbol(self, sid: int) -> None:
        self.books.setdefault(sid, L2Book())

    def load_level(self, sid: int, side: int, price: int, qty: int, count: int) -> None:
        book = self.books[sid]
        (book.bids if side == BUY else book.asks)[price] = (qty, count)

    def apply(
        self,
        first_seq: int,
        events: np.ndarray[Any, Any],
        rows: list[tuple[int, ...]] | None = None,
    ) -> None:
        """Apply a published batch's events (EVENT_DTYPE) and fan them out to subscribers.

        `rows` may carry `events.tolist()` when the caller already has it. Batches of at
        most SMALL_BATCH events (single commands) take a plain loop over the rows; larger
        ones the column-wise numpy path. Both leave the same books and publish the same
        TRADE/BOOK_CHANGE records."""
        if rows is None and len(events) <= SMALL_BATCH:
            rows = events.tolist()
        if rows is not None:
            self.apply_rows(first_seq, events, rows)
        else:
            self.apply_columns(first_seq, events)

    def apply_rows(
        self, first_seq: int, events: np.ndarray[Any, Any], rows: list[tuple[int, ...]]
    ) -> None:
        """`apply` for small batches: `rows` is `events.tolist()`. numpy has a fixed cost
        per call of several µs, more than a loop over a handful of rows."""
        md_rows = [r for r in rows if r[E_TYPE] in _MD_TYPES]
        if not md_rows:
            return
        if self.subscribers:
            if len(md_rows) == len(rows):
                md = events  # readers of a published batch only read: no copy needed
            else:
                md = events.take([i for i, r in enumerate(rows) if r[E_TYPE] in _MD_TYPES])
            for sub, _symbols in self.subscribers:
                sub.push((first_seq, md))
        books = self.books
        for r in md_rows:
            book = books.get(r[E_SYMBOL])
            if book is None:
                continue
            book.book_seq = r[E_BSEQ]
            if r[E_TYPE] == T_BOOK_CHANGE:
                levels = book.bids if r[E_SIDE] == BUY else book.asks
                if r[E_QTY] == 0:
                    levels.pop(r[E_PRICE], None)
                else:
                    levels[r[E_PRICE]] = (r[E_QTY], r[E_COUNT])

    def apply_columns(self, first_seq: int, events: np.ndarray[Any, Any]) -> None:
        """`apply` for large batches, column-wise (whole records are slow to gather)."""
        t = events["type"]
        is_bc = t == T_BOOK_CHANGE
        mask = is_bc | (t == T_TRADE)
        if not mask.any():
            return
        if self.subscribers:
            md = select_rows(events, mask)
            for sub, _symbols in self.subscribers:
                sub.push((first_seq, md))
        books = self.books
        sids = events["symbol_id"]
        md_sids = sids[mask]
        md_bseq = events["book_seq"][mask]
        for sid in np.unique(md_sids).tolist():
            book = books.get(sid)
            if book is not None:
                book.book_seq = int(md_bseq[md_sids == sid].max())
        idx = np.flatnonzero(is_bc)
        if not len(idx):
            return
        side = events["side"]
        price = events["price"]
        if len(idx) > 1:
            # Only each level's last change in the batch matters (it carries the final state).
            sym_i, side_i, price_i = sids[idx], side[idx], price[idx]
            order = np.lexsort((idx, price_i, side_i, sym_i))
            s_sym, s_side, s_price = sym_i[order], side_i[order], price_i[order]
            last = np.ones(len(order), dtype=bool)
            last[:-1] = s_sym[1:] != s_sym[:-1]
            last[:-1] |= s_side[1:] != s_side[:-1]
            last[:-1] |= s_price[1:] != s_price[:-1]
            idx = idx[order[last]]
        for sid, sd, px, qty, cnt in zip(
            sids[idx].tolist(),
            side[idx].tolist(),
            price[idx].tolist(),
            events["qty"][idx].tolist(),
            events["order_count"][idx].tolist(),
            strict=True,
        ):
            book = books.get(sid)
            if book is None:
                continue
            levels = book.bids if sd == BUY else book.asks
            if qty == 0:
                levels.pop(px, None)
            else:
                levels[px] = (qty, cnt)

    def book_seqs(self) -> dict[int, int]:
        return {sid: b.book_seq for sid, b in self.books.items()}

    def order_book(self, sid: int, depth: int, sequence: int) -> pb.OrderBook:
        """The published book of one symbol (depth 0 = every level)."""
        book = self.books[sid]
        sym, tick, lot = self.infos[sid]
        return pb.OrderBook(
            symbol=sym,
            sequence=sequence,
            book_sequence=book.book_seq,
            bids=[
                pb.PriceLevel(price=p, quantity=q, order_count=c)
                for p, q, c in book.levels(BUY, depth)
            ],
            asks=[
                pb.PriceLevel(price=p, quantity=q, order_count=c)
                for p, q, c in book.levels(Side.SELL, depth)
            ],
            tick_size=tick,
            lot_size=lot,
        )

    def subscribe(self, symbol_ids: frozenset[int], maxlen: int) -> Subscriber[MdItem]:
        sub: Subscriber[MdItem] = Subscriber(maxlen)
        self.subscribers.add((sub, symbol_ids))
        return sub

    def unsubscribe(self, sub: Subscriber[MdItem], symbol_ids: frozenset[int]) -> None:
        self.subscribers.discard((sub, symbol_ids))

    def to_messages(self, item: MdItem, symbol_ids: frozenset[int]) -> list[pb.MarketDataEvent]:
        """A published batch as market-data messages for one subscriber's symbols."""
        first_seq, md = item
        rows = [r for r in md.tolist() if r[E_SYMBOL] in symbol_ids]
        out: list[pb.MarketDataEvent] = []
        infos = self.infos
        for r in rows:
            sid = r[E_SYMBOL]
            if sid not in symbol_ids:
                continue
            sym = infos[sid][0]
            seq = first_seq + r[E_CMD]
            if r[E_TYPE] == T_BOOK_CHANGE:
                out.append(
                    pb.MarketDataEvent(
                        sequence=seq,
                        book_sequence=r[E_BSEQ],
                        delta=pb.BookDelta(
                            symbol=sym,
                            side=r[E_SIDE],
                            price=r[E_PRICE],
                            quantity=r[E_QTY],
                            order_count=r[E_COUNT],
                        ),
                    )
                )
            else:
                out.append(
                    pb.MarketDataEvent(
                        sequence=seq,
                        book_sequence=r[E_BSEQ],
                        trade=pb.Trade(
                            symbol=sym,
                            trade_id=r[E_TRADE],
                            price=r[E_PRICE],
                            quantity=r[E_QTY],
                            taker_side=r[E_SIDE],
                            timestamp_ns=r[E_TS],
                        ),
                    )
                )
        return out
