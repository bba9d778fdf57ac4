"""Value types shared by the C++ core facade and the reference book.

The numeric values of every enum and the layout of the two record dtypes are part of
the contract described in docs/engine-semantics.md: they are used by the batch path,
the journal and the gRPC mapping. Prices are integer ticks, quantities integer lots.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple

import numpy as np


class Side(IntEnum):
    BUY = 1
    SELL = 2


class OrderType(IntEnum):
    LIMIT = 1
    MARKET = 2


class TimeInForce(IntEnum):
    GTC = 1
    DAY = 2
    IOC = 3
    FOK = 4


class StpMode(IntEnum):
    CANCEL_MAKER = 0
    CANCEL_TAKER = 1
    CANCEL_BOTH = 2
    NONE = 3


class InstrumentStatus(IntEnum):
    TRADING = 1
    HALTED = 2


class CommandKind(IntEnum):
    SUBMIT = 1
    CANCEL = 2
    AMEND = 3
    CANCEL_ALL = 4
    SET_KILL_SWITCH = 5
    SET_MAX_OPEN_ORDERS = 6
    SET_INSTRUMENT_STATUS = 7
    EXPIRE_DAY = 8


class EventType(IntEnum):
    ACCEPTED = 1
    REJECTED = 2
    TRADE = 3
    CANCELED = 4
    AMENDED = 5
    EXPIRED = 6
    CANCEL_REJECTED = 7
    AMEND_REJECTED = 8
    BOOK_CHANGE = 9


class RejectReason(IntEnum):
    NONE = 0
    UNKNOWN_SYMBOL = 1
    SYMBOL_HALTED = 2
    INVALID_SIDE = 3
    INVALID_TYPE = 4
    INVALID_TIME_IN_FORCE = 5
    INVALID_STP_MODE = 6
    INVALID_POST_ONLY = 7
    INVALID_QUANTITY = 8
    QUANTITY_OUT_OF_RANGE = 9
    PRICE_NOT_POSITIVE = 10
    PRICE_OUT_OF_BAND = 11
    POST_ONLY_WOULD_TAKE = 12
    FOK_CANNOT_FILL = 13
    MARKET_NO_LIQUIDITY = 14
    DUPLICATE_ORDER_ID = 15
    MAX_OPEN_ORDERS = 16
    KILL_SWITCH = 17
    UNKNOWN_ORDER = 18
    BOOK_FULL = 19


class CancelReason(IntEnum):
    USER = 1
    IOC_REMAINDER = 2
    SELF_TRADE = 3
    KILL_SWITCH = 4


# One command of the batch path; mirrors `hft::Command` in core/include/hft/types.hpp.
COMMAND_DTYPE = np.dtype(
    [
        ("kind", "u1"),
        ("side", "u1"),
        ("type", "u1"),
        ("tif", "u1"),
        ("stp", "u1"),
        ("post_only", "u1"),
        ("_pad0", "u2"),
        ("symbol_id", "u4"),
        ("_pad1", "u4"),
        ("order_id", "u8"),
        ("account_id", "u8"),
        ("price", "i8"),
        ("qty", "i8"),
        ("ts", "i8"),
    ],
    align=True,
)

# One event; mirrors `hft::Event` in core/include/hft/types.hpp.
EVENT_DTYPE = np.dtype(
    [
        ("type", "u1"),
        ("side", "u1"),
        ("reason", "u2"),
        ("symbol_id", "u4"),
        ("cmd_index", "u4"),
        ("order_count", "u4"),
        ("order_id", "u8"),
        ("account_id", "u8"),
        ("price", "i8"),
        ("qty", "i8"),
        ("leaves_qty", "i8"),
        ("maker_order_id", "u8"),
        ("maker_account_id", "u8"),
        ("maker_leaves_qty", "i8"),
        ("trade_id", "u8"),
        ("book_seq", "u8"),
        ("ts", "i8"),
    ],
    align=True,
)

EVENT_FIELDS = tuple(n for n in EVENT_DTYPE.names or () if not n.startswith("_"))


class Event(NamedTuple):
    """One engine event; field meanings per type are in docs/engine-semantics.md.

    An immutable named tuple (fields in EVENT_DTYPE order): building one is several
    times cheaper than a frozen dataclass, and the per-call API builds one per event.
    """

    type: EventType
    side: int = 0
    reason: int = 0
    symbol_id: int = 0
    cmd_index: int = 0
    order_count: int = 0
    order_id: int = 0
    account_id: int = 0
    price: int = 0
    qty: int = 0
    leaves_qty: int = 0
    maker_order_id: int = 0
    maker_account_id: int = 0
    maker_leaves_qty: int = 0
    trade_id: int = 0
    book_seq: int = 0
    ts: int = 0

    @classmethod
    def from_row(cls, row: tuple[int, ...]) -> Event:
        """Build from a tuple in EVENT_DTYPE field order (as `ndarray.tolist()` yields)."""
        return cls(EventType(row[0]), *row[1:])


# EVENT_DTYPE as a struct format: unpacking raw bytes with it is several times faster
# than `ndarray.tolist()` on a structured array, which matters on the per-call path.
_EVENT_STRUCT = struct.Struct("<BBHIIIQQqqqQQqQQq")
assert _EVENT_STRUCT.size == EVENT_DTYPE.itemsize
_EVENT_TYPES = {int(t): t for t in EventType}


def events_from_bytes(data: bytes | bytearray | memoryview) -> list[Event]:
    """Convert raw EVENT_DTYPE records (little-endian bytes) into Event objects.

    Raises ValueError when the length is not a multiple of the record size or a record
    has an unknown event type.
    """
    if len(data) % _EVENT_STRUCT.size:
        raise ValueError(f"event buffer of {len(data)} bytes is not a multiple of the record size")
    try:
        return [Event(_EVENT_TYPES[r[0]], *r[1:]) for r in _EVENT_STRUCT.iter_unpack(data)]
    except KeyError as exc:
        raise ValueError(f"unknown event type {exc.args[0]}") from exc


def events_from_array(arr: np.ndarray) -> list[Event]:
    """Convert an EVENT_DTYPE array into Event objects."""
    if arr.dtype != EVENT_DTYPE:
        raise ValueError(f"expected an EVENT_DTYPE array, got {arr.dtype}")
    return events_from_bytes(np.ascontiguousarray(arr).tobytes())


@dataclass(frozen=True, slots=True)
class Instrument:
    """An instrument as the core sees it (integer ticks and lots).

    `tick_size` and `lot_size` are the decimal sizes of one tick and one lot, kept
    for the layers that convert; the core ignores them.
    """

    symbol_id: int
    symbol: str
    min_qty: int = 1
    max_qty: int = 1_000_000_000
    band_bps: int = 0
    reference_price: int = 0
    status: InstrumentStatus = InstrumentStatus.TRADING
    tick_size: str = "0.01"
    lot_size: str = "1"


@dataclass(frozen=True, slots=True)
class Level:
    price: int
    qty: int
    order_count: int


@dataclass(frozen=True, slots=True)
class Depth:
    symbol_id: int
    bids: list[Level] = field(default_factory=list)
    asks: list[Level] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class OrderState:
    """A live order. `qty` = filled + leaves; prices in ticks, quantities in lots."""

    order_id: int
    account_id: int
    symbol_id: int
    side: Side
    tif: TimeInForce
    price: int
    qty: int
    leaves_qty: int
    filled_qty: int
    post_only: bool
    stp: StpMode
    ts: int


def check_range(name: str, value: int, low: int, high: int) -> None:
    """Raise ValueError unless `value` is an int (not bool) within [low, high]."""
    if not isinstance(value, int | np.integer) or isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {type(value).__name__}")
    if not low <= int(value) <= high:
        raise ValueError(f"{name}={int(value)} outside [{low}, {high}]")
