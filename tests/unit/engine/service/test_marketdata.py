"""MarketData.apply: the column-wise path for large batches builds the same books as
applying the events a few at a time, the row path for small batches agrees with the
column-wise one batch by batch; the record helpers equal numpy's own indexing."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from hft.engine import Engine, core_available
from hft.engine.mapping import T_BOOK_CHANGE, T_TRADE, copy_rows, select_rows
from hft.engine.marketdata import SMALL_BATCH, MarketData, MdItem
from hft.engine.streams import Subscriber
from hft.engine.testing import OrderFlow, default_config
from hft.engine.types import COMMAND_DTYPE, EVENT_DTYPE, CommandKind

INFOS = {s.symbol_id: (s.symbol, s.tick_str, s.lot_str) for s in default_config().instruments}


def flow_events(seed: int, n: int) -> np.ndarray:
    from hft.engine.testing import reference_engine

    engine = Engine(1 << 16) if core_available() else None
    ref = reference_engine() if engine is None else None
    if engine is not None:
        for spec in default_config().instruments:
            engine.add_instrument(spec.to_core())
    flow = OrderFlow(seed, symbols=("AAPL", "BTC-USD", "MSFT"))
    specs = {s.symbol: s for s in default_config().instruments}
    cmds = np.zeros(n, dtype=COMMAND_DTYPE)
    for i in range(n):
        req = flow.next().req
        if hasattr(req, "symbol"):
            cmds[i] = (
                CommandKind.SUBMIT, req.side, req.type, req.time_in_force, req.stp_mode,
                int(req.post_only), 0, specs[req.symbol].symbol_id, 0, req.order_id,
                req.account_id, req.price, req.quantity, 0,
            )  # fmt: skip
        else:
            cmds[i]["kind"] = CommandKind.CANCEL
            cmds[i]["order_id"] = req.order_id
            cmds[i]["account_id"] = req.account_id
    return (engine or ref).process(cmds)  # type: ignore[union-attr]


@pytest.mark.parametrize("seed", [1, 2])
def test_large_batches_build_the_same_books(seed: int) -> None:
    events = flow_events(seed, 3000)
    whole = MarketData(INFOS, INFOS)
    whole.apply(1, events)
    pieces = MarketData(INFOS, INFOS)
    for start in range(0, len(events), 40):  # <= 64 market-data events: the loop path
        pieces.apply(1, events[start : start + 40])
    assert whole.book_seqs() == pieces.book_seqs()
    assert any(whole.book_seqs().values())
    for sid in INFOS:
        assert whole.books[sid].bids == pieces.books[sid].bids, sid
        assert whole.books[sid].asks == pieces.books[sid].asks, sid
    assert sum(len(b.bids) + len(b.asks) for b in whole.books.values()) > 10


def _published(sub: Subscriber[MdItem]) -> list[tuple[int, bytes]]:
    """What the subscriber was handed since the last call (get() would wait on nothing)."""
    items = asyncio.run(sub.get()) if sub._items else []
    return [(seq, ev.tobytes()) for seq, ev in items]


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_row_path_agrees_with_column_path(seed: int) -> None:
    events = flow_events(seed, 2000)
    rng = np.random.default_rng(seed)
    rows_md, cols_md = MarketData(INFOS, INFOS), MarketData(INFOS, INFOS)
    everything = frozenset(INFOS)
    rows_sub = rows_md.subscribe(everything, 1 << 20)
    cols_sub = cols_md.subscribe(everything, 1 << 20)
    start, first_seq, batches = 0, 1, 0
    while start < len(events):
        # Random small batches, some with no market data, some with nothing else.
        size = int(rng.integers(1, SMALL_BATCH + 1))
        batch = events[start : start + size]
        rows_md.apply_rows(first_seq, batch, batch.tolist())
        cols_md.apply_columns(first_seq, batch)
        assert rows_md.book_seqs() == cols_md.book_seqs()
        for sid in INFOS:
            assert rows_md.books[sid].bids == cols_md.books[sid].bids, (start, sid)
            assert rows_md.books[sid].asks == cols_md.books[sid].asks, (start, sid)
        assert _published(rows_sub) == _published(cols_sub)
        start += size
        first_seq += size
        batches += 1
    assert batches > 30
    assert any(rows_md.book_seqs().values())
    # apply() picks the row path for small batches and gets the same books.
    auto = MarketData(INFOS, INFOS)
    for k in range(0, len(events), 7):
        auto.apply(1, events[k : k + 7])
    assert auto.book_seqs() == rows_md.book_seqs()
    for sid in INFOS:
        assert auto.books[sid].bids == rows_md.books[sid].bids
        assert auto.books[sid].asks == rows_md.books[sid].asks


def test_row_path_publishes_only_market_data() -> None:
    events = flow_events(6, 400)
    md = MarketData(INFOS, INFOS)
    sub = md.subscribe(frozenset(INFOS), 1 << 20)
    for k in range(0, len(events), 5):
        batch = events[k : k + 5]
        md.apply(k + 1, batch)
        published = _published(sub)
        want = batch[(batch["type"] == T_TRADE) | (batch["type"] == T_BOOK_CHANGE)]
        assert published == ([(k + 1, want.tobytes())] if len(want) else [])


def test_record_helpers() -> None:
    rng = np.random.default_rng(3)
    ev = np.zeros(500, dtype=EVENT_DTYPE)
    for name in ("type", "side", "reason", "symbol_id", "cmd_index", "order_id", "price", "ts"):
        ev[name] = rng.integers(0, 200, len(ev))
    mask = rng.random(len(ev)) < 0.4
    assert select_rows(ev, mask).tobytes() == ev[mask].tobytes()
    assert select_rows(ev[10:90], mask[10:90]).tobytes() == ev[10:90][mask[10:90]].tobytes()
    assert len(select_rows(ev[:0], mask[:0])) == 0
    copied = copy_rows(ev[5:50])
    assert copied.tobytes() == ev[5:50].tobytes()
    copied["order_id"] = 0
    assert ev["order_id"][5:50].any()
