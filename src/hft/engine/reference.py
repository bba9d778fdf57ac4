"""A pure-Python order book with exactly the semantics of the C++ core.

Written for clarity, not speed: it is the executable form of docs/engine-semantics.md
and the oracle of the differential tests, which demand identical events, depth and
state hash from this book and from `hft._core` for any command sequence. Prices are
integer ticks, quantities integer lots, timestamps integer nanoseconds from the command.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hft.engine.types import (
    COMMAND_DTYPE,
    EVENT_DTYPE,
    CancelReason,
    CommandKind,
    Depth,
    Event,
    EventType,
    Instrument,
    InstrumentStatus,
    Level,
    OrderState,
    OrderType,
    RejectReason,
    Side,
    StpMode,
    TimeInForce,
    check_range,
)

_MASK64 = (1 << 64) - 1
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_NOT_SET = _MASK64

_SIDES = {int(s) for s in Side}
_TYPES = {int(t) for t in OrderType}
_TIFS = {int(t) for t in TimeInForce}
_STPS = {int(s) for s in StpMode}
_STATUSES = {int(s) for s in InstrumentStatus}
_KINDS = {int(k) for k in CommandKind}


@dataclass(slots=True)
class _Order:
    order_id: int
    account_id: int
    symbol_id: int
    side: int
    type: int
    tif: int
    price: int
    leaves: int
    filled: int
    post_only: int
    stp: int
    ts: int


@dataclass(slots=True)
class _Book:
    symbol_id: int
    symbol: str
    min_qty: int
    max_qty: int
    band_bps: int
    reference_price: int
    status: int
    tick_size: str
    lot_size: str
    book_seq: int = 0
    # price -> FIFO of resting orders, oldest first.
    bids: dict[int, list[_Order]] = field(default_factory=dict)
    asks: dict[int, list[_Order]] = field(default_factory=dict)

    def side_levels(self, side: int) -> dict[int, list[_Order]]:
        return self.bids if side == Side.BUY else self.asks

    def prices_best_first(self, side: int) -> list[int]:
        return sorted(self.side_levels(side), reverse=side == Side.BUY)

    def best(self, side: int) -> int | None:
        levels = self.side_levels(side)
        if not levels:
            return None
        return max(levels) if side == Side.BUY else min(levels)


@dataclass(slots=True)
class _Account:
    kill_switch: bool = False
    max_open_orders: int | None = None  # None: the engine default applies
    live: int = 0


def _opposite(side: int) -> int:
    return Side.SELL if side == Side.BUY else Side.BUY


def _acceptable(taker: _Order, maker_price: int) -> bool:
    if taker.type == OrderType.MARKET:
        return True
    if taker.side == Side.BUY:
        return taker.price >= maker_price
    return taker.price <= maker_price


def _hash_words(words: Iterable[int]) -> int:
    h = _FNV_OFFSET
    for w in words:
        h ^= w & _MASK64
        h = (h * _FNV_PRIME) & _MASK64
        h ^= h >> 29
    return h


class ReferenceEngine:
    """The reference matching engine; same public methods as `hft.engine.Engine`.

    Command methods return the events they produced (prices in ticks, quantities in
    lots). Arguments that are not integers or lie outside their wire ranges (ids u64,
    symbol u32, enum fields, prices, quantities and ts i64) raise ValueError and change
    nothing; everything inside those ranges goes through the exchange checks and may
    produce reject events.
    """

    def __init__(self, max_orders: int = 1 << 20, default_max_open_orders: int = 0) -> None:
        check_range("max_orders", max_orders, 1, (1 << 32) - 1)
        check_range("default_max_open_orders", default_max_open_orders, 0, (1 << 32) - 1)
        self.max_orders = max_orders
        self.default_max_open_orders = default_max_open_orders
        self._books: dict[int, _Book] = {}
        self._orders: dict[int, _Order] = {}
        self._accounts: dict[int, _Account] = {}
        self._next_trade_id = 1
        # Per-command context.
        self._out: list[Event] = []
        self._touched: dict[tuple[int, int, int], None] = {}
        self._ts = 0
        self._cmd_index = 0

    # ------------------------------------------------------------------ configuration

    def add_instrument(self, instrument: Instrument) -> None:
        """Add an instrument; ValueError on a duplicate id/symbol or an invalid value."""
        i = instrument
        check_range("symbol_id", i.symbol_id, 1, (1 << 32) - 1)
        if not isinstance(i.symbol, str) or not i.symbol:
            raise ValueError("symbol must be a non-empty string")
        check_range("min_qty", i.min_qty, 1, (1 << 63) - 1)
        check_range("max_qty", i.max_qty, i.min_qty, (1 << 63) - 1)
        level_limit = ((1 << 63) - 1) // self.max_orders
        if i.max_qty > level_limit:
            raise ValueError(
                f"max_qty must be <= {level_limit} (INT64_MAX // max_orders) so that a "
                "price level's total quantity cannot overflow"
            )
        check_range("band_bps", i.band_bps, 0, (1 << 63) - 1)
        check_range("reference_price", i.reference_price, 0, (1 << 63) - 1)
        if int(i.status) not in _STATUSES:
            raise ValueError(f"invalid instrument status {int(i.status)}")
        if i.symbol_id in self._books:
            raise ValueError(f"duplicate symbol id {i.symbol_id}")
        if any(b.symbol == i.symbol for b in self._books.values()):
            raise ValueError(f"duplicate symbol {i.symbol!r}")
        self._books[i.symbol_id] = _Book(
            symbol_id=i.symbol_id,
            symbol=i.symbol,
            min_qty=i.min_qty,
            max_qty=i.max_qty,
            band_bps=i.band_bps,
            reference_price=i.reference_price,
            status=int(i.status),
            tick_size=i.tick_size,
            lot_size=i.lot_size,
        )

    # ------------------------------------------------------------------ command plumbing

    def _begin(self, ts: int, cmd_index: int = 0) -> None:
        self._out = []
        self._touched = {}
        self._ts = ts
        self._cmd_index = cmd_index

    def _finish(self) -> list[Event]:
        for symbol_id, side, price in self._touched:
            book = self._books[symbol_id]
            level = book.side_levels(side).get(price, [])
            book.book_seq += 1
            self._emit(
                EventType.BOOK_CHANGE,
                side=side,
                symbol_id=symbol_id,
                price=price,
                qty=sum(o.leaves for o in level),
                order_count=len(level),
                book_seq=book.book_seq,
            )
        out = self._out
        self._out = []
        self._touched = {}
        return out

    def _emit(self, type: EventType, **fields: int) -> None:
        # Plain ints (not IntEnum members), exactly as events read back from the core.
        values = {k: int(v) for k, v in fields.items()}
        self._out.append(Event(type, cmd_index=self._cmd_index, ts=self._ts, **values))

    def _touch(self, order: _Order, price: int | None = None) -> None:
        key = (order.symbol_id, order.side, order.price if price is None else price)
        self._touched.setdefault(key, None)

    def _account(self, account_id: int) -> _Account:
        acc = self._accounts.get(account_id)
        if acc is None:
            acc = self._accounts[account_id] = _Account()
        return acc

    def _max_open(self, account_id: int) -> int:
        acc = self._accounts.get(account_id)
        if acc is not None and acc.max_open_orders is not None:
            return acc.max_open_orders
        return self.default_max_open_orders

    def _rest(self, book: _Book, order: _Order) -> None:
        book.side_levels(order.side).setdefault(order.price, []).append(order)
        self._orders[order.order_id] = order
        self._account(order.account_id).live += 1
        self._touch(order)

    def _unrest(self, book: _Book, order: _Order) -> None:
        levels = book.side_levels(order.side)
        level = levels[order.price]
        level.remove(order)
        if not level:
            del levels[order.price]
        del self._orders[order.order_id]
        self._accounts[order.account_id].live -= 1
        self._touch(order)

    def _emit_order(self, type: EventType, order: _Order, qty: int, reason: int = 0) -> None:
        self._emit(
            type,
            side=order.side,
            reason=reason,
            symbol_id=order.symbol_id,
            order_id=order.order_id,
            account_id=order.account_id,
            price=order.price,
            qty=qty,
            leaves_qty=order.leaves,
        )

    def _cancel_resting(self, book: _Book, order: _Order, reason: CancelReason) -> None:
        self._unrest(book, order)
        qty = order.leaves
        order.leaves = 0
        self._emit_order(EventType.CANCELED, order, qty, reason)

    # ------------------------------------------------------------------ SUBMIT

    def submit(
        self,
        order_id: int,
        account_id: int,
        symbol_id: int,
        side: int,
        type: int,
        tif: int,
        price: int,
        qty: int,
        *,
        post_only: bool | int = False,
        stp: int = StpMode.CANCEL_MAKER,
        ts: int = 0,
    ) -> list[Event]:
        """Submit an order (price in ticks, qty in lots); returns its events."""
        _check_submit(order_id, account_id, symbol_id, side, type, tif, price, qty, post_only, stp)
        check_range("ts", ts, -(1 << 63), (1 << 63) - 1)
        self._begin(int(ts))
        self._submit(
            int(order_id),
            int(account_id),
            int(symbol_id),
            _enum_byte(side),
            _enum_byte(type),
            _enum_byte(tif),
            int(price),
            int(qty),
            _enum_byte(int(post_only)),
            _enum_byte(stp),
        )
        return self._finish()

    def _reject_submit(
        self,
        reason: RejectReason,
        order_id: int,
        account_id: int,
        symbol_id: int,
        side: int,
        type: int,
        price: int,
        qty: int,
    ) -> None:
        self._emit(
            EventType.REJECTED,
            side=side,
            reason=reason,
            symbol_id=symbol_id,
            order_id=order_id,
            account_id=account_id,
            price=0 if type == OrderType.MARKET else price,
            qty=qty,
        )

    def _submit_check(
        self,
        order_id: int,
        account_id: int,
        symbol_id: int,
        side: int,
        type: int,
        tif: int,
        price: int,
        qty: int,
        post_only: int,
        stp: int,
    ) -> RejectReason:
        book = self._books.get(symbol_id)
        if book is None:
            return RejectReason.UNKNOWN_SYMBOL
        if side not in _SIDES:
            return RejectReason.INVALID_SIDE
        if type not in _TYPES:
            return RejectReason.INVALID_TYPE
        if tif not in _TIFS:
            return RejectReason.INVALID_TIME_IN_FORCE
        if stp not in _STPS:
            return RejectReason.INVALID_STP_MODE
        if post_only not in (0, 1) or (
            post_only == 1
            and (type == OrderType.MARKET or tif in (TimeInForce.IOC, TimeInForce.FOK))
        ):
            return RejectReason.INVALID_POST_ONLY
        if qty <= 0:
            return RejectReason.INVALID_QUANTITY
        if qty < book.min_qty or qty > book.max_qty:
            return RejectReason.QUANTITY_OUT_OF_RANGE
        if type == OrderType.LIMIT:
            if price <= 0:
                return RejectReason.PRICE_NOT_POSITIVE
            if _out_of_band(book, price):
                return RejectReason.PRICE_OUT_OF_BAND
        if book.status == InstrumentStatus.HALTED:
            return RejectReason.SYMBOL_HALTED
        acc = self._accounts.get(account_id)
        if acc is not None and acc.kill_switch:
            return RejectReason.KILL_SWITCH
        if order_id in self._orders:
            return RejectReason.DUPLICATE_ORDER_ID
        if len(self._orders) >= self.max_orders:
            return RejectReason.BOOK_FULL
        if type == OrderType.LIMIT and tif in (TimeInForce.GTC, TimeInForce.DAY):
            limit = self._max_open(account_id)
            if limit > 0 and acc is not None and acc.live >= limit:
                return RejectReason.MAX_OPEN_ORDERS
        opposite = _opposite(side)
        if post_only == 1 and _would_take(book, side, price):
            return RejectReason.POST_ONLY_WOULD_TAKE
        if type == OrderType.MARKET and not book.side_levels(opposite):
            return RejectReason.MARKET_NO_LIQUIDITY
        if (
            tif == TimeInForce.FOK
            and self._fillable(book, side, type, price, account_id, stp) < qty
        ):
            return RejectReason.FOK_CANNOT_FILL
        return RejectReason.NONE

    def _fillable(
        self, book: _Book, side: int, type: int, price: int, account_id: int, stp: int
    ) -> int:
        opposite = _opposite(side)
        levels = book.side_levels(opposite)
        total = 0
        for level_price in book.prices_best_first(opposite):
            if type == OrderType.LIMIT and (
                (side == Side.BUY and level_price > price)
                or (side == Side.SELL and level_price < price)
            ):
                break
            for maker in levels[level_price]:
                if stp != StpMode.NONE and maker.account_id == account_id:
                    if stp in (StpMode.CANCEL_TAKER, StpMode.CANCEL_BOTH):
                        return total
                    continue
                total += maker.leaves
        return total

    def _submit(
        self,
        order_id: int,
        account_id: int,
        symbol_id: int,
        side: int,
        type: int,
        tif: int,
        price: int,
        qty: int,
        post_only: int,
        stp: int,
    ) -> None:
        reason = self._submit_check(
            order_id, account_id, symbol_id, side, type, tif, price, qty, post_only, stp
        )
        if reason != RejectReason.NONE:
            self._reject_submit(reason, order_id, account_id, symbol_id, side, type, price, qty)
            return
        book = self._books[symbol_id]
        order = _Order(
            order_id=order_id,
            account_id=account_id,
            symbol_id=symbol_id,
            side=side,
            type=type,
            tif=tif,
            price=price if type == OrderType.LIMIT else 0,
            leaves=qty,
            filled=0,
            post_only=post_only,
            stp=stp,
            ts=self._ts,
        )
        self._emit_order(EventType.ACCEPTED, order, qty)
        self._match_and_rest(book, order)

    def _match_and_rest(self, book: _Book, taker: _Order) -> None:
        """Match `taker` (not in the book) against the opposite side, then rest or cancel."""
        opposite = _opposite(taker.side)
        levels = book.side_levels(opposite)
        while taker.leaves > 0:
            best = book.best(opposite)
            if best is None or not _acceptable(taker, best):
                break
            maker = levels[best][0]
            if maker.account_id == taker.account_id and taker.stp != StpMode.NONE:
                if taker.stp == StpMode.CANCEL_MAKER:
                    self._cancel_resting(book, maker, CancelReason.SELF_TRADE)
                    continue
                if taker.stp == StpMode.CANCEL_BOTH:
                    self._cancel_resting(book, maker, CancelReason.SELF_TRADE)
                qty = taker.leaves
                taker.leaves = 0
                self._emit_order(EventType.CANCELED, taker, qty, CancelReason.SELF_TRADE)
                return
            q = min(taker.leaves, maker.leaves)
            taker.leaves -= q
            taker.filled += q
            maker.leaves -= q
            maker.filled += q
            self._touch(maker)
            book.book_seq += 1
            book.reference_price = maker.price
            trade_id = self._next_trade_id
            self._next_trade_id += 1
            self._emit(
                EventType.TRADE,
                side=taker.side,
                symbol_id=book.symbol_id,
                order_id=taker.order_id,
                account_id=taker.account_id,
                price=maker.price,
                qty=q,
                leaves_qty=taker.leaves,
                maker_order_id=maker.order_id,
                maker_account_id=maker.account_id,
                maker_leaves_qty=maker.leaves,
                trade_id=trade_id,
                book_seq=book.book_seq,
            )
            if maker.leaves == 0:
                self._unrest(book, maker)
        if taker.leaves == 0:
            return
        if taker.type == OrderType.LIMIT and taker.tif in (TimeInForce.GTC, TimeInForce.DAY):
            self._rest(book, taker)
        else:
            qty = taker.leaves
            taker.leaves = 0
            self._emit_order(EventType.CANCELED, taker, qty, CancelReason.IOC_REMAINDER)

    # ------------------------------------------------------------------ CANCEL / AMEND

    def cancel(self, order_id: int, account_id: int, *, ts: int = 0) -> list[Event]:
        """Cancel a live order of `account_id`; CANCEL_REJECTED(UNKNOWN_ORDER) otherwise."""
        check_range("order_id", order_id, 0, _MASK64)
        check_range("account_id", account_id, 0, _MASK64)
        check_range("ts", ts, -(1 << 63), (1 << 63) - 1)
        self._begin(int(ts))
        self._cancel(int(order_id), int(account_id))
        return self._finish()

    def _cancel(self, order_id: int, account_id: int, symbol_id: int = 0) -> None:
        order = self._orders.get(order_id)
        if order is None or order.account_id != account_id:
            self._emit(
                EventType.CANCEL_REJECTED,
                reason=RejectReason.UNKNOWN_ORDER,
                symbol_id=symbol_id,
                order_id=order_id,
                account_id=account_id,
            )
            return
        self._cancel_resting(self._books[order.symbol_id], order, CancelReason.USER)

    def amend(
        self, order_id: int, account_id: int, price: int, qty: int, *, ts: int = 0
    ) -> list[Event]:
        """Amend a live order to a new price (ticks) and new leaves quantity (lots)."""
        check_range("order_id", order_id, 0, _MASK64)
        check_range("account_id", account_id, 0, _MASK64)
        check_range("price", price, -(1 << 63), (1 << 63) - 1)
        check_range("qty", qty, -(1 << 63), (1 << 63) - 1)
        check_range("ts", ts, -(1 << 63), (1 << 63) - 1)
        self._begin(int(ts))
        self._amend(int(order_id), int(account_id), int(price), int(qty))
        return self._finish()

    def _amend_check(self, order: _Order | None, account_id: int, price: int, qty: int) -> int:
        if order is None or order.account_id != account_id:
            return RejectReason.UNKNOWN_ORDER
        book = self._books[order.symbol_id]
        if qty <= 0:
            return RejectReason.INVALID_QUANTITY
        if qty > book.max_qty:
            return RejectReason.QUANTITY_OUT_OF_RANGE
        if price <= 0:
            return RejectReason.PRICE_NOT_POSITIVE
        if book.status == InstrumentStatus.HALTED:
            return RejectReason.SYMBOL_HALTED
        if self._account(account_id).kill_switch:
            return RejectReason.KILL_SWITCH
        if price != order.price:
            if _out_of_band(book, price):
                return RejectReason.PRICE_OUT_OF_BAND
            if order.post_only and _would_take(book, order.side, price):
                return RejectReason.POST_ONLY_WOULD_TAKE
        return RejectReason.NONE

    def _amend(
        self, order_id: int, account_id: int, price: int, qty: int, symbol_id: int = 0
    ) -> None:
        # `symbol_id` is only what the command carried: reject events echo it.
        order = self._orders.get(order_id)
        reason = self._amend_check(order, account_id, price, qty)
        if reason != RejectReason.NONE or order is None:
            self._emit(
                EventType.AMEND_REJECTED,
                reason=reason,
                symbol_id=symbol_id,
                order_id=order_id,
                account_id=account_id,
                price=price,
                qty=qty,
            )
            return
        book = self._books[order.symbol_id]
        if price == order.price and qty <= order.leaves:
            order.leaves = qty
            self._touch(order)
            self._emit_order(EventType.AMENDED, order, qty)
            return
        self._unrest(book, order)
        order.price = price
        order.leaves = qty
        self._emit_order(EventType.AMENDED, order, qty)
        self._match_and_rest(book, order)

    # ------------------------------------------------------------------ bulk commands

    def _account_orders(self, account_id: int, symbol_id: int = 0) -> list[_Order]:
        return [
            self._orders[oid]
            for oid in sorted(self._orders)
            if self._orders[oid].account_id == account_id
            and (symbol_id == 0 or self._orders[oid].symbol_id == symbol_id)
        ]

    def cancel_all(self, account_id: int, symbol_id: int = 0, *, ts: int = 0) -> list[Event]:
        """Cancel every live order of the account (on one symbol, or all when 0)."""
        check_range("account_id", account_id, 0, _MASK64)
        check_range("symbol_id", symbol_id, 0, (1 << 32) - 1)
        check_range("ts", ts, -(1 << 63), (1 << 63) - 1)
        self._begin(int(ts))
        self._cancel_all(int(account_id), int(symbol_id))
        return self._finish()

    def _cancel_all(self, account_id: int, symbol_id: int) -> None:
        for order in self._account_orders(account_id, symbol_id):
            self._cancel_resting(self._books[order.symbol_id], order, CancelReason.USER)

    def set_kill_switch(self, account_id: int, enabled: bool, *, ts: int = 0) -> list[Event]:
        """Turn the account's kill switch on (cancelling its orders) or off."""
        check_range("account_id", account_id, 0, _MASK64)
        check_range("ts", ts, -(1 << 63), (1 << 63) - 1)
        self._begin(int(ts))
        self._set_kill_switch(int(account_id), bool(enabled))
        return self._finish()

    def _set_kill_switch(self, account_id: int, enabled: bool) -> None:
        self._account(account_id).kill_switch = enabled
        if enabled:
            for order in self._account_orders(account_id):
                self._cancel_resting(self._books[order.symbol_id], order, CancelReason.KILL_SWITCH)

    def set_max_open_orders(self, account_id: int, n: int, *, ts: int = 0) -> list[Event]:
        """Set the account's max live orders (0 = unlimited); ValueError if n < 0."""
        check_range("account_id", account_id, 0, _MASK64)
        check_range("n", n, 0, (1 << 63) - 1)
        check_range("ts", ts, -(1 << 63), (1 << 63) - 1)
        self._begin(int(ts))
        self._account(int(account_id)).max_open_orders = int(n)
        return self._finish()

    def set_instrument_status(self, symbol_id: int, status: int, *, ts: int = 0) -> list[Event]:
        """Halt or resume a symbol; unknown symbol or status is ignored (no event)."""
        check_range("symbol_id", symbol_id, 0, (1 << 32) - 1)
        check_range("ts", ts, -(1 << 63), (1 << 63) - 1)
        self._begin(int(ts))
        self._set_status(int(symbol_id), int(status))
        return self._finish()

    def _set_status(self, symbol_id: int, status: int) -> None:
        book = self._books.get(symbol_id)
        if book is not None and status in _STATUSES:
            book.status = status

    def expire_day(self, symbol_id: int = 0, *, ts: int = 0) -> list[Event]:
        """Expire every live DAY order (of one symbol, or all when 0)."""
        check_range("symbol_id", symbol_id, 0, (1 << 32) - 1)
        check_range("ts", ts, -(1 << 63), (1 << 63) - 1)
        self._begin(int(ts))
        self._expire_day(int(symbol_id))
        return self._finish()

    def _expire_day(self, symbol_id: int) -> None:
        for oid in sorted(self._orders):
            order = self._orders[oid]
            if order.tif == TimeInForce.DAY and symbol_id in (0, order.symbol_id):
                self._unrest(self._books[order.symbol_id], order)
                qty = order.leaves
                order.leaves = 0
                self._emit_order(EventType.EXPIRED, order, qty)

    # ------------------------------------------------------------------ batch

    def process(self, commands: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """Run a COMMAND_DTYPE array; returns an EVENT_DTYPE array (events carry cmd_index).

        Raises ValueError, running nothing, when the array has another dtype or a command
        has an unknown kind.
        """
        if not isinstance(commands, np.ndarray) or commands.dtype != COMMAND_DTYPE:
            raise ValueError("commands must be a numpy array of COMMAND_DTYPE")
        rows = commands.ravel().tolist()
        for index, c in enumerate(rows):
            if c[0] not in _KINDS:
                raise ValueError(f"command {index} has unknown kind {c[0]}")
        events: list[Event] = []
        for index, c in enumerate(rows):
            kind, side, type_, tif, stp, post_only = c[0:6]
            symbol_id, order_id, account_id, price, qty, ts = c[7], c[9], c[10], c[11], c[12], c[13]
            self._begin(ts, index)
            if kind == CommandKind.SUBMIT:
                self._submit(
                    order_id, account_id, symbol_id, side, type_, tif, price, qty, post_only, stp
                )
            elif kind == CommandKind.CANCEL:
                self._cancel(order_id, account_id, symbol_id)
            elif kind == CommandKind.AMEND:
                self._amend(order_id, account_id, price, qty, symbol_id)
            elif kind == CommandKind.CANCEL_ALL:
                self._cancel_all(account_id, symbol_id)
            elif kind == CommandKind.SET_KILL_SWITCH:
                if qty in (0, 1):
                    self._set_kill_switch(account_id, qty == 1)
            elif kind == CommandKind.SET_MAX_OPEN_ORDERS:
                if qty >= 0:
                    self._account(account_id).max_open_orders = qty
            elif kind == CommandKind.SET_INSTRUMENT_STATUS:
                self._set_status(symbol_id, qty)
            elif kind == CommandKind.EXPIRE_DAY:
                self._expire_day(symbol_id)
            events += self._finish()
        return events_to_array(events)

    # ------------------------------------------------------------------ queries

    def best_bid(self, symbol_id: int) -> tuple[int, int] | None:
        """(price ticks, total qty lots) of the best bid, or None."""
        return self._best(symbol_id, Side.BUY)

    def best_ask(self, symbol_id: int) -> tuple[int, int] | None:
        """(price ticks, total qty lots) of the best ask, or None."""
        return self._best(symbol_id, Side.SELL)

    def _best(self, symbol_id: int, side: int) -> tuple[int, int] | None:
        book = self._books.get(symbol_id)
        if book is None:
            return None
        price = book.best(side)
        if price is None:
            return None
        return price, sum(o.leaves for o in book.side_levels(side)[price])

    def depth(self, symbol_id: int, levels: int = 20) -> Depth:
        """L2 depth, best first on both sides; empty for an unknown symbol."""
        check_range("levels", levels, 0, (1 << 32) - 1)
        book = self._books.get(symbol_id)
        if book is None:
            return Depth(symbol_id)

        def side_depth(side: int) -> list[Level]:
            lv = book.side_levels(side)
            return [
                Level(p, sum(o.leaves for o in lv[p]), len(lv[p]))
                for p in book.prices_best_first(side)[:levels]
            ]

        return Depth(symbol_id, side_depth(Side.BUY), side_depth(Side.SELL))

    def order(self, order_id: int) -> OrderState | None:
        """A live order's state, or None."""
        o = self._orders.get(order_id)
        return None if o is None else _state(o)

    def open_orders(self, account_id: int) -> list[OrderState]:
        """The account's live orders in ascending order id."""
        return [_state(o) for o in self._account_orders(account_id)]

    def instruments(self) -> list[Instrument]:
        """Every instrument in ascending symbol id, with its current reference price."""
        return [
            Instrument(
                symbol_id=b.symbol_id,
                symbol=b.symbol,
                min_qty=b.min_qty,
                max_qty=b.max_qty,
                band_bps=b.band_bps,
                reference_price=b.reference_price,
                status=InstrumentStatus(b.status),
                tick_size=b.tick_size,
                lot_size=b.lot_size,
            )
            for _, b in sorted(self._books.items())
        ]

    def live_orders(self) -> int:
        """Number of resting orders in the whole engine."""
        return len(self._orders)

    def state_hash(self) -> int:
        """The 64-bit state hash of docs/engine-semantics.md."""
        return _hash_words(self._hash_words())

    def _hash_words(self) -> Iterable[int]:
        for symbol_id, book in sorted(self._books.items()):
            bid_prices = book.prices_best_first(Side.BUY)
            ask_prices = book.prices_best_first(Side.SELL)
            yield from (symbol_id, book.status, book.reference_price, book.book_seq)
            yield from (len(bid_prices), len(ask_prices))
            for side, prices in ((Side.BUY, bid_prices), (Side.SELL, ask_prices)):
                for price in prices:
                    level = book.side_levels(side)[price]
                    yield from (price, sum(o.leaves for o in level), len(level))
                    for o in level:
                        yield from (o.order_id, o.account_id, o.leaves, o.filled)
                        yield from (o.tif, o.post_only, o.stp)
        for account_id, acc in sorted(self._accounts.items()):
            if acc.kill_switch or acc.max_open_orders is not None:
                explicit = acc.max_open_orders
                yield from (account_id, int(acc.kill_switch))
                yield _NOT_SET if explicit is None else explicit
        yield self._next_trade_id

    # ------------------------------------------------------------------ snapshots

    def snapshot(self) -> bytes:
        """The whole state as JSON bytes (the reference's own format, not the core's)."""
        state = {
            "format": "hft-reference-1",
            "max_orders": self.max_orders,
            "default_max_open_orders": self.default_max_open_orders,
            "next_trade_id": self._next_trade_id,
            "books": [
                {
                    "instrument": [
                        b.symbol_id,
                        b.symbol,
                        b.min_qty,
                        b.max_qty,
                        b.band_bps,
                        b.reference_price,
                        b.status,
                        b.tick_size,
                        b.lot_size,
                    ],
                    "book_seq": b.book_seq,
                    "orders": [
                        [
                            o.order_id,
                            o.account_id,
                            o.side,
                            o.type,
                            o.tif,
                            o.price,
                            o.leaves,
                            o.filled,
                            o.post_only,
                            o.stp,
                            o.ts,
                        ]
                        for side in (Side.BUY, Side.SELL)
                        for p in b.prices_best_first(side)
                        for o in b.side_levels(side)[p]
                    ],
                }
                for _, b in sorted(self._books.items())
            ],
            "accounts": [
                [aid, a.kill_switch, a.max_open_orders]
                for aid, a in sorted(self._accounts.items())
                if a.kill_switch or a.max_open_orders is not None
            ],
        }
        return json.dumps(state, separators=(",", ":")).encode()

    @classmethod
    def restore(cls, data: bytes | bytearray | memoryview) -> ReferenceEngine:
        """Rebuild an engine from `snapshot()` bytes; ValueError on malformed data."""
        try:
            state = json.loads(bytes(data))
            if not isinstance(state, dict) or state.get("format") != "hft-reference-1":
                raise ValueError("not a reference engine snapshot")
            eng = cls(state["max_orders"], state["default_max_open_orders"])
            for b in state["books"]:
                sid, sym, mn, mx, band, ref, status, tick, lot = b["instrument"]
                eng.add_instrument(
                    Instrument(sid, sym, mn, mx, band, ref, InstrumentStatus(status), tick, lot)
                )
                book = eng._books[sid]
                book.book_seq = _int(b["book_seq"])
                for oid, aid, side, typ, tif, price, leaves, filled, po, stp, ts in b["orders"]:
                    if oid in eng._orders or side not in _SIDES or leaves <= 0:
                        raise ValueError("invalid order in snapshot")
                    vals = [_int(v) for v in (oid, aid, side, typ, tif, price, leaves, filled)]
                    order = _Order(
                        order_id=vals[0],
                        account_id=vals[1],
                        symbol_id=sid,
                        side=vals[2],
                        type=vals[3],
                        tif=vals[4],
                        price=vals[5],
                        leaves=vals[6],
                        filled=vals[7],
                        post_only=_int(po),
                        stp=_int(stp),
                        ts=_int(ts),
                    )
                    eng._rest(book, order)
            for aid, kill, max_open in state["accounts"]:
                acc = eng._account(_int(aid))
                acc.kill_switch = bool(kill)
                acc.max_open_orders = None if max_open is None else _int(max_open)
            eng._next_trade_id = _int(state["next_trade_id"])
            eng._touched = {}
            return eng
        except (KeyError, TypeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"malformed reference snapshot: {exc}") from exc


def _int(v: object) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise ValueError(f"expected an integer, got {v!r}")
    return v


def _enum_byte(v: int) -> int:
    # As in the core's binding: a value that is no byte cannot be a valid enum value and
    # maps to 255, which every enum check rejects with its own reason.
    return 255 if v < 0 or v > 254 else int(v)


def _out_of_band(book: _Book, price: int) -> bool:
    ref = book.reference_price
    return book.band_bps > 0 and ref > 0 and abs(price - ref) * 10000 > ref * book.band_bps


def _would_take(book: _Book, side: int, price: int) -> bool:
    if side == Side.BUY:
        ask = book.best(Side.SELL)
        return ask is not None and ask <= price
    bid = book.best(Side.BUY)
    return bid is not None and bid >= price


def _state(o: _Order) -> OrderState:
    return OrderState(
        order_id=o.order_id,
        account_id=o.account_id,
        symbol_id=o.symbol_id,
        side=Side(o.side),
        tif=TimeInForce(o.tif),
        price=o.price,
        qty=o.filled + o.leaves,
        leaves_qty=o.leaves,
        filled_qty=o.filled,
        post_only=bool(o.post_only),
        stp=StpMode(o.stp),
        ts=o.ts,
    )


def _check_submit(
    order_id: int,
    account_id: int,
    symbol_id: int,
    side: int,
    type: int,
    tif: int,
    price: int,
    qty: int,
    post_only: bool | int,
    stp: int,
) -> None:
    check_range("order_id", order_id, 0, _MASK64)
    check_range("account_id", account_id, 0, _MASK64)
    check_range("symbol_id", symbol_id, 0, (1 << 32) - 1)
    for name, v in (("side", side), ("type", type), ("tif", tif), ("stp", stp)):
        check_range(name, v, -(1 << 63), (1 << 63) - 1)
    check_range("post_only", int(post_only), -(1 << 63), (1 << 63) - 1)
    check_range("price", price, -(1 << 63), (1 << 63) - 1)
    check_range("qty", qty, -(1 << 63), (1 << 63) - 1)


def events_to_array(events: list[Event]) -> np.ndarray[Any, Any]:
    """Pack Event objects into an EVENT_DTYPE array (inverse of `events_from_array`)."""
    out = np.zeros(len(events), dtype=EVENT_DTYPE)
    for i, e in enumerate(events):
        out[i] = (
            e.type,
            e.side,
            e.reason,
            e.symbol_id,
            e.cmd_index,
            e.order_count,
            e.order_id,
            e.account_id,
            e.price,
            e.qty,
            e.leaves_qty,
            e.maker_order_id,
            e.maker_account_id,
            e.maker_leaves_qty,
            e.trade_id,
            e.book_seq,
            e.ts,
        )
    return out
