"""SubmitOrderColumns against real engine processes: the same order flow sent as rows
(SubmitOrders) to one engine and as columns to another ends in the same state, the
same answers, the same execution stream and the same recovery after kill -9; bad
batches are refused whole."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from hft.engine import columns
from hft.engine.client import (
    EngineClient,
    EngineRequestError,
    OrderColumnsResult,
    SyncEngineClient,
    order_request,
    pb,
)
from hft.engine.server import MESSAGE_ANSWER_MAX
from hft.engine.testing import EngineProcess, OrderFlow

pytestmark = pytest.mark.timeout(240)


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


def untimed(msg: Any) -> Any:
    """A copy without wall-clock timestamps (they differ between two engines)."""
    out = type(msg)()
    out.CopyFrom(msg)
    if "timestamp_ns" in out.DESCRIPTOR.fields_by_name:
        out.ClearField("timestamp_ns")
    if "events" in out.DESCRIPTOR.fields_by_name:
        for e in out.events:
            e.ClearField("timestamp_ns")
    return out


def as_streamed(e: pb.ExecutionEvent) -> pb.ExecutionEvent:
    out = pb.ExecutionEvent()
    out.CopyFrom(e)
    if e.reject_reason == pb.REJECT_REASON_UNKNOWN_SYMBOL:
        out.ClearField("symbol")
    return out


async def execution_stream(address: str, last: int) -> list[pb.ExecutionEvent]:
    out: list[pb.ExecutionEvent] = []
    async with EngineClient(address) as c:
        async for ev in c.subscribe_executions(0):
            out.append(ev)
            if ev.sequence == last and ev.last_in_sequence:
                break
    return out


async def drive_both(
    rows: EngineClient, cols: EngineClient, seed: int, rounds: int, sizes: list[int]
) -> list[Any]:
    """The same seeded flow into both engines: submits in batches (rows vs columns),
    cancels unary. Returns the column answers as OrderResponse messages; `sizes` gets
    the batch sizes."""
    flow = OrderFlow(seed, symbols=("AAPL", "BTC-USD", "MSFT"))
    rng = random.Random(seed)
    answers: list[pb.OrderResponse] = []
    for _ in range(rounds):
        batch: list[pb.OrderRequest] = []
        for _ in range(rng.randint(1, 250)):
            cmd = flow.next()
            if cmd.kind == "cancel":
                assert isinstance(cmd.req, pb.CancelOrderRequest)
                want = await rows.cancel_order(cmd.req.order_id, cmd.req.account_id)
                got = await cols.cancel_order(cmd.req.order_id, cmd.req.account_id)
                assert untimed(got) == untimed(want)
                continue
            assert isinstance(cmd.req, pb.OrderRequest)
            r = rng.random()
            if r < 0.03:
                cmd.req.symbol = "NOPE"
            elif r < 0.06:
                cmd.req.quantity = -3
            elif r < 0.1:
                cmd.req.post_only = True
            batch.append(cmd.req)
        if not batch:
            continue
        sizes.append(len(batch))
        want_batch = await rows.submit_orders(batch)
        got = await cols.submit_order_columns(as_columns(batch))
        assert isinstance(got, OrderColumnsResult)
        got_msgs = got.responses()
        assert [untimed(m) for m in got_msgs] == [untimed(m) for m in want_batch.responses]
        # Columns and messages of the same answer agree.
        assert got.accepted.tolist() == [m.accepted for m in got_msgs]
        assert got.filled_quantity.tolist() == [m.filled_quantity for m in got_msgs]
        assert got.sequence.tolist() == [m.sequence for m in got_msgs]
        answers.extend(got_msgs)
    return answers


async def test_columns_and_rows_end_in_the_same_state_and_recover_the_same(
    tmp_path: Path,
) -> None:
    row_engine = EngineProcess(tmp_path / "rows")
    col_engine = EngineProcess(tmp_path / "cols")
    row_engine.start()
    col_engine.start()
    try:
        async with (
            EngineClient(row_engine.address) as rows,
            EngineClient(col_engine.address) as cols,
        ):
            sizes: list[int] = []
            answers = await drive_both(rows, cols, seed=424242, rounds=25, sizes=sizes)
            want = await rows.get_stats()
            got = await cols.get_stats()
        # SubmitOrders answered batches both ways: with messages and column-wise.
        assert min(sizes) <= MESSAGE_ANSWER_MAX < max(sizes)
        assert got.last_sequence == want.last_sequence
        assert got.state_hash == want.state_hash
        assert (got.orders, got.trades, got.rejects) == (want.orders, want.trades, want.rejects)
        assert got.trades > 0
        assert got.processing.count == got.commands
        last = got.last_sequence
        row_stream = await execution_stream(row_engine.address, last)
        col_stream = await execution_stream(col_engine.address, last)
        assert [untimed(e) for e in col_stream] == [untimed(e) for e in row_stream]
        # What the column answers said is exactly what the stream carries (the stream
        # cannot name a symbol that does not exist: the journal has symbol id 0).
        answered = [as_streamed(e) for m in answers for e in m.events]
        streamed = {(e.sequence, e.index): e for e in col_stream}
        assert answered == [streamed[(e.sequence, e.index)] for e in answered]

        # kill -9 both: each recovers from its own journal to the same state and history.
        row_engine.kill()
        col_engine.kill()
        row_engine.start()
        col_engine.start()
        async with (
            EngineClient(row_engine.address) as rows,
            EngineClient(col_engine.address) as cols,
        ):
            after_rows = await rows.get_stats()
            after_cols = await cols.get_stats()
        assert after_cols.replayed_commands == last
        assert (after_cols.last_sequence, after_cols.state_hash) == (last, got.state_hash)
        assert (after_rows.last_sequence, after_rows.state_hash) == (last, want.state_hash)
        assert await execution_stream(col_engine.address, last) == col_stream
    finally:
        row_engine.kill()
        col_engine.kill()


def bad_batches() -> list[tuple[str, Any, str]]:
    reqs = [
        order_request(1000 + i, 1 + i % 3, "AAPL", 1 + i % 2, 1, 1, 18990 + i, 1 + i)
        for i in range(20)
    ]
    good = as_columns(reqs)

    def with_(**kw: Any) -> dict[str, Any]:
        out = dict(good)
        for k, v in kw.items():
            col = np.array(out[k], copy=True)
            col[7] = v
            out[k] = col
        return out

    table = {k: v for k, v in good.items() if k != "symbol"}
    return [
        ("mismatched lengths", dict(good, price=good["price"][:-2]), "price: 18 values for 20"),
        ("order_id 0", with_(order_id=0), "orders[7].order_id: must be non-zero"),
        ("account_id 0", with_(account_id=0), "orders[7].account_id: must be non-zero"),
        ("side unspecified", with_(side=0), "orders[7].side: required"),
        ("side unknown", with_(side=9), "orders[7].side: unknown value 9"),
        ("type unknown", with_(type=3), "orders[7].type: unknown value 3"),
        ("tif unknown", with_(time_in_force=-1), "orders[7].time_in_force: unknown value -1"),
        ("stp unknown", with_(stp_mode=4), "orders[7].stp_mode: unknown value 4"),
        (
            "symbol index outside the table",
            dict(table, symbols=["AAPL"], symbol_index=np.where(np.arange(20) == 7, 2, 0)),
            "orders[7].symbol_index: 2 is outside",
        ),
        (
            "empty symbol",
            dict(table, symbols=["AAPL", ""], symbol_index=np.where(np.arange(20) == 7, 1, 0)),
            "orders[7].symbol: required",
        ),
        (
            "oversize",
            {k: np.resize(np.asarray(v), 10_001) for k, v in good.items()},
            "at most 10000",
        ),
    ]


async def test_bad_batches_are_refused_whole(engine: EngineProcess) -> None:
    async with EngineClient(engine.address) as c:
        await c.submit_order(order_request(1, 1, "AAPL", 1, 1, 1, 18990, 3))
        before = await c.get_stats()
        for name, cols, needle in bad_batches():
            with pytest.raises(EngineRequestError) as ei:
                await c.submit_order_columns(cols)
            assert ei.value.code == grpc.StatusCode.INVALID_ARGUMENT, name
            assert needle in ei.value.message, (name, ei.value.message)
        # Bytes that are not an OrderColumns message at all.
        async with grpc.aio.insecure_channel(engine.address) as ch:
            call = ch.unary_unary("/trading.pb.TradingEngine/SubmitOrderColumns")
            with pytest.raises(grpc.aio.AioRpcError) as raw_err:
                await call(b"\x1a\x05\x01\x02\x03\x04\x05")
            assert raw_err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "malformed OrderColumns" in (raw_err.value.details() or "")
        after = await c.get_stats()
        assert after.last_sequence == before.last_sequence
        assert after.state_hash == before.state_hash
        # An empty batch is answered and sequences nothing.
        empty = await c.submit_order_columns(
            {k: np.asarray(v)[:0] for k, v in as_columns([]).items()}
        )
        assert len(empty) == 0
        assert (await c.get_stats()).last_sequence == before.last_sequence


async def test_unknown_symbol_and_business_rejects_are_sequenced_like_rows(
    engine: EngineProcess,
) -> None:
    reqs = [
        order_request(1, 1, "NOPE", 1, 1, 1, 19000, 1),
        order_request(2, 1, "AAPL", 1, 1, 1, 0, 1),
        order_request(3, 1, "AAPL", 1, 1, 1, 19000, 0),
        order_request(4, 1, "BTC-USD", 2, 1, 1, 6500000, 7),
    ]
    async with EngineClient(engine.address) as c:
        before = await c.get_stats()
        got = await c.submit_order_columns(as_columns(reqs))
        assert got.accepted.tolist() == [False, False, False, True]
        assert got.reject_reason.tolist() == [
            pb.REJECT_REASON_UNKNOWN_SYMBOL,
            pb.REJECT_REASON_PRICE_NOT_POSITIVE,
            pb.REJECT_REASON_INVALID_QUANTITY,
            pb.REJECT_REASON_NONE,
        ]
        assert got.symbols == ["AAPL", "BTC-USD", "NOPE"]
        assert got.tick_sizes == ["0.01", "0.01", ""]
        assert got.lot_sizes == ["1", "0.0001", ""]
        msgs = got.responses()
        assert msgs[0].events[0].symbol == "NOPE"
        assert msgs[3].lot_size == "0.0001"
        assert got.first_sequence == before.last_sequence + 1
        after = await c.get_stats()
        assert after.last_sequence == before.last_sequence + 4
        assert after.rejects == before.rejects + 3
        order = await c.get_order(4)
        assert order.found
        assert order.order.leaves_quantity == 7


def test_sync_client_columns(engine: EngineProcess) -> None:
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
    structured["order_id"] = [11, 12, 13]
    structured["account_id"] = [1, 2, 2]
    structured["symbol"] = ["MSFT", "MSFT", "MSFT"]
    structured["side"] = [2, 1, 1]
    structured["type"] = [1, 1, 2]
    structured["time_in_force"] = [1, 1, 3]
    structured["price"] = [42000, 42000, 0]
    structured["quantity"] = [5, 2, 2]
    with SyncEngineClient(engine.address) as c:
        got = c.submit_order_columns(structured)
        assert got.status.tolist() == [
            pb.ORDER_STATUS_NEW,
            pb.ORDER_STATUS_FILLED,
            pb.ORDER_STATUS_FILLED,
        ]
        assert got.filled_quantity.tolist() == [0, 2, 2]
        assert got.leaves_quantity.tolist() == [5, 0, 0]
        trades = got.events[got.events["type"] == pb.EVENT_TYPE_TRADE]
        assert trades["cmd_index"].tolist() == [1, 2]
        assert trades["maker_order_id"].tolist() == [11, 11]
        assert trades["maker_leaves_qty"].tolist() == [3, 1]
        book = c.get_order_book("MSFT")
        assert [(lv.price, lv.quantity) for lv in book.asks] == [(42000, 1)]


def test_columns_request_bytes_are_a_plain_proto_message() -> None:
    """What the client sends parses with any protobuf implementation (the generated one)."""
    reqs = [order_request(5, 6, "AAPL", 2, 1, 4, 19001, 9, post_only=True, stp_mode=2)]
    data = columns.request_from(as_columns(reqs))[0]
    msg = pb.OrderColumns.FromString(data)
    assert list(msg.symbols) == ["AAPL"]
    assert (msg.order_id[0], msg.account_id[0], msg.side[0], msg.time_in_force[0]) == (5, 6, 2, 4)
    assert (msg.price[0], msg.quantity[0], msg.post_only[0], msg.stp_mode[0]) == (19001, 9, 1, 2)
