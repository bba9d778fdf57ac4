"""The matching engine from Python: a typed facade over the C++ core (`hft._core`).

`Engine` wraps `hft._core.Core`: command methods return `list[Event]`, queries return
the dataclasses of `hft.engine.types`, `process` runs a whole COMMAND_DTYPE array in one
call and returns an EVENT_DTYPE array. `ReferenceEngine` is the pure-Python book with
the same methods and semantics (docs/engine-semantics.md). Prices are integer ticks,
quantities integer lots, timestamps integer nanoseconds.

    from hft.engine import Engine, Instrument, Side, OrderType, TimeInForce
    eng = Engine()
    eng.add_instrument(Instrument(1, "BTC-USD"))
    eng.submit(1, 7, 1, Side.SELL, OrderType.LIMIT, TimeInForce.GTC, price=100, qty=5)
    events = eng.submit(2, 8, 1, Side.BUY, OrderType.LIMIT, TimeInForce.IOC, 100, 2)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from hft.engine.reference import ReferenceEngine, events_to_array
from hft.engine.types import (
    COMMAND_DTYPE,
    EVENT_DTYPE,
    EVENT_FIELDS,
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
    events_from_array,
    events_from_bytes,
)

if TYPE_CHECKING:
    from hft._core import Core

__all__ = [
    "COMMAND_DTYPE",
    "EVENT_DTYPE",
    "EVENT_FIELDS",
    "CancelReason",
    "CommandKind",
    "CoreUnavailableError",
    "Depth",
    "Engine",
    "Event",
    "EventType",
    "Instrument",
    "InstrumentStatus",
    "Level",
    "OrderState",
    "OrderType",
    "ReferenceEngine",
    "RejectReason",
    "Side",
    "StpMode",
    "TimeInForce",
    "core_available",
    "events_from_array",
    "events_from_bytes",
    "events_to_array",
]

_U64 = (1 << 64) - 1
_U32 = (1 << 32) - 1
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


class CoreUnavailableError(ImportError):
    """The C++ extension `hft._core` is not built or cannot be loaded."""


def _load_core() -> Any:
    try:
        from hft import _core
    except ImportError as exc:
        raise CoreUnavailableError(
            "the C++ core hft._core is not available (build it with `make build`): " + str(exc)
        ) from exc
    return _core


def core_available() -> bool:
    """True when the C++ extension can be imported."""
    try:
        _load_core()
    except CoreUnavailableError:
        return False
    return True


def _order_state(t: tuple[int, ...]) -> OrderState:
    oid, acc, sym, side, tif, price, qty, leaves, filled, post_only, stp, ts = t
    return OrderState(
        order_id=oid,
        account_id=acc,
        symbol_id=sym,
        side=Side(side),
        tif=TimeInForce(tif),
        price=price,
        qty=qty,
        leaves_qty=leaves,
        filled_qty=filled,
        post_only=bool(post_only),
        stp=StpMode(stp),
        ts=ts,
    )


class Engine:
    """The C++ matching core with a typed Python interface.

    Raises CoreUnavailableError when the extension is not built. Command arguments that
    are not integers or lie outside their wire ranges (ids u64, symbol u32, enum fields,
    prices, quantities and ts i64) raise ValueError and change nothing; values inside
    those ranges are checked by the core and rejected with events (an enum value that is
    no byte is rejected as invalid, like any other unknown value).
    """

    __slots__ = ("_decimals", "core")

    def __init__(self, max_orders: int = 1 << 20, default_max_open_orders: int = 0) -> None:
        check_range("max_orders", max_orders, 1, _U32)
        check_range("default_max_open_orders", default_max_open_orders, 0, _U32)
        self.core: Core = _load_core().Core(max_orders, default_max_open_orders)
        # Decimal tick/lot sizes are configuration for the edges; the core keeps integers.
        self._decimals: dict[int, tuple[str, str]] = {}

    # ------------------------------------------------------------------ helpers

    def _take(self, n: int) -> list[Event]:
        raw = self.core.take_events()
        if n == 0:
            return []
        # Only the last n records are this call's (raw `.core` use may have left others).
        return events_from_bytes(raw.data[len(raw) - n * EVENT_DTYPE.itemsize :])

    # ------------------------------------------------------------------ configuration

    def add_instrument(self, instrument: Instrument) -> None:
        """Add an instrument; ValueError on a duplicate id/symbol or an invalid value."""
        i = instrument
        check_range("symbol_id", i.symbol_id, 1, _U32)
        if not isinstance(i.symbol, str) or not i.symbol:
            raise ValueError("symbol must be a non-empty string")
        check_range("min_qty", i.min_qty, 1, _I64_MAX)
        check_range("max_qty", i.max_qty, i.min_qty, _I64_MAX)
        check_range("band_bps", i.band_bps, 0, _I64_MAX)
        check_range("reference_price", i.reference_price, 0, _I64_MAX)
        check_range("status", int(i.status), 1, 2)
        self.core.add_instrument(
            i.symbol_id,
            i.symbol,
            i.min_qty,
            i.max_qty,
            i.band_bps,
            i.reference_price,
            int(i.status),
        )
        self._decimals[i.symbol_id] = (i.tick_size, i.lot_size)

    # ------------------------------------------------------------------ commands

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
        args = (order_id, account_id, symbol_id, side, type, tif, price, qty, int(post_only), stp)
        try:
            n = self.core.submit(*args, ts)
        except (TypeError, OverflowError):
            _check_args(
                [
                    ("order_id", order_id, 0, _U64),
                    ("account_id", account_id, 0, _U64),
                    ("symbol_id", symbol_id, 0, _U32),
                    ("side", side, _I64_MIN, _I64_MAX),
                    ("type", type, _I64_MIN, _I64_MAX),
                    ("tif", tif, _I64_MIN, _I64_MAX),
                    ("price", price, _I64_MIN, _I64_MAX),
                    ("qty", qty, _I64_MIN, _I64_MAX),
                    ("post_only", int(post_only), _I64_MIN, _I64_MAX),
                    ("stp", stp, _I64_MIN, _I64_MAX),
                    ("ts", ts, _I64_MIN, _I64_MAX),
                ]
            )
            raise
        return self._take(n)

    def cancel(self, order_id: int, account_id: int, *, ts: int = 0) -> list[Event]:
        """Cancel a live order of `account_id`; CANCEL_REJECTED(UNKNOWN_ORDER) otherwise."""
        try:
            n = self.core.cancel(order_id, account_id, ts)
        except (TypeError, OverflowError):
            _check_args(
                [
                    ("order_id", order_id, 0, _U64),
                    ("account_id", account_id, 0, _U64),
                    ("ts", ts, _I64_MIN, _I64_MAX),
                ]
            )
            raise
        return self._take(n)

    def amend(
        self, order_id: int, account_id: int, price: int, qty: int, *, ts: int = 0
    ) -> list[Event]:
        """Amend a live order: new price (ticks) and new leaves quantity (lots)."""
        try:
            n = self.core.amend(order_id, account_id, price, qty, ts)
        except (TypeError, OverflowError):
            _check_args(
                [
                    ("order_id", order_id, 0, _U64),
                    ("account_id", account_id, 0, _U64),
                    ("price", price, _I64_MIN, _I64_MAX),
                    ("qty", qty, _I64_MIN, _I64_MAX),
                    ("ts", ts, _I64_MIN, _I64_MAX),
                ]
            )
            raise
        return self._take(n)

    def cancel_all(self, account_id: int, symbol_id: int = 0, *, ts: int = 0) -> list[Event]:
        """Cancel every live order of the account (on one symbol, or all when 0)."""
        check_range("account_id", account_id, 0, _U64)
        check_range("symbol_id", symbol_id, 0, _U32)
        check_range("ts", ts, _I64_MIN, _I64_MAX)
        return self._take(self.core.cancel_all(account_id, symbol_id, ts))

    def set_kill_switch(self, account_id: int, enabled: bool, *, ts: int = 0) -> list[Event]:
        """Turn the account's kill switch on (cancelling its live orders) or off."""
        check_range("account_id", account_id, 0, _U64)
        check_range("ts", ts, _I64_MIN, _I64_MAX)
        return self._take(self.core.set_kill_switch(account_id, bool(enabled), ts))

    def set_max_open_orders(self, account_id: int, n: int, *, ts: int = 0) -> list[Event]:
        """Set the account's max live GTC/DAY orders (0 = unlimited); ValueError if n < 0."""
        check_range("account_id", account_id, 0, _U64)
        check_range("n", n, 0, _I64_MAX)
        check_range("ts", ts, _I64_MIN, _I64_MAX)
        return self._take(self.core.set_max_open_orders(account_id, n, ts))

    def set_instrument_status(self, symbol_id: int, status: int, *, ts: int = 0) -> list[Event]:
        """Halt or resume a symbol; an unknown symbol or status is ignored (no event)."""
        check_range("symbol_id", symbol_id, 0, _U32)
        check_range("status", int(status), _I64_MIN, _I64_MAX)
        check_range("ts", ts, _I64_MIN, _I64_MAX)
        return self._take(self.core.set_instrument_status(symbol_id, int(status), ts))

    def expire_day(self, symbol_id: int = 0, *, ts: int = 0) -> list[Event]:
        """Expire every live DAY order (of one symbol, or of all when 0)."""
        check_range("symbol_id", symbol_id, 0, _U32)
        check_range("ts", ts, _I64_MIN, _I64_MAX)
        return self._take(self.core.expire_day(symbol_id, ts))

    def process(self, commands: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """Run a 1-D COMMAND_DTYPE array; returns the EVENT_DTYPE array (with cmd_index).

        Raises ValueError when the array is not 1-D or not of COMMAND_DTYPE.
        """
        if not isinstance(commands, np.ndarray) or commands.dtype != COMMAND_DTYPE:
            raise ValueError("commands must be a numpy array of COMMAND_DTYPE")
        if commands.ndim != 1:
            raise ValueError("commands must be a 1-D array")
        raw = np.ascontiguousarray(commands).view(np.uint8)
        self.core.clear_events()
        self.core.process(raw.data)
        return self.core.take_events().view(EVENT_DTYPE)

    # ------------------------------------------------------------------ queries

    def best_bid(self, symbol_id: int) -> tuple[int, int] | None:
        """(price ticks, total qty lots) of the best bid, or None."""
        return self.core.best_bid(symbol_id)

    def best_ask(self, symbol_id: int) -> tuple[int, int] | None:
        """(price ticks, total qty lots) of the best ask, or None."""
        return self.core.best_ask(symbol_id)

    def depth(self, symbol_id: int, levels: int = 20) -> Depth:
        """L2 depth, best first on both sides; empty for an unknown symbol."""
        check_range("levels", levels, 0, _U32)
        bids, asks = self.core.depth(symbol_id, levels)
        return Depth(symbol_id, [Level(*b) for b in bids], [Level(*a) for a in asks])

    def order(self, order_id: int) -> OrderState | None:
        """A live order's state, or None."""
        check_range("order_id", order_id, 0, _U64)
        t = self.core.order(order_id)
        return None if t is None else _order_state(t)

    def open_orders(self, account_id: int) -> list[OrderState]:
        """The account's live orders in ascending order id."""
        check_range("account_id", account_id, 0, _U64)
        return [_order_state(t) for t in self.core.open_orders(account_id)]

    def instruments(self) -> list[Instrument]:
        """Every instrument in ascending symbol id, with its current reference price."""
        out = []
        for sid, sym, mn, mx, band, ref, status in self.core.instruments():
            tick, lot = self._decimals.get(sid, ("0.01", "1"))
            out.append(Instrument(sid, sym, mn, mx, band, ref, InstrumentStatus(status), tick, lot))
        return out

    def state_hash(self) -> int:
        """The 64-bit state hash of docs/engine-semantics.md."""
        return self.core.state_hash()

    def live_orders(self) -> int:
        """Number of resting orders in the whole engine."""
        return self.core.live_orders()

    def snapshot(self) -> bytes:
        """The core's whole state as bytes (the core's binary snapshot format)."""
        return self.core.snapshot()

    @classmethod
    def restore(
        cls,
        data: bytes | bytearray | memoryview,
        *,
        max_orders: int = 1 << 20,
        default_max_open_orders: int = 0,
        instruments: Iterable[Instrument] = (),
    ) -> Engine:
        """Build an engine from `snapshot()` bytes; ValueError on malformed data.

        `instruments` optionally re-attaches decimal tick/lot sizes (which the core does
        not store) by symbol id.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ValueError(f"snapshot must be bytes, got {type(data).__name__}")
        eng = cls(max_orders, default_max_open_orders)
        eng.core.restore(bytes(data))
        for i in instruments:
            eng._decimals[i.symbol_id] = (i.tick_size, i.lot_size)
        return eng


def _check_args(specs: list[tuple[str, Any, int, int]]) -> None:
    for name, value, low, high in specs:
        check_range(name, value, low, high)
