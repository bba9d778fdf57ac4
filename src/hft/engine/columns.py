"""Columnar batch order entry (SubmitOrderColumns): wire codec and validation.

An `OrderColumns` request carries one packed array per order field. Its fixed-width
columns (ids, prices, quantities) are little-endian arrays on the wire and become numpy
arrays without parsing (`np.frombuffer`); the enum columns take one byte per order
when every value is below 128 (always, for valid values), otherwise they are decoded as
varints column-wise. Nothing here builds a Python object per order.

The decoder reads the wire format itself for speed, and falls back to the generated
protobuf parser for the encodings a generic encoder may also produce (unpacked repeated
fields, field groups), so every valid `OrderColumns` message is accepted. Both the
request decoder and the response encoder are checked against the generated classes in
tests/unit/engine/service/test_columns.py.

Validation is the row form's (hft.engine.mapping.batch_commands): a request that
cannot be commands raises `InvalidRequestError` naming `orders[i].field`, and an
unknown (but non-empty) symbol becomes symbol id 0, which the core rejects with
UNKNOWN_SYMBOL, exactly as in SubmitOrders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError

from hft.engine.config import InstrumentSpec
from hft.engine.mapping import InvalidRequestError
from hft.engine.pb import engine_pb2 as pb
from hft.engine.types import COMMAND_DTYPE, EVENT_DTYPE, CommandKind, EventType

Array = np.ndarray[Any, Any]

EVENT_RECORD_SIZE = EVENT_DTYPE.itemsize

# OrderColumns field numbers.
F_SYMBOLS, F_SYMBOL_INDEX, F_ORDER_ID, F_ACCOUNT_ID, F_SIDE, F_TYPE, F_TIF = 1, 2, 3, 4, 5, 6, 7
F_PRICE, F_QUANTITY, F_POST_ONLY, F_STP = 8, 9, 10, 11
# OrderColumnsResponse field numbers.
R_FIRST_SEQ, R_TS, R_ACCEPTED, R_REJECT, R_STATUS, R_FILLED, R_LEAVES, R_CANCEL = range(1, 9)
R_EVENTS, R_RECORD_SIZE, R_TICKS, R_LOTS = 9, 10, 11, 12

_WT_VARINT, _WT_I64, _WT_LEN, _WT_I32 = 0, 1, 2, 5

_STATUS_NEW = pb.ORDER_STATUS_NEW
_STATUS_PARTIAL = pb.ORDER_STATUS_PARTIALLY_FILLED
_STATUS_FILLED = pb.ORDER_STATUS_FILLED
_STATUS_CANCELED = pb.ORDER_STATUS_CANCELED
_STATUS_REJECTED = pb.ORDER_STATUS_REJECTED

# Request columns: name, field number, kind ("u64"/"i64" fixed, "u32"/"i32"/"bool" varint).
_REQUEST_COLUMNS: tuple[tuple[str, int, str], ...] = (
    ("symbol_index", F_SYMBOL_INDEX, "u32"),
    ("order_id", F_ORDER_ID, "u64"),
    ("account_id", F_ACCOUNT_ID, "u64"),
    ("side", F_SIDE, "i32"),
    ("type", F_TYPE, "i32"),
    ("time_in_force", F_TIF, "i32"),
    ("price", F_PRICE, "i64"),
    ("quantity", F_QUANTITY, "i64"),
    ("post_only", F_POST_ONLY, "bool"),
    ("stp_mode", F_STP, "i32"),
)
_OPTIONAL = frozenset({"post_only", "stp_mode"})
_FIXED_DTYPES = {"u64": np.dtype("<u8"), "i64": np.dtype("<i8")}
_VARINT_DTYPES = {"u32": np.dtype(np.uint32), "i32": np.dtype(np.int32), "bool": np.dtype(bool)}


# ---------------------------------------------------------------------- wire primitives


class _MalformedError(Exception):
    """The bytes are not a protobuf message of the expected shape."""


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    end = len(data)
    while True:
        if pos >= end or shift > 63:
            raise _MalformedError("truncated or overlong varint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _varint_bytes(v: int) -> bytes:
    v &= (1 << 64) - 1
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _walk(data: bytes, max_fields: int) -> dict[int, list[bytes]] | None:
    """Length-delimited fields by number, in order; None when a field uses another wire
    type (an unpacked repeated scalar or a scalar field): the caller then uses the
    generated parser. Unknown fields are skipped; raises _MalformedError."""
    out: dict[int, list[bytes]] = {}
    pos = 0
    end = len(data)
    count = 0
    other = False
    while pos < end:
        key, pos = _read_varint(data, pos)
        field, wt = key >> 3, key & 7
        if field == 0:
            raise _MalformedError("field number 0")
        count += 1
        if count > max_fields:
            raise _MalformedError(f"more than {max_fields} fields")
        if wt == _WT_LEN:
            n, pos = _read_varint(data, pos)
            if pos + n > end:
                raise _MalformedError("truncated field")
            out.setdefault(field, []).append(data[pos : pos + n])
            pos += n
        elif wt == _WT_VARINT:
            _, pos = _read_varint(data, pos)
            other = True
        elif wt == _WT_I64:
            pos += 8
            other = True
        elif wt == _WT_I32:
            pos += 4
            other = True
        else:
            # Groups (wire types 3/4) are legal but never written by proto3 encoders.
            return None
        if pos > end:
            raise _MalformedError("truncated field")
    return None if other else out


def decode_varints(data: bytes) -> Array:
    """Packed varints as uint64 (vectorised; raises _MalformedError)."""
    b = np.frombuffer(data, dtype=np.uint8)
    if len(b) == 0:
        return np.zeros(0, dtype=np.uint64)
    cont = b >= 0x80
    if not cont.any():
        return b.astype(np.uint64)
    if cont[-1]:
        raise _MalformedError("truncated varint")
    ends = np.flatnonzero(~cont)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lens = ends - starts + 1
    if int(lens.max()) > 10:
        raise _MalformedError("overlong varint")
    pos = (np.arange(len(b)) - np.repeat(starts, lens)).astype(np.uint64)
    vals = (b & np.uint8(0x7F)).astype(np.uint64) << (pos * np.uint64(7))
    out: Array = np.bitwise_or.reduceat(vals, starts)
    return out


def encode_varints(values: Array) -> bytes:
    """Packed varint encoding of integers (negative ones as their 64-bit two's complement,
    like protobuf's int32/int64/enum fields)."""
    v = np.ascontiguousarray(values)
    if v.dtype == bool:
        return v.astype(np.uint8).tobytes()
    u = v.astype(np.int64, copy=False).view(np.uint64) if v.dtype.kind == "i" else v
    u = u.astype(np.uint64, copy=False)
    if len(u) == 0:
        return b""
    if int(u.max()) < 0x80:
        return u.astype(np.uint8).tobytes()
    thresholds = np.array([1 << (7 * k) for k in range(1, 10)], dtype=np.uint64)
    nbytes = 1 + (u[:, None] >= thresholds[None, :]).sum(axis=1)
    shifts = np.arange(10, dtype=np.uint64) * np.uint64(7)
    body = ((u[:, None] >> shifts[None, :]) & np.uint64(0x7F)).astype(np.uint8)
    k = np.arange(10)[None, :]
    body |= (k < (nbytes[:, None] - 1)).astype(np.uint8) << np.uint8(7)
    return bytes(body[k < nbytes[:, None]].tobytes())


def _len_field(field: int, payload: bytes) -> bytes:
    return _varint_bytes((field << 3) | _WT_LEN) + _varint_bytes(len(payload)) + payload


def _varint_field(field: int, value: int) -> bytes:
    if value == 0:
        return b""
    return _varint_bytes(field << 3) + _varint_bytes(value)


def _packed(field: int, payload: bytes) -> bytes:
    return _len_field(field, payload) if payload else b""


def _strings(field: int, values: Sequence[str]) -> bytes:
    return b"".join(_len_field(field, s.encode()) for s in values)


# ---------------------------------------------------------------------- request


@dataclass(slots=True)
class OrderColumnsData:
    """A decoded OrderColumns request: the symbol table and one array per column (the
    optional post_only and stp_mode may be empty)."""

    symbols: list[str]
    columns: dict[str, Array]


def _decode_generic(data: bytes) -> OrderColumnsData:
    try:
        msg = pb.OrderColumns.FromString(data)
    except DecodeError as exc:
        raise InvalidRequestError(f"malformed OrderColumns message: {exc}") from None
    cols: dict[str, Array] = {}
    for name, _field, kind in _REQUEST_COLUMNS:
        values = getattr(msg, name)
        dtype = _FIXED_DTYPES.get(kind) or _VARINT_DTYPES[kind]
        cols[name] = np.fromiter(values, dtype=dtype, count=len(values))
    return OrderColumnsData(list(msg.symbols), cols)


def decode_order_columns(data: bytes, max_fields: int = 1 << 20) -> OrderColumnsData:
    """Decode an OrderColumns message (wire bytes).

    Raises InvalidRequestError for bytes that are not such a message (including a symbol
    that is not UTF-8 and more than `max_fields` top-level fields).
    """
    try:
        fields = _walk(data, max_fields)
    except _MalformedError as exc:
        raise InvalidRequestError(f"malformed OrderColumns message: {exc}") from None
    if fields is None:
        return _decode_generic(data)
    try:
        symbols = [s.decode() for s in fields.get(F_SYMBOLS, ())]
    except UnicodeDecodeError:
        raise InvalidRequestError("symbols: not valid UTF-8") from None
    cols: dict[str, Array] = {}
    try:
        for name, field, kind in _REQUEST_COLUMNS:
            chunks = fields.get(field, ())
            raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            fixed = _FIXED_DTYPES.get(kind)
            if fixed is not None:
                if len(raw) % 8:
                    raise _MalformedError(f"{name}: length {len(raw)} is not a multiple of 8")
                cols[name] = np.frombuffer(raw, dtype=fixed)
                continue
            v = decode_varints(raw)
            if kind == "bool":
                cols[name] = v != 0
            else:
                # Like protobuf: 32-bit fields keep the low 32 bits of the varint.
                cols[name] = v.astype(np.uint32).view(_VARINT_DTYPES[kind])
    except _MalformedError as exc:
        raise InvalidRequestError(f"malformed OrderColumns message: {exc}") from None
    return OrderColumnsData(symbols, cols)


def _enum_error(name: str, value: int, where: str) -> InvalidRequestError:
    if value == 0:
        return InvalidRequestError(f"{where}{name}: required")
    return InvalidRequestError(f"{where}{name}: unknown value {value}")


def to_commands(
    req: OrderColumnsData, symbols: Mapping[str, InstrumentSpec], max_orders: int
) -> Array:
    """SUBMIT commands (COMMAND_DTYPE, ts 0) of a decoded request.

    Raises InvalidRequestError: column lengths that differ, more than `max_orders`
    orders, and per order (the first bad one, in the row form's order of checks) a zero
    order_id/account_id, a symbol index outside the table or an empty symbol name, an
    unspecified or unknown side/type/time_in_force, an unknown stp_mode.
    """
    cols = req.columns
    n = len(cols["order_id"])
    for name, _field, _kind in _REQUEST_COLUMNS:
        got = len(cols[name])
        if got != n and not (got == 0 and name in _OPTIONAL):
            raise InvalidRequestError(
                f"{name}: {got} values for {n} orders (every column needs one per order_id)"
            )
    if n > max_orders:
        raise InvalidRequestError(f"orders: {n} orders in one batch, at most {max_orders} allowed")
    table = req.symbols
    nsym = len(table)
    sid_table = np.array(
        [symbols[s].symbol_id if s in symbols else 0 for s in table] + [0], dtype=np.uint32
    )
    empty_name = np.array([not s for s in table] + [True], dtype=bool)
    oid = cols["order_id"]
    acc = cols["account_id"]
    sidx = cols["symbol_index"]
    side = cols["side"]
    otype = cols["type"]
    tif = cols["time_in_force"]
    stp = cols["stp_mode"]
    post = cols["post_only"]
    # Index nsym stands for "outside the table" in the lookups below.
    sidx_c = np.minimum(sidx, nsym).astype(np.intp)
    checks: list[tuple[str, Array]] = [
        ("order_id", oid == 0),
        ("account_id", acc == 0),
        ("symbol", empty_name[sidx_c]),
        ("side", (side < 1) | (side > 2)),
        ("type", (otype < 1) | (otype > 2)),
        ("time_in_force", (tif < 1) | (tif > 4)),
    ]
    if len(stp):
        checks.append(("stp_mode", (stp < 0) | (stp > 3)))
    bad = checks[0][1]
    for _name, mask in checks[1:]:
        bad = bad | mask
    if n and bad.any():
        i = int(np.argmax(bad))
        where = f"orders[{i}]."
        for name, mask in checks:
            if not mask[i]:
                continue
            if name in ("order_id", "account_id"):
                raise InvalidRequestError(f"{where}{name}: must be non-zero")
            if name == "symbol":
                k = int(sidx[i])
                if k >= nsym:
                    raise InvalidRequestError(
                        f"{where}symbol_index: {k} is outside the symbol table ({nsym} entries)"
                    )
                raise InvalidRequestError(f"{where}symbol: required (symbols[{k}] is empty)")
            if name == "stp_mode":
                raise InvalidRequestError(f"{where}stp_mode: unknown value {int(stp[i])}")
            value = int({"side": side, "type": otype, "time_in_force": tif}[name][i])
            raise _enum_error(name, value, where)
    cmds = np.zeros(n, dtype=COMMAND_DTYPE)
    cmds["kind"] = CommandKind.SUBMIT
    cmds["side"] = side
    cmds["type"] = otype
    cmds["tif"] = tif
    if len(stp):
        cmds["stp"] = stp
    if len(post):
        cmds["post_only"] = post
    cmds["symbol_id"] = sid_table[sidx_c]
    cmds["order_id"] = oid
    cmds["account_id"] = acc
    cmds["price"] = cols["price"]
    cmds["qty"] = cols["quantity"]
    return cmds


def encode_order_columns(
    symbols: Sequence[str],
    symbol_index: Any,
    order_id: Any,
    account_id: Any,
    side: Any,
    type: Any,
    time_in_force: Any,
    price: Any,
    quantity: Any,
    post_only: Any = None,
    stp_mode: Any = None,
) -> bytes:
    """OrderColumns wire bytes from array-likes (one entry per order; prices in ticks,
    quantities in lots, enums as proto numbers; None = the column is left empty).

    Raises ValueError for values that do not fit the field types (negative ids, ...).
    """

    def fixed(name: str, values: Any, dtype: str) -> bytes:
        a = np.asarray(values)
        if a.dtype.kind not in "iub":
            raise ValueError(f"{name}: integers required, got {a.dtype}")
        if dtype == "<u8" and a.dtype.kind == "i" and len(a) and int(a.min()) < 0:
            raise ValueError(f"{name}: negative values")
        return np.ascontiguousarray(a, dtype=dtype).tobytes()

    def varint(name: str, values: Any) -> bytes:
        a = np.asarray(values)
        if a.dtype.kind not in "iub":
            raise ValueError(f"{name}: integers required, got {a.dtype}")
        return encode_varints(a)

    idx = np.asarray(symbol_index)
    if len(idx) and idx.dtype.kind == "i" and int(idx.min()) < 0:
        raise ValueError("symbol_index: negative values")
    parts = [
        _strings(F_SYMBOLS, symbols),
        _packed(F_SYMBOL_INDEX, varint("symbol_index", idx)),
        _packed(F_ORDER_ID, fixed("order_id", order_id, "<u8")),
        _packed(F_ACCOUNT_ID, fixed("account_id", account_id, "<u8")),
        _packed(F_SIDE, varint("side", side)),
        _packed(F_TYPE, varint("type", type)),
        _packed(F_TIF, varint("time_in_force", time_in_force)),
        _packed(F_PRICE, fixed("price", price, "<i8")),
        _packed(F_QUANTITY, fixed("quantity", quantity, "<i8")),
    ]
    if post_only is not None:
        parts.append(_packed(F_POST_ONLY, np.asarray(post_only, dtype=bool).tobytes()))
    if stp_mode is not None:
        parts.append(_packed(F_STP, varint("stp_mode", stp_mode)))
    return b"".join(parts)


_REQUIRED_INPUT = ("order_id", "account_id", "side", "type", "time_in_force", "price", "quantity")


def request_from(orders: Any) -> tuple[bytes, list[str], Array, Array]:
    """Encode orders given as a mapping of column arrays or a numpy structured array.

    Columns (one entry per order): order_id, account_id, side, type, time_in_force, price
    (ticks), quantity (lots), optional post_only and stp_mode, and the symbol either as
    `symbol` (one name per order) or as `symbols` (a table) plus `symbol_index`.
    Returns (request bytes, symbol table, symbol index per order, order ids as uint64).
    Raises ValueError for a missing column or values that do not fit the field types.
    """
    names = set(orders.dtype.names or ()) if isinstance(orders, np.ndarray) else set(orders)
    missing = [c for c in _REQUIRED_INPUT if c not in names]
    if missing:
        raise ValueError(f"missing columns: {', '.join(missing)}")
    if "symbol" in names:
        per_order = np.asarray(orders["symbol"])
        if per_order.dtype.kind == "S":
            per_order = np.char.decode(per_order)
        table, inverse = np.unique(per_order.astype(str), return_inverse=True)
        symbols = [str(x) for x in table.tolist()]
        index = inverse.reshape(-1).astype(np.uint32)
    elif "symbols" in names and "symbol_index" in names:
        symbols = [str(x) for x in orders["symbols"]]
        index = np.asarray(orders["symbol_index"])
    else:
        raise ValueError("missing columns: symbol (or symbols and symbol_index)")
    order_id = np.asarray(orders["order_id"])
    data = encode_order_columns(
        symbols,
        index,
        order_id,
        orders["account_id"],
        orders["side"],
        orders["type"],
        orders["time_in_force"],
        orders["price"],
        orders["quantity"],
        orders["post_only"] if "post_only" in names else None,
        orders["stp_mode"] if "stp_mode" in names else None,
    )
    return data, symbols, index, order_id.astype(np.uint64)


# ---------------------------------------------------------------------- response


def order_outcomes(order_ids: Array, events: Array) -> dict[str, Array]:
    """Per-order answer columns of n SUBMIT commands from their execution events.

    `events` are EVENT_DTYPE records without BOOK_CHANGE, cmd_index 0..n-1 ascending.
    Returns accepted, reject_reason, status, filled, leaves, cancel_reason (length n),
    computed as hft.engine.mapping.order_response does per order.
    """
    n = len(order_ids)
    ne = len(events)
    ci = events["cmd_index"].astype(np.intp)
    et = events["type"]
    reason = events["reason"].astype(np.int64)
    pos = np.arange(ne)
    own = events["order_id"] == order_ids[ci] if ne else np.zeros(0, dtype=bool)
    accepted = np.zeros(n, dtype=bool)
    accepted[ci[own & (et == EventType.ACCEPTED)]] = True
    rejected = np.zeros(n, dtype=bool)
    rej = own & (et == EventType.REJECTED)
    rejected[ci[rej]] = True
    reject_reason = np.zeros(n, dtype=np.int64)
    reject_reason[ci[rej]] = reason[rej]
    bounds = np.searchsorted(ci, np.arange(n + 1), side="left")
    tr = own & (et == EventType.TRADE)
    traded = np.zeros(ne + 1, dtype=np.int64)
    np.cumsum(np.where(tr, events["qty"], 0), out=traded[1:])
    filled = traded[bounds[1:]] - traded[bounds[:-1]]
    last_own = np.full(n, -1, dtype=np.int64)
    own_ci = ci[own]
    if len(own_ci):
        # Events are in command order: a command's last own event is where the next
        # own event belongs to another command.
        last = np.append(own_ci[1:] != own_ci[:-1], True)
        last_own[own_ci[last]] = pos[own][last]
    has_own = last_own >= 0
    lo = np.where(has_own, last_own, 0)
    last_type = np.where(has_own, et[lo], 0) if ne else np.zeros(n, dtype=np.int64)
    canceled = has_own & (last_type == EventType.CANCELED)
    leaves = (
        np.where(has_own & ~canceled & ~rejected, events["leaves_qty"][lo], 0)
        if ne
        else (np.zeros(n, dtype=np.int64))
    )
    cancel_reason = np.where(canceled, reason[lo], 0) if ne else np.zeros(n, dtype=np.int64)
    status = np.select(
        [rejected, canceled, leaves == 0, filled > 0],
        [_STATUS_REJECTED, _STATUS_CANCELED, _STATUS_FILLED, _STATUS_PARTIAL],
        _STATUS_NEW,
    )
    return {
        "accepted": accepted,
        "reject_reason": reject_reason,
        "status": status,
        "filled": filled,
        "leaves": leaves,
        "cancel_reason": cancel_reason,
    }


def wire_events(events: Array) -> Array:
    """Execution events as OrderColumnsResponse records: `reason` kept only where the
    message form has it (reject or cancel reason), the reserved word zeroed."""
    words = (
        np.ascontiguousarray(events)
        .view(np.uint64)
        .reshape(len(events), EVENT_RECORD_SIZE // 8)
        .copy()
    )
    # Little-endian word 0 = type | side << 8 | reason << 16 | symbol_id << 32;
    # word 1 = cmd_index | order_count << 32.
    et = words[:, 0] & np.uint64(0xFF)
    keep = (
        (et == EventType.REJECTED)
        | (et == EventType.CANCEL_REJECTED)
        | (et == EventType.AMEND_REJECTED)
        | (et == EventType.CANCELED)
    )
    w0 = words[:, 0]
    words[:, 0] = np.where(keep, w0, w0 & np.uint64(0xFFFFFFFF0000FFFF))
    words[:, 1] &= np.uint64(0xFFFFFFFF)
    out: Array = words.view(EVENT_DTYPE).reshape(-1)
    return out


def encode_order_columns_response(
    first_seq: int,
    ts: int,
    order_ids: Array,
    events: Array,
    tick_sizes: Sequence[str],
    lot_sizes: Sequence[str],
) -> bytes:
    """OrderColumnsResponse bytes for n SUBMIT commands sequenced from `first_seq`.

    `events`: the commands' execution events (EVENT_DTYPE, no BOOK_CHANGE, cmd_index =
    the order's position, ascending); `tick_sizes`/`lot_sizes` per request symbol.
    """
    o = order_outcomes(order_ids, events)
    recs = wire_events(events)
    # Enum and bool values are below 128: their packed varints are one byte each.
    parts = [
        _varint_field(R_FIRST_SEQ, first_seq),
        _varint_field(R_TS, ts),
        _packed(R_ACCEPTED, o["accepted"].astype(np.uint8).tobytes()),
        _packed(R_REJECT, o["reject_reason"].astype(np.uint8).tobytes()),
        _packed(R_STATUS, o["status"].astype(np.uint8).tobytes()),
        _packed(R_FILLED, o["filled"].astype("<i8").tobytes()),
        _packed(R_LEAVES, o["leaves"].astype("<i8").tobytes()),
        _packed(R_CANCEL, o["cancel_reason"].astype(np.uint8).tobytes()),
        _packed(R_EVENTS, recs.tobytes()),
        _varint_field(R_RECORD_SIZE, EVENT_RECORD_SIZE),
        _strings(R_TICKS, tick_sizes),
        _strings(R_LOTS, lot_sizes),
    ]
    return b"".join(parts)


@dataclass(slots=True)
class ColumnsAnswer:
    """A decoded OrderColumnsResponse (see the proto for the meaning of each column)."""

    first_sequence: int
    timestamp_ns: int
    accepted: Array  # bool
    reject_reason: Array  # int32 (RejectReason)
    status: Array  # int32 (OrderStatus)
    filled_quantity: Array  # int64 lots
    leaves_quantity: Array  # int64 lots
    cancel_reason: Array  # int32 (CancelReason)
    events: Array  # EVENT_DTYPE; cmd_index = order index
    tick_sizes: list[str]
    lot_sizes: list[str]


def _answer_generic(data: bytes) -> ColumnsAnswer:
    msg = pb.OrderColumnsResponse.FromString(data)
    size = msg.event_record_size or EVENT_RECORD_SIZE
    return ColumnsAnswer(
        msg.first_sequence,
        msg.timestamp_ns,
        np.array(msg.accepted, dtype=bool),
        np.array(msg.reject_reason, dtype=np.int32),
        np.array(msg.status, dtype=np.int32),
        np.array(msg.filled_quantity, dtype=np.int64),
        np.array(msg.leaves_quantity, dtype=np.int64),
        np.array(msg.cancel_reason, dtype=np.int32),
        _event_records(msg.events, size),
        list(msg.tick_sizes),
        list(msg.lot_sizes),
    )


def _event_records(raw: bytes, size: int) -> Array:
    if size != EVENT_RECORD_SIZE:
        raise ValueError(f"event records of {size} bytes; this client reads {EVENT_RECORD_SIZE}")
    if len(raw) % size:
        raise ValueError(f"events: {len(raw)} bytes is not a multiple of {size}")
    return np.frombuffer(raw, dtype=EVENT_DTYPE)


def decode_order_columns_response(data: bytes) -> ColumnsAnswer:
    """Decode OrderColumnsResponse bytes into arrays (ValueError on malformed data).

    The packed columns are read with numpy; an encoding the engine does not write
    (unpacked columns) goes through the generated parser."""
    first_seq = 0
    ts = 0
    size = EVENT_RECORD_SIZE
    chunks: dict[int, list[bytes]] = {}
    pos = 0
    end = len(data)
    try:
        while pos < end:
            key, pos = _read_varint(data, pos)
            field, wt = key >> 3, key & 7
            if wt == _WT_LEN:
                n, pos = _read_varint(data, pos)
                if pos + n > end:
                    raise _MalformedError("truncated field")
                chunks.setdefault(field, []).append(data[pos : pos + n])
                pos += n
            elif wt == _WT_VARINT:
                v, pos = _read_varint(data, pos)
                if field in (R_ACCEPTED, R_REJECT, R_STATUS, R_CANCEL):
                    return _answer_generic(data)  # unpacked: not the engine's encoding
                if field == R_FIRST_SEQ:
                    first_seq = v
                elif field == R_TS:
                    ts = v - (1 << 64) if v >= 1 << 63 else v
                elif field == R_RECORD_SIZE:
                    size = v
            elif wt == _WT_I64:
                if field in (R_FILLED, R_LEAVES):
                    return _answer_generic(data)
                pos += 8
            elif wt == _WT_I32:
                pos += 4
            else:
                return _answer_generic(data)
            if pos > end:
                raise _MalformedError("truncated field")

        def joined(field: int) -> bytes:
            c = chunks.get(field, [])
            return c[0] if len(c) == 1 else b"".join(c)

        def fixed(field: int) -> Array:
            raw = joined(field)
            if len(raw) % 8:
                raise _MalformedError(f"field {field}: length not a multiple of 8")
            return np.frombuffer(raw, dtype="<i8")

        return ColumnsAnswer(
            first_seq,
            ts,
            decode_varints(joined(R_ACCEPTED)) != 0,
            decode_varints(joined(R_REJECT)).astype(np.uint32).view(np.int32),
            decode_varints(joined(R_STATUS)).astype(np.uint32).view(np.int32),
            fixed(R_FILLED),
            fixed(R_LEAVES),
            decode_varints(joined(R_CANCEL)).astype(np.uint32).view(np.int32),
            _event_records(joined(R_EVENTS), size),
            [s.decode() for s in chunks.get(R_TICKS, [])],
            [s.decode() for s in chunks.get(R_LOTS, [])],
        )
    except (_MalformedError, UnicodeDecodeError) as exc:
        raise ValueError(f"malformed OrderColumnsResponse: {exc}") from None
