"""The vectorised batch encoder produces exactly the answer the message-built path gives."""

from __future__ import annotations

import numpy as np
import pytest

from hft.engine import mapping
from hft.engine.pb import engine_pb2 as pb
from hft.engine.testing import OrderFlow, reference_engine
from hft.engine.types import EventType
from hft.engine.wire import encode_order_batch_response


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batch_encoding_matches_messages(seed: int) -> None:
    ref = reference_engine()
    specs = {s.symbol: s for s in ref_specs()}
    infos = {s.symbol_id: (s.symbol, s.tick_str, s.lot_str) for s in specs.values()}
    flow = OrderFlow(seed, symbols=("AAPL", "BTC-USD"))
    reqs = [c.req for c in (flow.next() for _ in range(1500)) if c.kind == "submit"]
    rng = np.random.default_rng(seed)
    for r in reqs[::31]:
        r.symbol = "NOPE"  # unknown: rejected, echoed
    for r in reqs[::17]:
        r.quantity = -int(rng.integers(1, 1 << 40))  # negative values take 10-byte varints
    for r in reqs[::23]:
        r.price = -5
    rows = [mapping.order_row(r, specs) for r in reqs]
    cmds = mapping.to_array(rows)
    cmds["ts"] = 1_795_488_036_572_087_888
    events = ref.process(cmds)
    ex = events[events["type"] != EventType.BOOK_CHANGE]
    first_seq = 1234
    got = pb.OrderBatchResponse.FromString(
        encode_order_batch_response(
            first_seq,
            int(cmds["ts"][0]),
            cmds["order_id"],
            cmds["symbol_id"],
            ex,
            infos,
            [r.symbol for r in reqs],
        )
    )
    all_rows = ex.tolist()
    bounds = np.searchsorted(ex["cmd_index"], np.arange(len(reqs) + 1)).tolist()
    want = pb.OrderBatchResponse(
        responses=[
            mapping.order_response(
                first_seq + i,
                int(cmds["ts"][0]),
                r.order_id,
                all_rows[bounds[i] : bounds[i + 1]],
                infos,
                infos.get(specs[r.symbol].symbol_id) if r.symbol in specs else (r.symbol, "", ""),
            )
            for i, r in enumerate(reqs)
        ]
    )
    assert len(got.responses) == len(reqs)
    for g, w in zip(got.responses, want.responses, strict=True):
        assert g == w
    statuses = {r.status for r in got.responses}
    assert {pb.ORDER_STATUS_NEW, pb.ORDER_STATUS_FILLED, pb.ORDER_STATUS_REJECTED} <= statuses


def ref_specs() -> list:
    from hft.engine.testing import default_config

    return list(default_config().instruments)


def test_empty_batch() -> None:
    from hft.engine.types import EVENT_DTYPE

    empty = np.zeros(0, dtype=EVENT_DTYPE)
    assert (
        encode_order_batch_response(
            1, 0, np.zeros(0, np.uint64), np.zeros(0, np.uint32), empty, {}, []
        )
        == b""
    )
