"""The columnar batch codec (hft.engine.columns) against the generated protobuf classes
and the row form (hft.engine.mapping / hft.engine.wire)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hft.engine import columns, mapping
from hft.engine.client import OrderColumnsResult, order_request
from hft.engine.mapping import InvalidRequestError
from hft.engine.pb import engine_pb2 as pb
from hft.engine.testing import OrderFlow, default_config, reference_engine
from hft.engine.types import EVENT_DTYPE, EventType
from hft.engine.wire import encode_order_batch_response

SPECS = {s.symbol: s for s in default_config().instruments}
INFOS = {s.symbol_id: (s.symbol, s.tick_str, s.lot_str) for s in SPECS.values()}


def as_columns(reqs: list[pb.OrderRequest]) -> dict[str, Any]:
    return {
        "symbol": [r.symbol for r in reqs],
        "order_id": np.array([r.order_id for r in reqs], dtype=np.uint64),
        "account_id": np.array([r.account_id for r in reqs], dtype=np.uint64),
        "side": np.array([r.side for r in reqs], dtype=np.int64),
        "type": np.array([r.type for r in reqs], dtype=np.int64),
        "time_in_force": np.array([r.time_in_force for r in reqs], dtype=np.int64),
        "price": np.array([r.price for r in reqs], dtype=np.int64),
        "quantity": np.array([r.quantity for r in reqs], dtype=np.int64),
        "post_only": np.array([r.post_only for r in reqs], dtype=bool),
        "stp_mode": np.array([r.stp_mode for r in reqs], dtype=np.int64),
    }


def seeded_orders(seed: int, n: int) -> list[pb.OrderRequest]:
    flow = OrderFlow(seed, symbols=("AAPL", "BTC-USD", "MSFT"))
    reqs = [c.req for c in (flow.next() for _ in range(n)) if c.kind == "submit"]
    rng = np.random.default_rng(seed)
    for r in reqs[::29]:
        r.symbol = "NOPE"  # unknown: a business reject, as in the row form
    for r in reqs[::17]:
        r.quantity = -int(rng.integers(1, 1 << 40))
    for r in reqs[::13]:
        r.post_only = True
    return reqs


def request_bytes(reqs: list[pb.OrderRequest]) -> bytes:
    return columns.request_from(as_columns(reqs))[0]


# ---------------------------------------------------------------------- request decoding


@pytest.mark.parametrize("seed", [1, 2])
def test_encoder_output_is_the_proto_message(seed: int) -> None:
    reqs = seeded_orders(seed, 400)
    msg = pb.OrderColumns.FromString(request_bytes(reqs))
    syms = list(msg.symbols)
    assert [syms[i] for i in msg.symbol_index] == [r.symbol for r in reqs]
    for name, field in [
        ("order_id", "order_id"),
        ("account_id", "account_id"),
        ("side", "side"),
        ("type", "type"),
        ("time_in_force", "time_in_force"),
        ("price", "price"),
        ("quantity", "quantity"),
        ("post_only", "post_only"),
        ("stp_mode", "stp_mode"),
    ]:
        assert list(getattr(msg, name)) == [getattr(r, field) for r in reqs], name


def message_columns(msg: pb.OrderColumns) -> dict[str, list[Any]]:
    return {
        name: list(getattr(msg, name))
        for name in (
            "symbol_index",
            "order_id",
            "account_id",
            "side",
            "type",
            "time_in_force",
            "price",
            "quantity",
            "post_only",
            "stp_mode",
        )
    }


def assert_decodes_like_protobuf(data: bytes) -> None:
    msg = pb.OrderColumns.FromString(data)
    got = columns.decode_order_columns(data)
    assert got.symbols == list(msg.symbols)
    want = message_columns(msg)
    for name, values in want.items():
        assert got.columns[name].tolist() == values, name


def test_decoder_matches_protobuf_on_generated_messages() -> None:
    rng = np.random.default_rng(5)
    n = 300
    msg = pb.OrderColumns(
        symbols=["AAPL", "MSFT", "Ünïcode"],
        symbol_index=rng.integers(0, 3, n).tolist(),
        order_id=rng.integers(0, 1 << 63, n, dtype=np.uint64).tolist(),
        account_id=[(1 << 64) - 1] * n,
        side=rng.integers(-3, 300, n).tolist(),  # unknown values survive (open enums)
        type=[1] * n,
        time_in_force=rng.integers(0, 5, n).tolist(),
        price=rng.integers(-(1 << 62), 1 << 62, n).tolist(),
        quantity=rng.integers(-5, 5, n).tolist(),
        post_only=(rng.random(n) < 0.5).tolist(),
        stp_mode=[-1] * n,
    )
    assert_decodes_like_protobuf(msg.SerializeToString())


def _key(field: int, wt: int) -> bytes:
    return columns._varint_bytes((field << 3) | wt)


def test_decoder_accepts_every_valid_encoding() -> None:
    reqs = seeded_orders(3, 60)
    data = request_bytes(reqs)
    # Fields in another order, a packed field split in two, an unknown field of each wire type.
    msg = pb.OrderColumns.FromString(data)
    first = pb.OrderColumns(order_id=list(msg.order_id)[:7]).SerializeToString()
    rest = pb.OrderColumns(order_id=list(msg.order_id)[7:]).SerializeToString()
    others = pb.OrderColumns.FromString(data)
    others.ClearField("order_id")
    unknown = (
        _key(99, 0)
        + columns._varint_bytes(300)
        + _key(98, 1)
        + b"\x00" * 8
        + _key(97, 5)
        + b"\x00" * 4
        + _key(96, 2)
        + b"\x03abc"
    )
    shuffled = rest + unknown + others.SerializeToString() + first
    assert_decodes_like_protobuf(shuffled)
    got = columns.decode_order_columns(shuffled).columns["order_id"]
    assert got.tolist() == list(msg.order_id[7:]) + list(msg.order_id[:7])
    # Unpacked repeated scalars (legal for any proto3 parser): the generic path.
    unpacked = b"".join(_key(5, 0) + columns._varint_bytes(int(r.side)) for r in reqs)
    unpacked += b"".join(_key(3, 1) + int(r.order_id).to_bytes(8, "little") for r in reqs)
    assert_decodes_like_protobuf(unpacked + data)


@pytest.mark.parametrize(
    "data",
    [
        b"\x1a\x05\x01\x02\x03\x04\x05",  # order_id: 5 bytes, not a multiple of 8
        b"\x2a\x02\x80\x80",  # side: truncated varint
        b"\x2a\x0b" + b"\xff" * 10 + b"\x01",  # side: 11-byte varint
        b"\x1a\x10\x01",  # length beyond the end
        b"\x0a\x02\xff\xfe",  # symbol not UTF-8
        b"\x00\x01",  # field number 0
        b"\x0f",  # wire type 7
    ],
)
def test_malformed_requests_are_invalid_argument(data: bytes) -> None:
    with pytest.raises(InvalidRequestError, match=r"malformed OrderColumns|UTF-8"):
        columns.decode_order_columns(data)


def test_too_many_fields_is_refused_before_work() -> None:
    data = _key(1, 2) + b"\x01A"
    with pytest.raises(InvalidRequestError, match="more than 100 fields"):
        columns.decode_order_columns(data * 101, max_fields=100)


@pytest.mark.parametrize(
    "values",
    [
        np.array([0, 1, 127, 128, 300, 1 << 35, (1 << 64) - 1], dtype=np.uint64),
        np.array([-1, -(1 << 63), 0, 5], dtype=np.int64),
        np.array([], dtype=np.int64),
    ],
)
def test_varints_round_trip(values: np.ndarray[Any, Any]) -> None:
    data = columns.encode_varints(values)
    msg = pb.OrderColumns.FromString(
        columns._len_field(columns.F_SYMBOL_INDEX, data) if len(values) else b""
    )
    if values.dtype == np.uint64:
        assert list(msg.symbol_index) == [v & 0xFFFFFFFF for v in values.tolist()]
    assert columns.decode_varints(data).tolist() == values.astype(np.uint64).tolist()


# ---------------------------------------------------------------------- validation


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_commands_equal_the_row_form(seed: int) -> None:
    reqs = seeded_orders(seed, 800)
    want = mapping.batch_commands(reqs, SPECS)
    got = columns.to_commands(columns.decode_order_columns(request_bytes(reqs)), SPECS, 10_000)
    assert got.dtype == want.dtype
    assert got.tobytes() == want.tobytes()


BAD_ORDERS: list[tuple[str, dict[str, Any]]] = [
    ("order_id", {"order_id": 0}),
    ("account_id", {"account_id": 0}),
    ("side", {"side": 0}),
    ("side", {"side": 3}),
    ("side", {"side": -1}),
    ("type", {"type": 0}),
    ("type", {"type": 9}),
    ("time_in_force", {"time_in_force": 5}),
    ("time_in_force", {"time_in_force": 0}),
    ("stp_mode", {"stp_mode": 4}),
    ("stp_mode", {"stp_mode": -2}),
    ("symbol", {"symbol": ""}),
    ("order_id", {"order_id": 0, "side": 9}),  # the row form reports the first check
]


@pytest.mark.parametrize(("field", "change"), BAD_ORDERS)
def test_invalid_orders_fail_like_the_row_form(field: str, change: dict[str, Any]) -> None:
    reqs = seeded_orders(4, 50)
    bad = reqs[len(reqs) // 2]
    for k, v in change.items():
        setattr(bad, k, v)
    with pytest.raises(InvalidRequestError) as row:
        mapping.batch_commands(reqs, SPECS)
    with pytest.raises(InvalidRequestError) as col:
        columns.to_commands(columns.decode_order_columns(request_bytes(reqs)), SPECS, 10_000)
    assert f"orders[{len(reqs) // 2}].{field}" in str(row.value)
    assert str(col.value).startswith(str(row.value).split(" (")[0]), (row.value, col.value)


def test_column_level_errors() -> None:
    reqs = seeded_orders(6, 20)
    cols = as_columns(reqs)
    n = len(reqs)
    short = dict(cols, account_id=cols["account_id"][:-1])
    with pytest.raises(InvalidRequestError, match=f"account_id: {n - 1} values for {n} orders"):
        columns.to_commands(
            columns.decode_order_columns(columns.request_from(short)[0]), SPECS, 10_000
        )
    longer = dict(cols, stp_mode=np.append(cols["stp_mode"], 0))
    with pytest.raises(InvalidRequestError, match="stp_mode"):
        columns.to_commands(
            columns.decode_order_columns(columns.request_from(longer)[0]), SPECS, 10_000
        )
    with pytest.raises(InvalidRequestError, match=f"orders: {n} orders in one batch, at most 5"):
        columns.to_commands(columns.decode_order_columns(request_bytes(reqs)), SPECS, 5)
    table = dict(cols)
    del table["symbol"]
    table["symbols"] = ["AAPL"]
    table["symbol_index"] = np.where(np.arange(n) == 3, 1, 0)
    with pytest.raises(InvalidRequestError, match=r"orders\[3\]\.symbol_index: 1 is outside"):
        columns.to_commands(
            columns.decode_order_columns(columns.request_from(table)[0]), SPECS, 10_000
        )


def test_optional_columns_may_be_empty() -> None:
    reqs = seeded_orders(7, 50)
    for r in reqs:
        r.post_only = False
        r.stp_mode = pb.STP_MODE_CANCEL_MAKER
    cols = as_columns(reqs)
    del cols["post_only"], cols["stp_mode"]
    got = columns.to_commands(
        columns.decode_order_columns(columns.request_from(cols)[0]), SPECS, 10_000
    )
    assert got.tobytes() == mapping.batch_commands(reqs, SPECS).tobytes()


def test_request_from_checks_its_input() -> None:
    cols = as_columns(seeded_orders(8, 10))
    with pytest.raises(ValueError, match="missing columns: price"):
        columns.request_from({k: v for k, v in cols.items() if k != "price"})
    with pytest.raises(ValueError, match="order_id: negative"):
        columns.request_from(dict(cols, order_id=-cols["order_id"].astype(np.int64)))
    with pytest.raises(ValueError, match="price: integers required"):
        columns.request_from(dict(cols, price=cols["price"] * 0.5))
    structured = np.zeros(
        3,
        dtype=[
            ("order_id", "u8"),
            ("account_id", "u8"),
            ("symbol", "U8"),
            ("side", "u1"),
            ("type", "u1"),
            ("time_in_force", "u1"),
            ("price", "i8"),
            ("quantity", "i8"),
        ],
    )
    structured["symbol"] = ["MSFT", "AAPL", "MSFT"]
    data, syms, index, _ = columns.request_from(structured)
    assert syms == ["AAPL", "MSFT"]
    assert index.tolist() == [1, 0, 1]
    assert list(pb.OrderColumns.FromString(data).symbol_index) == [1, 0, 1]


# ---------------------------------------------------------------------- response


def run_reference(reqs: list[pb.OrderRequest]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    ref = reference_engine()
    cmds = mapping.batch_commands(reqs, SPECS)
    cmds["ts"] = 1_795_488_036_572_087_888
    events = ref.process(cmds)
    return cmds, events[events["type"] != EventType.BOOK_CHANGE]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_answer_equals_the_row_answer(seed: int) -> None:
    reqs = seeded_orders(seed, 1500)
    cmds, ex = run_reference(reqs)
    ts = int(cmds["ts"][0])
    first_seq = 777
    _, symbols, index, oids = columns.request_from(as_columns(reqs))
    infos = [INFOS[SPECS[s].symbol_id] if s in SPECS else (s, "", "") for s in symbols]
    raw = columns.encode_order_columns_response(
        first_seq, ts, cmds["order_id"], ex, [i[1] for i in infos], [i[2] for i in infos]
    )
    msg = pb.OrderColumnsResponse.FromString(raw)  # a valid message for any protobuf parser
    assert msg.first_sequence == first_seq
    assert msg.event_record_size == 104
    assert len(msg.events) == 104 * len(ex)
    a = columns.decode_order_columns_response(raw)
    result = OrderColumnsResult(
        a.first_sequence,
        a.timestamp_ns,
        oids,
        a.accepted,
        a.reject_reason,
        a.status,
        a.filled_quantity,
        a.leaves_quantity,
        a.cancel_reason,
        a.events,
        symbols,
        index.astype(np.intp),
        a.tick_sizes,
        a.lot_sizes,
    )
    assert list(msg.accepted) == a.accepted.tolist()
    assert list(msg.status) == a.status.tolist()
    assert list(msg.filled_quantity) == a.filled_quantity.tolist()
    want = pb.OrderBatchResponse.FromString(
        encode_order_batch_response(
            first_seq, ts, cmds["order_id"], cmds["symbol_id"], ex, INFOS, [r.symbol for r in reqs]
        )
    )
    got = result.responses()
    assert len(got) == len(want.responses)
    for g, w in zip(got, want.responses, strict=True):
        assert g == w
    assert result.sequence.tolist() == list(range(first_seq, first_seq + len(reqs)))
    statuses = set(a.status.tolist())
    assert {pb.ORDER_STATUS_NEW, pb.ORDER_STATUS_FILLED, pb.ORDER_STATUS_REJECTED} <= statuses
    assert pb.REJECT_REASON_UNKNOWN_SYMBOL in a.reject_reason.tolist()


def test_empty_answer() -> None:
    raw = columns.encode_order_columns_response(
        0, 0, np.zeros(0, np.uint64), np.zeros(0, EVENT_DTYPE), [], []
    )
    a = columns.decode_order_columns_response(raw)
    assert len(a.accepted) == 0
    assert len(a.events) == 0


def test_answer_decoder_accepts_generic_encodings_and_refuses_garbage() -> None:
    reqs = [order_request(1, 1, "AAPL", 1, 1, 1, 19000, 5)]
    cmds, ex = run_reference(reqs)
    raw = columns.encode_order_columns_response(5, 9, cmds["order_id"], ex, ["0.01"], ["1"])
    msg = pb.OrderColumnsResponse.FromString(raw)
    # Reserialized by protobuf itself (its own field order and packing).
    a = columns.decode_order_columns_response(msg.SerializeToString())
    assert (a.first_sequence, a.timestamp_ns) == (5, 9)
    assert a.events.tobytes() == bytes(msg.events)
    unpacked = raw + _key(columns.R_STATUS, 0) + b"\x01"
    assert columns.decode_order_columns_response(unpacked).status.tolist() == [1, 1]
    with pytest.raises(ValueError, match="truncated"):
        columns.decode_order_columns_response(raw + b"\x4a\x05abc")
    bad_size = pb.OrderColumnsResponse(events=b"\x00" * 50, event_record_size=50)
    with pytest.raises(ValueError, match="50 bytes"):
        columns.decode_order_columns_response(bad_size.SerializeToString())
