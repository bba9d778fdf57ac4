"""Behaviour of the matching core, run on both the C++ core and the reference book.

Every rule of docs/engine-semantics.md has a test here; `engine_cls` runs each one on
`Engine` (C++) and `ReferenceEngine`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hft.engine import (
    CancelReason,
    Engine,
    Event,
    EventType,
    Instrument,
    InstrumentStatus,
    Level,
    OrderType,
    ReferenceEngine,
    RejectReason,
    Side,
    StpMode,
    TimeInForce,
)

from .conftest import BANDED, SYM

E = EventType
BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET = OrderType.LIMIT, OrderType.MARKET
GTC, DAY, IOC, FOK = TimeInForce.GTC, TimeInForce.DAY, TimeInForce.IOC, TimeInForce.FOK

Eng = Engine | ReferenceEngine


def buy(e: Eng, oid: int, acc: int, price: int, qty: int, **kw: Any) -> list[Event]:
    tif = kw.pop("tif", GTC)
    typ = kw.pop("type", LIMIT)
    sym = kw.pop("sym", SYM)
    return e.submit(oid, acc, sym, BUY, typ, tif, price, qty, **kw)


def sell(e: Eng, oid: int, acc: int, price: int, qty: int, **kw: Any) -> list[Event]:
    tif = kw.pop("tif", GTC)
    typ = kw.pop("type", LIMIT)
    sym = kw.pop("sym", SYM)
    return e.submit(oid, acc, sym, SELL, typ, tif, price, qty, **kw)


def kinds(events: list[Event]) -> list[EventType]:
    return [ev.type for ev in events]


def only(events: list[Event], t: EventType) -> list[Event]:
    return [ev for ev in events if ev.type == t]


def trades(events: list[Event]) -> list[tuple[int, int, int, int]]:
    """(maker id, taker id, price, qty) of each trade."""
    return [(t.maker_order_id, t.order_id, t.price, t.qty) for t in only(events, E.TRADE)]


def changes(events: list[Event]) -> list[tuple[int, int, int, int]]:
    """(side, price, qty, order_count) of each BOOK_CHANGE."""
    return [(c.side, c.price, c.qty, c.order_count) for c in only(events, E.BOOK_CHANGE)]


def levels(e: Eng, sym: int = SYM) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    d = e.depth(sym, 100)
    return (
        [(lv.price, lv.qty, lv.order_count) for lv in d.bids],
        [(lv.price, lv.qty, lv.order_count) for lv in d.asks],
    )


def reject_reason(events: list[Event]) -> int:
    assert len(events) == 1, events
    assert events[0].type in (E.REJECTED, E.CANCEL_REJECTED, E.AMEND_REJECTED)
    return events[0].reason


# ---------------------------------------------------------------------- accept / rest


def test_limit_order_rests_with_accept_and_book_change(eng: Eng) -> None:
    ev = buy(eng, 1, 10, 100, 5, ts=77)
    assert kinds(ev) == [E.ACCEPTED, E.BOOK_CHANGE]
    acc = ev[0]
    assert (acc.order_id, acc.account_id, acc.symbol_id, acc.side) == (1, 10, SYM, BUY)
    assert (acc.price, acc.qty, acc.leaves_qty, acc.ts) == (100, 5, 5, 77)
    bc = ev[1]
    assert (bc.side, bc.price, bc.qty, bc.order_count, bc.book_seq, bc.ts) == (
        BUY,
        100,
        5,
        1,
        1,
        77,
    )
    assert eng.best_bid(SYM) == (100, 5)
    assert eng.best_ask(SYM) is None
    st = eng.order(1)
    assert st is not None
    assert (st.price, st.qty, st.leaves_qty, st.filled_qty, st.tif, st.ts) == (
        100,
        5,
        5,
        0,
        GTC,
        77,
    )
    assert eng.live_orders() == 1


def test_fifo_and_level_aggregation(eng: Eng) -> None:
    sell(eng, 1, 1, 101, 3)
    sell(eng, 2, 2, 101, 4)
    sell(eng, 3, 3, 102, 5)
    buy(eng, 4, 4, 99, 1)
    assert levels(eng) == ([(99, 1, 1)], [(101, 7, 2), (102, 5, 1)])
    assert eng.best_ask(SYM) == (101, 7)


# ---------------------------------------------------------------------- matching


@pytest.mark.parametrize("taker_side", [BUY, SELL])
def test_trade_at_maker_price_both_directions(eng: Eng, taker_side: Side) -> None:
    if taker_side == BUY:
        sell(eng, 1, 1, 100, 5)
        ev = buy(eng, 2, 2, 105, 5)
    else:
        buy(eng, 1, 1, 100, 5)
        ev = sell(eng, 2, 2, 95, 5)
    assert kinds(ev) == [E.ACCEPTED, E.TRADE, E.BOOK_CHANGE]
    t = ev[1]
    assert (t.price, t.qty, t.side, t.leaves_qty, t.maker_leaves_qty) == (100, 5, taker_side, 0, 0)
    assert (t.maker_order_id, t.maker_account_id, t.order_id, t.account_id) == (1, 1, 2, 2)
    assert t.trade_id == 1
    assert eng.live_orders() == 0
    assert eng.order(1) is None
    assert eng.order(2) is None


def test_multi_level_sweep_exact_boundary_fill(eng: Eng) -> None:
    sell(eng, 1, 1, 100, 2)
    sell(eng, 2, 1, 101, 3)
    sell(eng, 3, 1, 102, 4)
    sell(eng, 4, 1, 103, 1)
    ev = buy(eng, 5, 2, 102, 9)
    assert trades(ev) == [(1, 5, 100, 2), (2, 5, 101, 3), (3, 5, 102, 4)]
    assert [t.trade_id for t in only(ev, E.TRADE)] == [1, 2, 3]
    assert changes(ev) == [(SELL, 100, 0, 0), (SELL, 101, 0, 0), (SELL, 102, 0, 0)]
    # book_seq: four resting orders took 1-4; then trades first, then book changes.
    assert [x.book_seq for x in ev if x.book_seq] == [5, 6, 7, 8, 9, 10]
    assert [x.book_seq for x in ev if x.type in (E.ACCEPTED,)] == [0]
    assert eng.best_ask(SYM) == (103, 1)
    assert eng.best_bid(SYM) is None
    assert levels(eng) == ([], [(103, 1, 1)])


def test_book_seq_is_per_symbol_and_trade_id_engine_wide(eng: Eng) -> None:
    a = sell(eng, 1, 1, 100, 1)
    b = sell(eng, 2, 1, 10_000, 10, sym=BANDED)
    assert only(a, E.BOOK_CHANGE)[0].book_seq == 1
    assert only(b, E.BOOK_CHANGE)[0].book_seq == 1
    c = buy(eng, 3, 2, 100, 1)
    d = buy(eng, 4, 2, 10_000, 10, sym=BANDED)
    assert [x.book_seq for x in c if x.book_seq] == [2, 3]
    assert [x.book_seq for x in d if x.book_seq] == [2, 3]
    assert only(c, E.TRADE)[0].trade_id == 1
    assert only(d, E.TRADE)[0].trade_id == 2
    assert all(x.book_seq == 0 for x in c + d if x.type in (E.ACCEPTED,))


def test_marketable_limit_stops_at_own_price_and_rests(eng: Eng) -> None:
    sell(eng, 1, 1, 100, 2)
    sell(eng, 2, 1, 101, 2)
    sell(eng, 3, 1, 102, 2)
    ev = buy(eng, 4, 2, 101, 10)
    assert trades(ev) == [(1, 4, 100, 2), (2, 4, 101, 2)]
    assert changes(ev) == [(SELL, 100, 0, 0), (SELL, 101, 0, 0), (BUY, 101, 6, 1)]
    assert levels(eng) == ([(101, 6, 1)], [(102, 2, 1)])
    st = eng.order(4)
    assert st is not None
    assert (st.qty, st.leaves_qty, st.filled_qty) == (10, 6, 4)


def test_ioc_residual_canceled_never_rests(eng: Eng) -> None:
    sell(eng, 1, 1, 100, 3)
    ev = buy(eng, 2, 2, 100, 5, tif=IOC)
    assert kinds(ev) == [E.ACCEPTED, E.TRADE, E.CANCELED, E.BOOK_CHANGE]
    c = ev[2]
    assert (c.order_id, c.reason, c.qty, c.leaves_qty, c.price) == (
        2,
        CancelReason.IOC_REMAINDER,
        2,
        0,
        100,
    )
    assert eng.best_bid(SYM) is None
    assert eng.order(2) is None
    ev = buy(eng, 3, 2, 90, 5, tif=IOC)
    assert kinds(ev) == [E.ACCEPTED, E.CANCELED]
    assert eng.live_orders() == 0


def test_partially_filled_order_keeps_its_place(eng: Eng) -> None:
    sell(eng, 1, 1, 100, 5)
    sell(eng, 2, 2, 100, 5)
    buy(eng, 3, 3, 100, 2)
    ev = buy(eng, 4, 3, 100, 4)
    assert trades(ev) == [(1, 4, 100, 3), (2, 4, 100, 1)]
    assert levels(eng) == ([], [(100, 4, 1)])


def test_cancel_head_middle_tail_then_sweep(eng: Eng) -> None:
    for oid in range(1, 6):
        sell(eng, oid, oid, 100, oid)
    for oid in (1, 3, 5):
        ev = eng.cancel(oid, oid)
        assert kinds(ev) == [E.CANCELED, E.BOOK_CHANGE]
        assert ev[0].reason == CancelReason.USER
        assert ev[0].qty == oid
    assert levels(eng) == ([], [(100, 6, 2)])
    ev = buy(eng, 9, 9, 100, 100)
    assert trades(ev) == [(2, 9, 100, 2), (4, 9, 100, 4)]
    assert levels(eng) == ([(100, 94, 1)], [])


def test_emptied_best_level_disappears_at_once(eng: Eng) -> None:
    buy(eng, 1, 1, 100, 1)
    buy(eng, 2, 1, 99, 1)
    eng.cancel(1, 1)
    assert eng.best_bid(SYM) == (99, 1)
    assert levels(eng)[0] == [(99, 1, 1)]
    sell(eng, 3, 2, 99, 1)
    assert eng.best_bid(SYM) is None
    assert levels(eng) == ([], [])


def test_reference_price_follows_last_trade(eng: Eng) -> None:
    sell(eng, 1, 1, 10_500, 10, sym=BANDED)
    buy(eng, 2, 2, 10_500, 10, sym=BANDED)
    ref = {i.symbol_id: i.reference_price for i in eng.instruments()}
    assert ref[BANDED] == 10_500
    # The band now centres on 10_500: 11_550 is inside (10 %), 11_551 outside.
    assert kinds(buy(eng, 3, 2, 11_550, 10, sym=BANDED))[0] == E.ACCEPTED
    assert reject_reason(buy(eng, 4, 2, 11_551, 10, sym=BANDED)) == RejectReason.PRICE_OUT_OF_BAND


# ---------------------------------------------------------------------- market, FOK


def test_market_order_fills_across_levels_price_zero(eng: Eng) -> None:
    sell(eng, 1, 1, 100, 2)
    sell(eng, 2, 1, 200, 2)
    ev = buy(eng, 3, 2, 12345, 3, type=MARKET, tif=IOC)
    assert ev[0].type == E.ACCEPTED
    assert ev[0].price == 0
    assert trades(ev) == [(1, 3, 100, 2), (2, 3, 200, 1)]


@pytest.mark.parametrize("tif", [GTC, DAY, IOC])
def test_market_remainder_canceled_for_any_tif(eng: Eng, tif: TimeInForce) -> None:
    buy(eng, 1, 1, 100, 2)
    ev = sell(eng, 2, 2, 0, 5, type=MARKET, tif=tif)
    assert kinds(ev) == [E.ACCEPTED, E.TRADE, E.CANCELED, E.BOOK_CHANGE]
    assert ev[2].reason == CancelReason.IOC_REMAINDER
    assert ev[2].qty == 3
    assert ev[2].price == 0
    assert eng.live_orders() == 0


def test_market_no_liquidity(eng: Eng) -> None:
    buy(eng, 1, 1, 100, 2)
    assert reject_reason(buy(eng, 2, 2, 0, 1, type=MARKET, tif=IOC)) == (
        RejectReason.MARKET_NO_LIQUIDITY
    )
    ev = buy(eng, 2, 2, 5, 1, type=MARKET, tif=IOC)
    assert ev[0].price == 0


def test_fok_fills_completely_or_not_at_all(eng: Eng) -> None:
    sell(eng, 1, 1, 100, 2)
    sell(eng, 2, 1, 101, 2)
    sell(eng, 3, 1, 102, 2)
    ev = buy(eng, 4, 2, 101, 5, tif=FOK)
    assert reject_reason(ev) == RejectReason.FOK_CANNOT_FILL
    assert ev[0].qty == 5
    assert levels(eng)[1] == [(100, 2, 1), (101, 2, 1), (102, 2, 1)]
    ev = buy(eng, 4, 2, 101, 4, tif=FOK)
    assert trades(ev) == [(1, 4, 100, 2), (2, 4, 101, 2)]
    ev = buy(eng, 5, 2, 0, 3, type=MARKET, tif=FOK)
    assert reject_reason(ev) == RejectReason.FOK_CANNOT_FILL
    ev = buy(eng, 5, 2, 0, 2, type=MARKET, tif=FOK)
    assert trades(ev) == [(3, 5, 102, 2)]


@pytest.mark.parametrize(
    ("stp", "fillable"),
    [
        (StpMode.NONE, 6),  # own order counts and self-trades
        (StpMode.CANCEL_MAKER, 4),  # own order adds nothing, the walk continues
        (StpMode.CANCEL_TAKER, 2),  # the walk stops at the own order
        (StpMode.CANCEL_BOTH, 2),
    ],
)
def test_fok_fillable_walk_with_stp(eng: Eng, stp: StpMode, fillable: int) -> None:
    sell(eng, 1, 1, 100, 2)
    sell(eng, 2, 7, 100, 2)  # own
    sell(eng, 3, 1, 101, 2)
    ev = buy(eng, 4, 7, 101, fillable + 1, tif=FOK, stp=stp)
    assert reject_reason(ev) == RejectReason.FOK_CANNOT_FILL
    ev = buy(eng, 4, 7, 101, fillable, tif=FOK, stp=stp)
    assert ev[0].type == E.ACCEPTED
    assert sum(t.qty for t in only(ev, E.TRADE)) == fillable
    assert not [c for c in only(ev, E.CANCELED) if c.order_id == 4]


# ---------------------------------------------------------------------- post-only


def test_post_only_rests_or_is_rejected(eng: Eng) -> None:
    sell(eng, 1, 1, 100, 2)
    assert reject_reason(buy(eng, 2, 1, 100, 1, post_only=True)) == (
        RejectReason.POST_ONLY_WOULD_TAKE
    )  # own orders count
    ev = buy(eng, 2, 2, 99, 1, post_only=True)
    assert kinds(ev) == [E.ACCEPTED, E.BOOK_CHANGE]
    st = eng.order(2)
    assert st is not None
    assert st.post_only
    assert reject_reason(sell(eng, 3, 2, 99, 1, post_only=True)) == (
        RejectReason.POST_ONLY_WOULD_TAKE
    )


@pytest.mark.parametrize(
    ("typ", "tif", "post_only"),
    [(LIMIT, IOC, 1), (LIMIT, FOK, 1), (MARKET, GTC, 1), (MARKET, IOC, 1), (LIMIT, GTC, 2)],
)
def test_invalid_post_only(eng: Eng, typ: OrderType, tif: TimeInForce, post_only: int) -> None:
    sell(eng, 1, 1, 100, 2)
    ev = eng.submit(2, 2, SYM, BUY, typ, tif, 90, 1, post_only=post_only)
    assert reject_reason(ev) == RejectReason.INVALID_POST_ONLY


# ---------------------------------------------------------------------- rejects


def test_reject_event_fields(eng: Eng) -> None:
    ev = eng.submit(5, 6, 99, BUY, LIMIT, GTC, 123, 4, ts=9)
    r = ev[0]
    assert (r.type, r.reason, r.order_id, r.account_id, r.symbol_id, r.side) == (
        E.REJECTED,
        RejectReason.UNKNOWN_SYMBOL,
        5,
        6,
        99,
        BUY,
    )
    assert (r.price, r.qty, r.leaves_qty, r.ts, r.book_seq) == (123, 4, 0, 9, 0)


# Each case makes the named check fail together with every later one it can, so the
# first failing check in the documented order must be the one reported.
REJECT_ORDER = [
    (RejectReason.UNKNOWN_SYMBOL, {"sym": 42, "side": 9, "qty": 0}),
    (RejectReason.INVALID_SIDE, {"side": 0, "type": 9, "tif": 9}),
    (RejectReason.INVALID_TYPE, {"type": 3, "tif": 0, "stp": 9}),
    (RejectReason.INVALID_TIME_IN_FORCE, {"tif": 5, "stp": 4, "post_only": 3}),
    (RejectReason.INVALID_STP_MODE, {"stp": 4, "post_only": 2, "qty": 0}),
    (RejectReason.INVALID_POST_ONLY, {"post_only": 1, "tif": IOC, "qty": -1}),
    (RejectReason.INVALID_QUANTITY, {"qty": 0, "price": 0}),
    (RejectReason.QUANTITY_OUT_OF_RANGE, {"sym": BANDED, "qty": 9, "price": -5}),
    (RejectReason.QUANTITY_OUT_OF_RANGE, {"sym": BANDED, "qty": 1001, "price": 10_000}),
    (RejectReason.PRICE_NOT_POSITIVE, {"price": 0, "halt": True}),
    (RejectReason.PRICE_OUT_OF_BAND, {"sym": BANDED, "qty": 10, "price": 8_999, "halt": True}),
    (RejectReason.SYMBOL_HALTED, {"halt": True, "kill": True}),
    (RejectReason.KILL_SWITCH, {"kill": True, "dup": True}),
    (RejectReason.DUPLICATE_ORDER_ID, {"dup": True, "max_open": True}),
    (RejectReason.MAX_OPEN_ORDERS, {"max_open": True, "post_only": 1, "price": 200}),
    (RejectReason.POST_ONLY_WOULD_TAKE, {"post_only": 1, "price": 200}),
]


@pytest.mark.parametrize(("reason", "case"), REJECT_ORDER, ids=lambda x: str(x))
def test_reject_reasons_in_check_order(
    engine_cls: type[Eng], reason: RejectReason, case: dict[str, Any]
) -> None:
    e = engine_cls()
    e.add_instrument(Instrument(SYM, "AAA"))
    e.add_instrument(
        Instrument(BANDED, "BBB", min_qty=10, max_qty=1000, band_bps=1000, reference_price=10_000)
    )
    sell(e, 100, 1, 150, 5)  # liquidity for post-only; owned by account 1
    buy(e, 101, 1, 10_000, 10, sym=BANDED)
    sym = case.get("sym", SYM)
    if case.get("halt"):
        e.set_instrument_status(sym, InstrumentStatus.HALTED)
    if case.get("max_open"):
        e.set_max_open_orders(7, 1)
        buy(e, 200, 7, 50, 1)
    if case.get("kill"):
        e.set_kill_switch(7, True)
    oid = 200 if case.get("dup") else 1
    ev = e.submit(
        oid,
        7,
        sym,
        case.get("side", BUY),
        case.get("type", LIMIT),
        case.get("tif", GTC),
        case.get("price", 100),
        case.get("qty", 10),
        post_only=case.get("post_only", 0),
        stp=case.get("stp", 0),
    )
    assert reject_reason(ev) == reason


def test_book_full_then_space_again(engine_cls: type[Eng]) -> None:
    e = engine_cls(max_orders=2)
    e.add_instrument(Instrument(SYM, "AAA"))
    buy(e, 1, 1, 100, 1)
    buy(e, 2, 1, 100, 1)
    assert reject_reason(buy(e, 3, 1, 100, 1)) == RejectReason.BOOK_FULL
    # An IOC that would not rest is also refused: the check counts live orders.
    assert reject_reason(sell(e, 3, 2, 100, 1, tif=IOC)) == RejectReason.BOOK_FULL
    e.cancel(1, 1)
    assert kinds(buy(e, 3, 1, 100, 1))[0] == E.ACCEPTED


def test_max_open_orders_default_override_and_ioc(engine_cls: type[Eng]) -> None:
    e = engine_cls(default_max_open_orders=2)
    e.add_instrument(Instrument(SYM, "AAA"))
    buy(e, 1, 1, 100, 1)
    buy(e, 2, 1, 100, 1, tif=DAY)
    assert reject_reason(buy(e, 3, 1, 100, 1)) == RejectReason.MAX_OPEN_ORDERS
    # IOC/FOK/market orders never rest and are not limited.
    assert kinds(sell(e, 3, 1, 200, 1, tif=IOC))[0] == E.ACCEPTED
    assert e.set_max_open_orders(1, 3) == []
    assert kinds(buy(e, 3, 1, 100, 1))[0] == E.ACCEPTED
    e.set_max_open_orders(1, 0)  # explicit 0 = unlimited for this account
    for oid in range(4, 10):
        assert kinds(buy(e, oid, 1, 100, 1))[0] == E.ACCEPTED
    assert kinds(buy(e, 20, 2, 100, 1))[0] == E.ACCEPTED
    buy(e, 21, 2, 100, 1)
    assert reject_reason(buy(e, 22, 2, 100, 1)) == RejectReason.MAX_OPEN_ORDERS


def test_duplicate_id_rejected_and_reusable_after_fill_or_cancel(eng: Eng) -> None:
    buy(eng, 1, 1, 100, 1)
    assert reject_reason(sell(eng, 1, 2, 200, 1)) == RejectReason.DUPLICATE_ORDER_ID
    sell(eng, 2, 2, 100, 1)  # fills order 1
    assert kinds(sell(eng, 1, 3, 200, 1))[0] == E.ACCEPTED  # reused after fill
    eng.cancel(1, 3)
    assert kinds(buy(eng, 1, 4, 50, 1))[0] == E.ACCEPTED  # reused after cancel
    st = eng.order(1)
    assert st is not None
    assert st.account_id == 4
    # An IOC's id is free once the command is done.
    buy(eng, 5, 4, 10, 1, tif=IOC)
    assert kinds(buy(eng, 5, 4, 10, 1))[0] == E.ACCEPTED


def test_price_band_edges(eng: Eng) -> None:
    assert kinds(buy(eng, 1, 1, 9_000, 10, sym=BANDED))[0] == E.ACCEPTED
    assert kinds(buy(eng, 2, 1, 11_000, 10, sym=BANDED))[0] == E.ACCEPTED
    assert reject_reason(buy(eng, 3, 1, 8_999, 10, sym=BANDED)) == RejectReason.PRICE_OUT_OF_BAND
    assert reject_reason(buy(eng, 3, 1, 11_001, 10, sym=BANDED)) == RejectReason.PRICE_OUT_OF_BAND
    # Market orders have no price and no band check.
    ev = sell(eng, 3, 2, 1, 10, type=MARKET, tif=IOC, sym=BANDED)
    assert ev[0].type == E.ACCEPTED


# ---------------------------------------------------------------------- STP


def test_stp_cancel_maker_continues_matching(eng: Eng) -> None:
    sell(eng, 1, 7, 100, 2)
    sell(eng, 2, 8, 100, 2)
    ev = buy(eng, 3, 7, 100, 3)
    assert kinds(ev) == [E.ACCEPTED, E.CANCELED, E.TRADE, E.BOOK_CHANGE, E.BOOK_CHANGE]
    assert (ev[1].order_id, ev[1].reason, ev[1].qty) == (1, CancelReason.SELF_TRADE, 2)
    assert trades(ev) == [(2, 3, 100, 2)]
    assert changes(ev) == [(SELL, 100, 0, 0), (BUY, 100, 1, 1)]


def test_stp_cancel_taker(eng: Eng) -> None:
    sell(eng, 1, 8, 100, 1)
    sell(eng, 2, 7, 100, 2)
    sell(eng, 3, 8, 100, 2)
    ev = buy(eng, 4, 7, 100, 5, stp=StpMode.CANCEL_TAKER)
    assert kinds(ev) == [E.ACCEPTED, E.TRADE, E.CANCELED, E.BOOK_CHANGE]
    assert (ev[2].order_id, ev[2].reason, ev[2].qty) == (4, CancelReason.SELF_TRADE, 4)
    assert eng.order(4) is None
    assert levels(eng)[1] == [(100, 4, 2)]


def test_stp_cancel_both(eng: Eng) -> None:
    sell(eng, 1, 7, 100, 2)
    sell(eng, 2, 8, 100, 2)
    ev = buy(eng, 3, 7, 100, 5, stp=StpMode.CANCEL_BOTH)
    assert kinds(ev) == [E.ACCEPTED, E.CANCELED, E.CANCELED, E.BOOK_CHANGE]
    assert [(c.order_id, c.reason, c.qty) for c in ev[1:3]] == [
        (1, CancelReason.SELF_TRADE, 2),
        (3, CancelReason.SELF_TRADE, 5),
    ]
    assert levels(eng)[1] == [(100, 2, 1)]


def test_stp_none_self_trades(eng: Eng) -> None:
    sell(eng, 1, 7, 100, 2)
    ev = buy(eng, 2, 7, 100, 2, stp=StpMode.NONE)
    t = only(ev, E.TRADE)[0]
    assert (t.account_id, t.maker_account_id, t.qty) == (7, 7, 2)


def test_stp_is_the_takers_mode(eng: Eng) -> None:
    sell(eng, 1, 7, 100, 2, stp=StpMode.NONE)
    ev = buy(eng, 2, 7, 100, 2, stp=StpMode.CANCEL_MAKER)
    assert kinds(ev)[:2] == [E.ACCEPTED, E.CANCELED]
    assert ev[1].order_id == 1


# ---------------------------------------------------------------------- cancel


def test_cancel_unknown_filled_or_foreign_rejected(eng: Eng) -> None:
    ev = eng.cancel(5, 1, ts=3)
    assert reject_reason(ev) == RejectReason.UNKNOWN_ORDER
    assert (ev[0].order_id, ev[0].account_id, ev[0].ts) == (5, 1, 3)
    buy(eng, 1, 1, 100, 1)
    assert reject_reason(eng.cancel(1, 2)) == RejectReason.UNKNOWN_ORDER
    sell(eng, 2, 2, 100, 1)
    assert reject_reason(eng.cancel(1, 1)) == RejectReason.UNKNOWN_ORDER
    assert reject_reason(eng.cancel(2, 2)) == RejectReason.UNKNOWN_ORDER


# ---------------------------------------------------------------------- amend


def test_amend_quantity_down_keeps_priority(eng: Eng) -> None:
    sell(eng, 1, 1, 100, 5)
    sell(eng, 2, 2, 100, 5)
    ev = eng.amend(1, 1, 100, 2, ts=4)
    assert kinds(ev) == [E.AMENDED, E.BOOK_CHANGE]
    assert (ev[0].price, ev[0].qty, ev[0].leaves_qty, ev[0].ts) == (100, 2, 2, 4)
    assert changes(ev) == [(SELL, 100, 7, 2)]
    ev = buy(eng, 3, 3, 100, 3)
    assert trades(ev) == [(1, 3, 100, 2), (2, 3, 100, 1)]


def test_amend_same_quantity_emits_amended(eng: Eng) -> None:
    sell(eng, 1, 1, 100, 5)
    h = eng.state_hash()
    ev = eng.amend(1, 1, 100, 5)
    assert kinds(ev) == [E.AMENDED, E.BOOK_CHANGE]
    assert changes(ev) == [(SELL, 100, 5, 1)]
    assert eng.state_hash() != h  # book_seq moved on, nothing else
    st = eng.order(1)
    assert st is not None
    assert st.leaves_qty == 5


def test_amend_quantity_up_loses_priority(eng: Eng) -> None:
    sell(eng, 1, 1, 100, 5)
    sell(eng, 2, 2, 100, 5)
    ev = eng.amend(1, 1, 100, 6)
    assert kinds(ev) == [E.AMENDED, E.BOOK_CHANGE]
    assert changes(ev) == [(SELL, 100, 11, 2)]
    ev = buy(eng, 3, 3, 100, 3)
    assert trades(ev) == [(2, 3, 100, 3)]


def test_amend_price_change_may_match_and_keeps_filled(eng: Eng) -> None:
    buy(eng, 1, 1, 100, 5)
    sell(eng, 2, 2, 100, 2)  # order 1 partially filled: leaves 3, filled 2
    sell(eng, 3, 2, 103, 1)
    sell(eng, 4, 2, 104, 1)
    ev = eng.amend(1, 1, 103, 4)
    assert kinds(ev) == [E.AMENDED, E.TRADE, E.BOOK_CHANGE, E.BOOK_CHANGE, E.BOOK_CHANGE]
    assert (ev[0].price, ev[0].qty, ev[0].leaves_qty) == (103, 4, 4)
    assert trades(ev) == [(3, 1, 103, 1)]
    assert changes(ev) == [(BUY, 100, 0, 0), (SELL, 103, 0, 0), (BUY, 103, 3, 1)]
    st = eng.order(1)
    assert st is not None
    assert (st.price, st.leaves_qty, st.filled_qty, st.qty) == (103, 3, 3, 6)


def test_amend_partially_filled_below_min_qty(eng: Eng) -> None:
    buy(eng, 1, 1, 10_000, 20, sym=BANDED)
    sell(eng, 2, 2, 10_000, 15, sym=BANDED)
    ev = eng.amend(1, 1, 10_000, 3)
    assert ev[0].type == E.AMENDED
    assert reject_reason(eng.amend(1, 1, 10_000, 1001)) == RejectReason.QUANTITY_OUT_OF_RANGE


def test_amend_rejects_in_order(eng: Eng) -> None:
    buy(eng, 1, 1, 10_000, 20, sym=BANDED, post_only=True)
    sell(eng, 2, 2, 10_500, 20, sym=BANDED)
    assert reject_reason(eng.amend(9, 1, 0, 0)) == RejectReason.UNKNOWN_ORDER
    assert reject_reason(eng.amend(1, 2, 0, 0)) == RejectReason.UNKNOWN_ORDER
    assert reject_reason(eng.amend(1, 1, 0, 0)) == RejectReason.INVALID_QUANTITY
    assert reject_reason(eng.amend(1, 1, 0, 1001)) == RejectReason.QUANTITY_OUT_OF_RANGE
    assert reject_reason(eng.amend(1, 1, 0, 5)) == RejectReason.PRICE_NOT_POSITIVE
    eng.set_instrument_status(BANDED, InstrumentStatus.HALTED)
    assert reject_reason(eng.amend(1, 1, 50_000, 5)) == RejectReason.SYMBOL_HALTED
    eng.set_instrument_status(BANDED, InstrumentStatus.TRADING)
    eng.set_kill_switch(3, True)
    assert reject_reason(eng.amend(1, 1, 50_000, 5)) == RejectReason.PRICE_OUT_OF_BAND
    assert reject_reason(eng.amend(1, 1, 10_500, 5)) == RejectReason.POST_ONLY_WOULD_TAKE
    # Same price: neither band nor post-only is checked.
    assert eng.amend(1, 1, 10_000, 5)[0].type == E.AMENDED
    ev = eng.amend(1, 1, 10_000, 0)
    r = ev[0]
    assert (r.price, r.qty, r.order_id, r.account_id) == (10_000, 0, 1, 1)
    st = eng.order(1)
    assert st is not None
    assert (st.price, st.leaves_qty) == (10_000, 5)


def test_amend_unknown_filled_rejected(eng: Eng) -> None:
    buy(eng, 1, 1, 100, 1)
    sell(eng, 2, 2, 100, 1)
    assert reject_reason(eng.amend(1, 1, 100, 1)) == RejectReason.UNKNOWN_ORDER


def test_amend_with_stp_cancel_taker_removes_order(eng: Eng) -> None:
    buy(eng, 1, 1, 100, 5, stp=StpMode.CANCEL_TAKER)
    sell(eng, 2, 1, 101, 5)
    ev = eng.amend(1, 1, 101, 5)
    assert kinds(ev) == [E.AMENDED, E.CANCELED, E.BOOK_CHANGE]
    assert (ev[1].order_id, ev[1].reason, ev[1].qty) == (1, CancelReason.SELF_TRADE, 5)
    assert eng.order(1) is None
    assert levels(eng) == ([], [(101, 5, 1)])


# ---------------------------------------------------------------------- bulk commands


def test_cancel_all_in_ascending_order_id(eng: Eng) -> None:
    buy(eng, 5, 1, 100, 1)
    sell(eng, 3, 1, 200, 1)
    buy(eng, 9, 1, 10_000, 10, sym=BANDED)
    buy(eng, 4, 2, 100, 1)
    ev = eng.cancel_all(1, SYM)
    assert [(c.order_id, c.reason) for c in only(ev, E.CANCELED)] == [
        (3, CancelReason.USER),
        (5, CancelReason.USER),
    ]
    assert changes(ev) == [(SELL, 200, 0, 0), (BUY, 100, 1, 1)]
    assert eng.order(9) is not None
    ev = eng.cancel_all(1)
    assert [c.order_id for c in only(ev, E.CANCELED)] == [9]
    assert eng.cancel_all(1) == []
    assert eng.cancel_all(1, 77) == []


def test_kill_switch(eng: Eng) -> None:
    buy(eng, 2, 1, 100, 1)
    buy(eng, 1, 1, 99, 1)
    buy(eng, 3, 2, 98, 1)
    ev = eng.set_kill_switch(1, True, ts=5)
    assert [(c.order_id, c.reason, c.ts) for c in only(ev, E.CANCELED)] == [
        (1, CancelReason.KILL_SWITCH, 5),
        (2, CancelReason.KILL_SWITCH, 5),
    ]
    assert reject_reason(buy(eng, 4, 1, 100, 1)) == RejectReason.KILL_SWITCH
    assert reject_reason(eng.cancel(1, 1)) == RejectReason.UNKNOWN_ORDER
    assert eng.order(3) is not None
    assert eng.set_kill_switch(1, False) == []
    assert kinds(buy(eng, 4, 1, 100, 1))[0] == E.ACCEPTED


def test_kill_switch_blocks_amend_but_not_cancel(eng: Eng) -> None:
    buy(eng, 1, 1, 100, 5)
    eng.set_kill_switch(1, True)
    assert eng.live_orders() == 0
    # Kill switch on an account with no orders: no events, but submits are blocked.
    assert eng.set_kill_switch(2, True) == []
    assert reject_reason(buy(eng, 2, 2, 100, 1)) == RejectReason.KILL_SWITCH


def test_expire_day(eng: Eng) -> None:
    buy(eng, 4, 1, 100, 1, tif=DAY)
    buy(eng, 2, 2, 100, 2, tif=DAY)
    buy(eng, 3, 1, 100, 3, tif=GTC)
    buy(eng, 1, 1, 10_000, 10, sym=BANDED, tif=DAY)
    ev = eng.expire_day(SYM, ts=8)
    assert [(x.order_id, x.qty, x.leaves_qty, x.ts) for x in only(ev, E.EXPIRED)] == [
        (2, 2, 0, 8),
        (4, 1, 0, 8),
    ]
    assert changes(ev) == [(BUY, 100, 3, 1)]
    assert eng.order(1) is not None
    ev = eng.expire_day()
    assert [x.order_id for x in only(ev, E.EXPIRED)] == [1]
    assert eng.expire_day() == []


def test_halt_blocks_submit_and_amend_but_not_cancel(eng: Eng) -> None:
    buy(eng, 1, 1, 100, 1)
    assert eng.set_instrument_status(SYM, InstrumentStatus.HALTED) == []
    assert reject_reason(buy(eng, 2, 1, 100, 1)) == RejectReason.SYMBOL_HALTED
    assert reject_reason(eng.amend(1, 1, 100, 1)) == RejectReason.SYMBOL_HALTED
    assert kinds(eng.cancel(1, 1)) == [E.CANCELED, E.BOOK_CHANGE]
    assert eng.instruments()[0].status == InstrumentStatus.HALTED
    # Unknown symbol or status: ignored.
    assert eng.set_instrument_status(77, InstrumentStatus.TRADING) == []
    assert eng.set_instrument_status(SYM, 9) == []
    assert eng.instruments()[0].status == InstrumentStatus.HALTED
    eng.set_instrument_status(SYM, InstrumentStatus.TRADING)
    assert kinds(buy(eng, 2, 1, 100, 1))[0] == E.ACCEPTED


# ---------------------------------------------------------------------- limits, queries


def test_prices_near_int64_limits(engine_cls: type[Eng]) -> None:
    top = (1 << 63) - 1
    big = top // 5  # the largest max_qty with max_orders=5: no level total can overflow
    e = engine_cls(max_orders=5)
    e.add_instrument(Instrument(SYM, "AAA", max_qty=big))
    e.add_instrument(
        Instrument(BANDED, "BBB", band_bps=(1 << 62), reference_price=top - 10, max_qty=big)
    )
    sell(e, 1, 1, top, big)
    buy(e, 2, 2, top - 1, big)
    assert e.best_ask(SYM) == (top, big)
    assert e.best_bid(SYM) == (top - 1, big)
    ev = buy(e, 3, 3, top, 5)
    assert trades(ev) == [(1, 3, top, 5)]
    assert kinds(buy(e, 4, 2, top, 1, sym=BANDED))[0] == E.ACCEPTED
    assert kinds(buy(e, 5, 2, 1, 1, sym=BANDED))[0] == E.ACCEPTED
    ev = sell(e, 6, 7, 1, big, type=MARKET, tif=IOC)
    assert trades(ev) == [(2, 6, top - 1, big)]
    assert e.live_orders() == 3


def test_level_total_cannot_overflow(engine_cls: type[Eng]) -> None:
    top = (1 << 63) - 1
    e = engine_cls(max_orders=4)
    with pytest.raises(ValueError, match="max_qty"):
        e.add_instrument(Instrument(SYM, "AAA", max_qty=top // 4 + 1))
    assert e.instruments() == []
    e.add_instrument(Instrument(SYM, "AAA", max_qty=top // 4))
    for order_id in range(1, 5):
        sell(e, order_id, order_id, 100, top // 4)
    assert e.best_ask(SYM) == (100, 4 * (top // 4))


def test_depth_levels_limit_and_unknown_symbol(eng: Eng) -> None:
    for i in range(5):
        buy(eng, i + 1, 1, 100 - i, 1)
        sell(eng, i + 10, 1, 200 + i, 2)
    d = eng.depth(SYM, 2)
    assert d.bids == [Level(100, 1, 1), Level(99, 1, 1)]
    assert d.asks == [Level(200, 2, 1), Level(201, 2, 1)]
    empty = eng.depth(99, 5)
    assert (empty.bids, empty.asks) == ([], [])
    assert eng.best_bid(99) is None


def test_open_orders_ascending(eng: Eng) -> None:
    buy(eng, 9, 1, 100, 1)
    sell(eng, 3, 1, 200, 2, tif=DAY, stp=StpMode.NONE)
    buy(eng, 5, 2, 100, 1)
    oo = eng.open_orders(1)
    assert [o.order_id for o in oo] == [3, 9]
    assert (oo[0].side, oo[0].tif, oo[0].stp, oo[0].symbol_id) == (SELL, DAY, StpMode.NONE, SYM)
    assert eng.open_orders(42) == []


def test_add_instrument_validation(engine_cls: type[Eng]) -> None:
    e = engine_cls()
    e.add_instrument(Instrument(1, "AAA"))
    bad = [
        Instrument(1, "ZZZ"),
        Instrument(2, "AAA"),
        Instrument(0, "BBB"),
        Instrument(2, "BBB", min_qty=0),
        Instrument(2, "BBB", min_qty=5, max_qty=4),
        Instrument(2, "BBB", band_bps=-1),
        Instrument(2, "BBB", reference_price=-1),
        Instrument(2, "BBB", status=3),  # type: ignore[arg-type]
    ]
    for inst in bad:
        with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
            e.add_instrument(inst)
    assert [i.symbol_id for i in e.instruments()] == [1]
    assert e.instruments()[0] == Instrument(1, "AAA")


@pytest.mark.parametrize(
    "call",
    [
        lambda e: e.submit(-1, 1, 1, 1, 1, 1, 100, 1),
        lambda e: e.submit(1, 1 << 64, 1, 1, 1, 1, 100, 1),
        lambda e: e.submit(1, 1, 1 << 32, 1, 1, 1, 100, 1),
        lambda e: e.submit(1, 1, 1, 1 << 63, 1, 1, 100, 1),
        lambda e: e.submit(1, 1, 1, 1, 1, 1, 1 << 63, 1),
        lambda e: e.submit(1, 1, 1, 1, 1, 1, 100, 1, ts=1 << 63),
        lambda e: e.submit(1, 1, 1, 1, 1, 1, "100", 1),
        lambda e: e.cancel(-1, 1),
        lambda e: e.amend(1, 1, 100, 1 << 63),
        lambda e: e.cancel_all(-1),
        lambda e: e.set_max_open_orders(1, -1),
        lambda e: e.expire_day(-1),
    ],
)
def test_out_of_range_arguments_raise_value_error(eng: Eng, call: Any) -> None:
    h = eng.state_hash()
    with pytest.raises(ValueError, match=r"outside|integer"):
        call(eng)
    assert eng.state_hash() == h
    assert eng.live_orders() == 0


def test_state_hash_formula_on_a_small_book(engine_cls: type[Eng]) -> None:
    e = engine_cls()
    e.add_instrument(Instrument(3, "CCC", reference_price=50))
    buy(e, 11, 4, 100, 2, sym=3, tif=DAY, post_only=True, stp=StpMode.CANCEL_BOTH)
    e.set_max_open_orders(9, 5)
    e.set_kill_switch(8, True)

    def fnv(words: list[int]) -> int:
        h = 0xCBF29CE484222325
        for w in words:
            h ^= w & (2**64 - 1)
            h = (h * 0x100000001B3) % 2**64
            h ^= h >> 29
        return h

    words = [3, 1, 50, 1, 1, 0, 100, 2, 1, 11, 4, 2, 0, DAY, 1, StpMode.CANCEL_BOTH]
    words += [8, 1, 2**64 - 1, 9, 0, 5, 1]
    assert e.state_hash() == fnv(words)


def test_enum_values_beyond_a_byte_are_rejected_not_wrapped(eng: Eng) -> None:
    # 257 must not wrap to 1 (BUY): it is an invalid side like any other unknown value.
    assert reject_reason(eng.submit(1, 1, SYM, 257, LIMIT, GTC, 100, 1)) == (
        RejectReason.INVALID_SIDE
    )
    assert reject_reason(eng.submit(1, 1, SYM, -1, LIMIT, GTC, 100, 1)) == (
        RejectReason.INVALID_SIDE
    )
    assert reject_reason(eng.submit(1, 1, SYM, BUY, LIMIT, GTC, 100, 1, post_only=257)) == (
        RejectReason.INVALID_POST_ONLY
    )
    assert reject_reason(eng.submit(1, 1, SYM, BUY, LIMIT, GTC, 100, 1, stp=256)) == (
        RejectReason.INVALID_STP_MODE
    )


def test_level_emptied_and_refilled_in_one_command_gets_one_book_change(eng: Eng) -> None:
    buy(eng, 1, 1, 100, 5)
    ev = eng.amend(1, 1, 100, 8)  # quantity up: leaves the level (emptying it), rests again
    assert kinds(ev) == [E.AMENDED, E.BOOK_CHANGE]
    assert changes(ev) == [(BUY, 100, 8, 1)]
    sell(eng, 2, 2, 101, 3)
    ev = eng.amend(2, 2, 100, 3)  # crosses: trades with order 1, nothing left to rest
    assert kinds(ev) == [E.AMENDED, E.TRADE, E.BOOK_CHANGE, E.BOOK_CHANGE]
    assert changes(ev) == [(SELL, 101, 0, 0), (BUY, 100, 5, 1)]


def test_numpy_integers_are_accepted(engine_cls: type[Eng]) -> None:
    import numpy as np

    eng, plain = engine_cls(), engine_cls()
    for e in (eng, plain):
        e.add_instrument(Instrument(SYM, "AAA"))
    plain.submit(1, 2, SYM, 1, 1, 1, 100, 3)
    plain.amend(1, 2, 100, 2)
    ev = eng.submit(
        np.uint64(1), np.uint64(2), np.uint32(SYM), np.uint8(1), 1, 1, np.int64(100), np.int64(3)
    )
    assert ev[0].type == E.ACCEPTED
    assert eng.amend(np.uint64(1), np.uint64(2), np.int64(100), np.int64(2))[0].type == E.AMENDED
    st = eng.order(1)
    assert st is not None
    assert type(st.order_id) is int
    assert eng.state_hash() == plain.state_hash()
    assert eng.cancel(np.uint64(1), np.uint64(2))[0].type == E.CANCELED


def test_events_from_bytes_round_trip_and_errors() -> None:
    from hft.engine import EVENT_DTYPE, events_from_array, events_from_bytes, events_to_array

    evs = [
        Event(E.TRADE, 1, 0, 2, 3, 0, 4, 5, -6, 7, 8, 9, 10, 11, 12, 13, -(1 << 63)),
        Event(E.BOOK_CHANGE, side=2, price=(1 << 63) - 1, order_id=(1 << 64) - 1),
    ]
    arr = events_to_array(evs)
    assert events_from_array(arr) == evs
    assert events_from_bytes(arr.tobytes()) == evs
    assert events_from_array(arr[::-1]) == evs[::-1]
    with pytest.raises(ValueError, match="multiple"):
        events_from_bytes(arr.tobytes()[:-1])
    bad = arr.copy()
    bad["type"][0] = 99
    with pytest.raises(ValueError, match="unknown event type 99"):
        events_from_bytes(bad.tobytes())
    with pytest.raises(ValueError, match="EVENT_DTYPE"):
        events_from_array(arr.view(np.uint8))
    assert arr.dtype == EVENT_DTYPE
