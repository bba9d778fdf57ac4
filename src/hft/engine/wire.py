"""Vectorised protobuf encoding of the batch answer (OrderBatchResponse) with numpy.

Building one protobuf object per order and per event costs microseconds each in
Python; the batch path (SubmitOrders) instead encodes the whole response from the
EVENT_DTYPE array in a few numpy passes. The bytes are ordinary protobuf wire format
(fields in a different order than a generated encoder would write, which every parser
accepts); tests/unit/engine/service/test_wire.py parses them back and compares with the
message-built answer.

Technique: every field of every row becomes a column block of a uint8 matrix (tag,
then up to 10 varint bytes), with a mask of the bytes actually used; stacking the
blocks side by side and taking ``matrix[mask]`` yields the rows' encodings back to back
(row-major order). Variable-length pieces of different kinds are then interleaved with
one gather.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hft.engine.columns import order_outcomes
from hft.engine.types import EventType

Array = np.ndarray[Any, Any]

_WT_VARINT = 0
_WT_LEN = 2
_THRESHOLDS = np.array([1 << (7 * k) for k in range(1, 10)], dtype=np.uint64)
_SHIFTS = np.arange(10, dtype=np.uint64) * np.uint64(7)
_COLS = np.arange(10)


def _tag(field: int, wire_type: int) -> bytes:
    return _varint_bytes((field << 3) | wire_type)


def _varint_bytes(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


class _Rows:
    """Column blocks of one kind of row (one message per row)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.blocks: list[Array] = []
        self.masks: list[Array] = []

    def varint(self, field: int, values: Array, *, keep_zero: bool = False) -> None:
        """An int field (int64 values are written as their two's complement, like protobuf);
        zeros are left out (the proto3 default) unless `keep_zero`."""
        v = np.ascontiguousarray(values).astype(np.int64, copy=False).view(np.uint64)
        present = v != 0
        if not keep_zero and not present.any():
            return
        tag = np.frombuffer(_tag(field, _WT_VARINT), dtype=np.uint8)
        nbytes = 1 + (v[:, None] >= _THRESHOLDS[None, :]).sum(axis=1)
        width = int(nbytes.max()) if self.n else 1
        body = ((v[:, None] >> _SHIFTS[None, :width]) & np.uint64(0x7F)).astype(np.uint8)
        k = _COLS[None, :width]
        body |= (k < (nbytes[:, None] - 1)).astype(np.uint8) << np.uint8(7)
        block = np.empty((self.n, len(tag) + width), dtype=np.uint8)
        block[:, : len(tag)] = tag
        block[:, len(tag) :] = body
        mask = np.empty(block.shape, dtype=bool)
        used = k < nbytes[:, None]
        if keep_zero:
            mask[:, : len(tag)] = True
            mask[:, len(tag) :] = used
        else:
            mask[:, : len(tag)] = present[:, None]
            mask[:, len(tag) :] = used & present[:, None]
        self.blocks.append(block)
        self.masks.append(mask)

    def const(self, field: int, value: int) -> None:
        """The same int field on every row."""
        if value == 0 or self.n == 0:
            return
        enc = np.frombuffer(
            _tag(field, _WT_VARINT) + _varint_bytes(value % (1 << 64)), dtype=np.uint8
        )
        self.blocks.append(np.broadcast_to(enc, (self.n, len(enc))))
        self.masks.append(np.ones((self.n, len(enc)), dtype=bool))

    def table(self, table: Array, lengths: Array, index: Array) -> None:
        """Pre-encoded byte strings (rows of `table`, `lengths` used) chosen per row."""
        self.blocks.append(table[index])
        self.masks.append(np.arange(table.shape[1])[None, :] < lengths[index][:, None])

    def encode(self) -> tuple[Array, Array]:
        """(bytes of all rows back to back, length of each row)."""
        if not self.blocks or self.n == 0:
            return np.zeros(0, dtype=np.uint8), np.zeros(self.n, dtype=np.int64)
        m = np.hstack(self.blocks)
        mask = np.hstack(self.masks)
        return m[mask], mask.sum(axis=1)


def _string_table(field: int, values: Sequence[str]) -> tuple[Array, Array]:
    encoded = []
    for s in values:
        b = s.encode()
        encoded.append(_tag(field, _WT_LEN) + _varint_bytes(len(b)) + b if b else b"")
    width = max((len(e) for e in encoded), default=1) or 1
    table = np.zeros((len(encoded), width), dtype=np.uint8)
    lengths = np.zeros(len(encoded), dtype=np.int64)
    for i, e in enumerate(encoded):
        table[i, : len(e)] = np.frombuffer(e, dtype=np.uint8) if e else []
        lengths[i] = len(e)
    return table, lengths


def _len_prefix(field: int, lengths: Array) -> tuple[Array, Array]:
    rows = _Rows(len(lengths))
    rows.varint(field, lengths, keep_zero=True)
    # A length-delimited field: same layout as a varint field but wire type 2.
    # Field numbers below 16 have a one-byte tag: swap the wire type in place.
    flat, plen = rows.encode()
    if len(flat):
        starts = np.concatenate(([0], np.cumsum(plen)[:-1]))
        flat[starts] = (field << 3) | _WT_LEN
    return flat, plen


def _gather(pieces: list[tuple[Array, Array]], order: Array, kinds: Array, rows: Array) -> bytes:
    """Concatenate variable-length pieces: `pieces[k]` = (flat bytes, lengths); the
    output takes piece (kinds[i], rows[i]) for i in `order`."""
    flats = [p[0] for p in pieces]
    base = np.cumsum([0] + [len(f) for f in flats])[:-1]
    starts_by_kind = [
        b + np.concatenate(([0], np.cumsum(p[1])[:-1])) for b, p in zip(base, pieces, strict=True)
    ]
    all_starts = np.concatenate(starts_by_kind)
    all_lens = np.concatenate([p[1] for p in pieces])
    kind_base = np.cumsum([0] + [len(p[1]) for p in pieces])[:-1]
    sel = kind_base[kinds[order]] + rows[order]
    lens = all_lens[sel]
    starts = all_starts[sel]
    total = int(lens.sum())
    if total == 0:
        return b""
    src = np.concatenate(flats)
    offs = np.repeat(starts - (np.cumsum(lens) - lens), lens)
    return bytes(src[offs + np.arange(total)])


def encode_order_batch_response(
    first_seq: int,
    ts: int,
    order_ids: Array,
    symbol_ids: Array,
    events: Array,
    infos: Mapping[int, tuple[str, str, str]],
    request_symbols: Sequence[str],
) -> bytes:
    """OrderBatchResponse bytes for n SUBMIT commands sequenced from `first_seq`.

    `events` are the commands' execution events (EVENT_DTYPE, no BOOK_CHANGE, cmd_index
    0..n-1 ascending); `symbol_ids` the commands' symbol ids (0 for unknown, then the
    request's symbol string is echoed with empty tick/lot sizes).
    """
    n = len(order_ids)
    ne = len(events)
    # Symbol table: index 0 = unknown; known symbols after it.
    known = sorted(infos)
    sym_index = {sid: i + 1 for i, sid in enumerate(known)}
    unknown_names = sorted(
        {s for s, sid in zip(request_symbols, symbol_ids.tolist(), strict=True) if sid == 0}
    )
    unknown_index = {s: len(known) + 1 + i for i, s in enumerate(unknown_names)}
    names = ["", *(infos[s][0] for s in known), *unknown_names]
    ticks = ["", *(infos[s][1] for s in known), *("" for _ in unknown_names)]
    lots = ["", *(infos[s][2] for s in known), *("" for _ in unknown_names)]
    cmd_sym = np.array(
        [
            sym_index.get(sid, 0) or unknown_index.get(sym, 0)
            for sid, sym in zip(symbol_ids.tolist(), request_symbols, strict=True)
        ],
        dtype=np.int64,
    )

    ci = events["cmd_index"].astype(np.int64)
    et = events["type"].astype(np.int64)
    pos = np.arange(ne)
    # index within the command and last-in-sequence flag
    group_start = np.ones(ne, dtype=bool)
    if ne:
        group_start[1:] = ci[1:] != ci[:-1]
    start_pos = np.maximum.accumulate(np.where(group_start, pos, 0)) if ne else pos
    index = pos - start_pos
    last = np.ones(ne, dtype=bool)
    if ne:
        last[:-1] = ci[1:] != ci[:-1]
    ev_sym = np.array([sym_index.get(s, 0) for s in events["symbol_id"].tolist()], dtype=np.int64)
    if ne:
        # Rejects of unknown symbols carry symbol id 0: echo the request's symbol.
        ev_sym = np.where(ev_sym == 0, cmd_sym[ci], ev_sym)
    reason = events["reason"].astype(np.int64)
    is_reject = (
        (et == EventType.REJECTED)
        | (et == EventType.CANCEL_REJECTED)
        | (et == EventType.AMEND_REJECTED)
    )
    is_cancel = et == EventType.CANCELED

    name_t, name_l = _string_table(5, names)
    tick_t, tick_l = _string_table(20, ticks)
    lot_t, lot_l = _string_table(21, lots)

    ev = _Rows(ne)
    ev.varint(1, first_seq + ci)
    ev.varint(2, index)
    ev.varint(3, last.astype(np.int64))
    ev.varint(4, et)
    ev.table(name_t, name_l, ev_sym)
    ev.varint(6, events["order_id"])
    ev.varint(7, events["account_id"])
    ev.varint(8, events["side"])
    ev.varint(9, events["price"])
    ev.varint(10, events["qty"])
    ev.varint(11, events["leaves_qty"])
    ev.varint(12, np.where(is_reject, reason, 0))
    ev.varint(13, np.where(is_cancel, reason, 0))
    ev.varint(14, events["maker_order_id"])
    ev.varint(15, events["maker_account_id"])
    ev.varint(16, events["maker_leaves_qty"])
    ev.varint(17, events["trade_id"])
    ev.varint(18, events["book_seq"])
    ev.const(19, ts)
    ev.table(tick_t, tick_l, ev_sym)
    ev.table(lot_t, lot_l, ev_sym)
    ev_flat, ev_len = ev.encode()
    evp_flat, evp_len = _len_prefix(9, ev_len)  # OrderResponse.events = 9

    o = order_outcomes(order_ids, events)
    accepted = o["accepted"]
    reject_reason = o["reject_reason"]
    status = o["status"]
    filled = o["filled"]
    leaves = o["leaves"]
    cancel_reason = o["cancel_reason"]

    resp = _Rows(n)
    cmd_idx = np.arange(n, dtype=np.int64)
    resp.varint(1, first_seq + cmd_idx)
    resp.varint(2, order_ids)
    resp.varint(3, accepted.astype(np.int64))
    resp.varint(4, reject_reason)
    resp.varint(5, status)
    resp.varint(6, filled)
    resp.varint(7, leaves)
    resp.varint(8, cancel_reason)
    rtick_t, rtick_l = _string_table(10, ticks)
    rlot_t, rlot_l = _string_table(11, lots)
    resp.table(rtick_t, rtick_l, cmd_sym)
    resp.table(rlot_t, rlot_l, cmd_sym)
    resp.const(12, ts)
    head_flat, head_len = resp.encode()

    # Each OrderResponse = its head + its event pieces; the batch wraps each in field 1.
    content_len = head_len.copy()
    if ne:
        np.add.at(content_len, ci, evp_len + ev_len)
    pre_flat, pre_len = _len_prefix(1, content_len)  # OrderBatchResponse.responses = 1

    # Pieces: kind 0 = response prefix, 1 = response head, 2 = event prefix, 3 = event body.
    kinds = np.concatenate(
        [
            np.zeros(n, np.int64),
            np.ones(n, np.int64),
            np.full(ne, 2, np.int64),
            np.full(ne, 3, np.int64),
        ]
    )
    rows = np.concatenate([cmd_idx, cmd_idx, pos, pos])
    owner = np.concatenate([cmd_idx, cmd_idx, ci, ci])
    sub = np.concatenate([np.zeros(n, np.int64), np.ones(n, np.int64), 2 + 2 * pos, 3 + 2 * pos])
    order = np.lexsort((sub, owner))
    return _gather(
        [(pre_flat, pre_len), (head_flat, head_len), (evp_flat, evp_len), (ev_flat, ev_len)],
        order,
        kinds,
        rows,
    )
