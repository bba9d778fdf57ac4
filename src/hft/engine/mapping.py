"""Between the wire (protobuf) and the core (COMMAND_DTYPE / EVENT_DTYPE records).

Request validation lives here. A request that cannot be a command at all raises
`InvalidRequestError` (the service answers INVALID_ARGUMENT and sequences nothing): a zero
order or account id, a missing symbol, an enum number that is unspecified or unknown,
an oversize batch. Everything else, including business rules on quantity and price
and an unknown (but present) symbol in an order, is the core's to decide: the command
is sequenced and answered with `accepted=False` and a `reject_reason`.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from itertools import repeat
from operator import attrgetter
from typing import Any

import numpy as np

from hft.engine.config import InstrumentSpec
from hft.engine.pb import engine_pb2 as pb
from hft.engine.types import COMMAND_DTYPE, CommandKind, EventType

# Indices into an EVENT_DTYPE row as produced by ndarray.tolist().
E_TYPE, E_SIDE, E_REASON, E_SYMBOL, E_CMD, E_COUNT, E_OID, E_ACC = range(8)
E_PRICE, E_QTY, E_LEAVES, E_MOID, E_MACC, E_MLEAVES, E_TRADE, E_BSEQ, E_TS = range(8, 17)

# Plain ints: enum attribute lookups are slow on the per-event paths.
T_ACCEPTED = int(EventType.ACCEPTED)
T_REJECTED = int(EventType.REJECTED)
T_TRADE = int(EventType.TRADE)
T_CANCELED = int(EventType.CANCELED)
T_AMENDED = int(EventType.AMENDED)
T_EXPIRED = int(EventType.EXPIRED)
T_CANCEL_REJECTED = int(EventType.CANCEL_REJECTED)
T_AMEND_REJECTED = int(EventType.AMEND_REJECTED)
T_BOOK_CHANGE = int(EventType.BOOK_CHANGE)
SUBMIT = int(CommandKind.SUBMIT)
_REJECTS = (T_REJECTED, T_CANCEL_REJECTED, T_AMEND_REJECTED)
_U64 = (1 << 64) - 1

SymbolInfo = tuple[str, str, str]  # symbol, tick_size, lot_size


def _words(records: np.ndarray[Any, Any]) -> int:
    size = int(records.dtype.itemsize)
    if size % 8:
        raise ValueError(f"record size {size} is not a multiple of 8 bytes")
    return size // 8


def select_rows(records: np.ndarray[Any, Any], mask: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """`records[mask]` for a contiguous record array (COMMAND_DTYPE / EVENT_DTYPE).

    Fancy indexing of an aligned structured dtype copies field by field; taking whole
    rows of a uint64 view of the same bytes is an order of magnitude faster.
    """
    rows = np.ascontiguousarray(records).view(np.uint64).reshape(len(records), _words(records))
    out: np.ndarray[Any, Any] = rows.take(np.flatnonzero(mask), axis=0).view(records.dtype)
    return out.reshape(-1)


def copy_rows(records: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """A copy of a contiguous record array (see `select_rows` for why not `.copy()`)."""
    rows = np.ascontiguousarray(records).view(np.uint64).reshape(len(records), _words(records))
    out: np.ndarray[Any, Any] = rows.copy().view(records.dtype)
    return out.reshape(-1)


class InvalidRequestError(ValueError):
    """The request is malformed (INVALID_ARGUMENT); the message names the field."""


def _enum(name: str, value: int, allowed: range, where: str) -> int:
    if value not in allowed:
        if value == 0:
            raise InvalidRequestError(f"{where}{name}: required")
        raise InvalidRequestError(f"{where}{name}: unknown value {value}")
    return value


def order_row(
    o: pb.OrderRequest, symbols: Mapping[str, InstrumentSpec], where: str = ""
) -> tuple[Any, ...]:
    """One SUBMIT command (a COMMAND_DTYPE tuple, ts left 0) from an OrderRequest.

    Raises InvalidRequestError. An unknown symbol maps to symbol id 0, which the core
    rejects with UNKNOWN_SYMBOL.
    """
    if o.order_id == 0:
        raise InvalidRequestError(f"{where}order_id: must be non-zero")
    if o.account_id == 0:
        raise InvalidRequestError(f"{where}account_id: must be non-zero")
    if not o.symbol:
        raise InvalidRequestError(f"{where}symbol: required")
    side = _enum("side", o.side, range(1, 3), where)
    otype = _enum("type", o.type, range(1, 3), where)
    tif = _enum("time_in_force", o.time_in_force, range(1, 5), where)
    if o.stp_mode not in range(0, 4):
        raise InvalidRequestError(f"{where}stp_mode: unknown value {o.stp_mode}")
    spec = symbols.get(o.symbol)
    sid = spec.symbol_id if spec is not None else 0
    return (
        CommandKind.SUBMIT,
        side,
        otype,
        tif,
        o.stp_mode,
        1 if o.post_only else 0,
        0,
        sid,
        0,
        o.order_id,
        o.account_id,
        o.price,
        o.quantity,
        0,
    )


def batch_commands(
    orders: Sequence[pb.OrderRequest], symbols: Mapping[str, InstrumentSpec]
) -> np.ndarray[Any, Any]:
    """SUBMIT commands (COMMAND_DTYPE, ts 0) for a whole OrderBatch, checked column-wise.

    Raises InvalidRequestError naming the first malformed order (`orders[i].field`).
    """
    n = len(orders)
    oid = np.fromiter(map(attrgetter("order_id"), orders), np.uint64, n)
    acc = np.fromiter(map(attrgetter("account_id"), orders), np.uint64, n)
    side = np.fromiter(map(attrgetter("side"), orders), np.int64, n)
    otype = np.fromiter(map(attrgetter("type"), orders), np.int64, n)
    tif = np.fromiter(map(attrgetter("time_in_force"), orders), np.int64, n)
    stp = np.fromiter(map(attrgetter("stp_mode"), orders), np.int64, n)
    names = list(map(attrgetter("symbol"), orders))
    ids = {name: spec.symbol_id for name, spec in symbols.items()}
    sid = np.fromiter(map(ids.get, names, repeat(0)), np.uint32, n)
    bad = (
        (oid == 0)
        | (acc == 0)
        | (side < 1)
        | (side > 2)
        | (otype < 1)
        | (otype > 2)
        | (tif < 1)
        | (tif > 4)
        | (stp < 0)
        | (stp > 3)
        | np.fromiter(map(operator.not_, names), bool, n)
    )
    if bad.any():
        i = int(np.argmax(bad))
        order_row(orders[i], symbols, f"orders[{i}].")  # raises with the precise message
    cmds = np.zeros(n, dtype=COMMAND_DTYPE)
    cmds["kind"] = CommandKind.SUBMIT
    cmds["side"] = side
    cmds["type"] = otype
    cmds["tif"] = tif
    cmds["stp"] = stp
    cmds["post_only"] = np.fromiter(map(attrgetter("post_only"), orders), bool, n)
    cmds["symbol_id"] = sid
    cmds["order_id"] = oid
    cmds["account_id"] = acc
    cmds["price"] = np.fromiter(map(attrgetter("price"), orders), np.int64, n)
    cmds["qty"] = np.fromiter(map(attrgetter("quantity"), orders), np.int64, n)
    return cmds


def command_row(
    kind: CommandKind,
    *,
    order_id: int = 0,
    account_id: int = 0,
    symbol_id: int = 0,
    price: int = 0,
    qty: int = 0,
) -> tuple[Any, ...]:
    """A non-submit command as a COMMAND_DTYPE tuple (ts left 0)."""
    return (kind, 0, 0, 0, 0, 0, 0, symbol_id, 0, order_id, account_id, price, qty, 0)


def to_array(rows: Sequence[tuple[Any, ...]]) -> np.ndarray[Any, Any]:
    return np.array(rows, dtype=COMMAND_DTYPE)


def exec_event(
    row: Sequence[int], seq: int, index: int, last: bool, info: SymbolInfo
) -> pb.ExecutionEvent:
    """One execution event message from an EVENT_DTYPE row."""
    t = row[E_TYPE]
    reason = row[E_REASON]
    return pb.ExecutionEvent(
        sequence=seq,
        index=index,
        last_in_sequence=last,
        type=t,  # type: ignore[arg-type]
        symbol=info[0],
        order_id=row[E_OID],
        account_id=row[E_ACC],
        side=row[E_SIDE],  # type: ignore[arg-type]
        price=row[E_PRICE],
        quantity=row[E_QTY],
        leaves_quantity=row[E_LEAVES],
        reject_reason=reason if t in _REJECTS else 0,  # type: ignore[arg-type]
        cancel_reason=reason if t == T_CANCELED else 0,  # type: ignore[arg-type]
        maker_order_id=row[E_MOID],
        maker_account_id=row[E_MACC],
        maker_leaves_quantity=row[E_MLEAVES],
        trade_id=row[E_TRADE],
        book_sequence=row[E_BSEQ],
        timestamp_ns=row[E_TS],
        tick_size=info[1],
        lot_size=info[2],
    )


_NO_INFO: SymbolInfo = ("", "", "")


def exec_events(
    rows: Sequence[Sequence[int]],
    seq: int,
    infos: Mapping[int, SymbolInfo],
    fallback: SymbolInfo = _NO_INFO,
) -> list[pb.ExecutionEvent]:
    """The execution events of one command (rows in order) with their index/last flag."""
    n = len(rows)
    return [
        exec_event(r, seq, i, i == n - 1, infos.get(r[E_SYMBOL], fallback))
        for i, r in enumerate(rows)
    ]


def events_with_sequence(
    first_seq: int, events: np.ndarray[Any, Any], min_seq: int, infos: Mapping[int, SymbolInfo]
) -> list[pb.ExecutionEvent]:
    """Execution event messages of a stored or published batch, skipping sequences < min_seq.

    `events` are EVENT_DTYPE records (no BOOK_CHANGE) whose cmd_index is relative to
    `first_seq`; records never split a command, so index/last are computed within it.
    """
    if len(events) == 0:
        return []
    ci = events["cmd_index"].astype(np.int64)
    if first_seq + int(ci[-1]) < min_seq:
        return []
    rows = events.tolist()
    out: list[pb.ExecutionEvent] = []
    n = len(rows)
    index = 0
    for k in range(n):
        r = rows[k]
        c = r[E_CMD]
        if k > 0 and rows[k - 1][E_CMD] != c:
            index = 0
        seq = first_seq + c
        last = k == n - 1 or rows[k + 1][E_CMD] != c
        if seq >= min_seq:
            out.append(exec_event(r, seq, index, last, infos.get(r[E_SYMBOL], _NO_INFO)))
        index += 1
    return out


def order_response(
    seq: int,
    ts: int,
    order_id: int,
    rows: Sequence[Sequence[int]],
    infos: Mapping[int, SymbolInfo],
    info: SymbolInfo,
) -> pb.OrderResponse:
    """The answer to a SUBMIT command from its execution events."""
    accepted = False
    rejected = False
    reason = 0
    filled = 0
    leaves = 0
    canceled = False
    cancel_reason = 0
    for r in rows:
        t = r[E_TYPE]
        if r[E_OID] != order_id:
            continue
        if t == T_REJECTED:
            rejected = True
            reason = r[E_REASON]
        elif t == T_ACCEPTED:
            accepted = True
            leaves = r[E_LEAVES]
        elif t == T_TRADE:
            filled += r[E_QTY]
            leaves = r[E_LEAVES]
        elif t == T_CANCELED:
            canceled = True
            cancel_reason = r[E_REASON]
            leaves = 0
    if rejected:
        status = pb.ORDER_STATUS_REJECTED
    elif canceled:
        status = pb.ORDER_STATUS_CANCELED
    elif leaves == 0:
        status = pb.ORDER_STATUS_FILLED
    elif filled > 0:
        status = pb.ORDER_STATUS_PARTIALLY_FILLED
    else:
        status = pb.ORDER_STATUS_NEW
    return pb.OrderResponse(
        sequence=seq,
        order_id=order_id,
        accepted=accepted,
        reject_reason=reason,  # type: ignore[arg-type]
        status=status,
        filled_quantity=filled,
        leaves_quantity=leaves,
        cancel_reason=cancel_reason,  # type: ignore[arg-type]
        events=exec_events(rows, seq, infos, info),
        tick_size=info[1],
        lot_size=info[2],
        timestamp_ns=ts,
    )


def cancel_response(
    seq: int, order_id: int, rows: Sequence[Sequence[int]], infos: Mapping[int, SymbolInfo]
) -> pb.CancelOrderResponse:
    accepted = False
    reason = 0
    canceled = 0
    for r in rows:
        if r[E_TYPE] == T_CANCELED and r[E_OID] == order_id:
            accepted = True
            canceled = r[E_QTY]
        elif r[E_TYPE] == T_CANCEL_REJECTED:
            reason = r[E_REASON]
    return pb.CancelOrderResponse(
        sequence=seq,
        order_id=order_id,
        accepted=accepted,
        reject_reason=reason,  # type: ignore[arg-type]
        canceled_quantity=canceled,
        events=exec_events(rows, seq, infos),
    )


def amend_response(
    seq: int, order_id: int, rows: Sequence[Sequence[int]], infos: Mapping[int, SymbolInfo]
) -> pb.AmendOrderResponse:
    """Status after an accepted amend: FILLED, CANCELED (self-trade), PARTIALLY_FILLED
    when the amend traded, else NEW; UNSPECIFIED when the amend was rejected."""
    accepted = False
    reason = 0
    leaves = 0
    traded = False
    canceled = False
    for r in rows:
        t = r[E_TYPE]
        if t == T_AMEND_REJECTED:
            reason = r[E_REASON]
        elif r[E_OID] != order_id:
            continue
        elif t == T_AMENDED:
            accepted = True
            leaves = r[E_LEAVES]
        elif t == T_TRADE:
            traded = True
            leaves = r[E_LEAVES]
        elif t == T_CANCELED:
            canceled = True
            leaves = 0
    if not accepted:
        status = pb.ORDER_STATUS_UNSPECIFIED
    elif canceled:
        status = pb.ORDER_STATUS_CANCELED
    elif leaves == 0:
        status = pb.ORDER_STATUS_FILLED
    elif traded:
        status = pb.ORDER_STATUS_PARTIALLY_FILLED
    else:
        status = pb.ORDER_STATUS_NEW
    return pb.AmendOrderResponse(
        sequence=seq,
        order_id=order_id,
        accepted=accepted,
        reject_reason=reason,  # type: ignore[arg-type]
        status=status,
        leaves_quantity=leaves,
        events=exec_events(rows, seq, infos),
    )


def affected(rows: Sequence[Sequence[int]]) -> int:
    """Orders canceled or expired by a command."""
    return sum(1 for r in rows if r[E_TYPE] in (T_CANCELED, T_EXPIRED))


def valid_id(name: str, value: int) -> int:
    if value == 0:
        raise InvalidRequestError(f"{name}: must be non-zero")
    if value > _U64:
        raise InvalidRequestError(f"{name}: out of range")
    return value
