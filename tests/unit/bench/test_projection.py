"""The projection benchmark's stream and batching, and one small run on SQLite."""

from __future__ import annotations

import argparse
from collections import Counter

import pytest

from hft.bench import projection as bench
from hft.engine.pb import engine_pb2 as pb


def test_stream_is_seeded_and_covers_the_event_kinds() -> None:
    a, b = bench.make_stream(400, seed=7), bench.make_stream(400, seed=7)
    assert a.commands == b.commands
    assert a.orders == b.orders
    assert bench.make_stream(400, seed=8).commands != a.commands
    kinds = Counter(ev.type for command in a.commands for ev in command)
    assert {
        pb.EVENT_TYPE_ACCEPTED,
        pb.EVENT_TYPE_TRADE,
        pb.EVENT_TYPE_CANCELED,
        pb.EVENT_TYPE_AMENDED,
        pb.EVENT_TYPE_REJECTED,
    } <= set(kinds)
    # Trades with our orders on both sides, and with another participant's.
    known = {o["id"] for o in a.orders}
    trades = [ev for c in a.commands for ev in c if ev.type == pb.EVENT_TYPE_TRADE]
    assert any(ev.order_id in known and ev.maker_order_id in known for ev in trades)
    assert any(ev.account_id == bench.FOREIGN_ACCOUNT for ev in trades)
    # Partial fills: a maker left with a remainder.
    assert any(ev.maker_leaves_quantity > 0 for ev in trades)
    # Sequences ascend, each command's events are indexed from 0 and end with `last`.
    for seq, command in enumerate(a.commands, start=1):
        assert [ev.index for ev in command] == list(range(len(command)))
        assert {ev.sequence for ev in command} == {seq}
        assert [ev.last_in_sequence for ev in command] == [False] * (len(command) - 1) + [True]
    # Reservations are those of order entry: buys only, summed per account.
    for account, reserved in a.reserved.items():
        mine = [o["reserved"] for o in a.orders if o["account_id"] == account]
        assert reserved == sum(mine)
    assert all(o["reserved"] == 0 for o in a.orders if o["side"] == "sell")


def test_stream_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="at least 1 command"):
        bench.make_stream(0)
    with pytest.raises(ValueError, match="2 accounts"):
        bench.make_stream(10, accounts=1)


def test_batches_take_whole_commands_like_the_apply_loop() -> None:
    stream = bench.make_stream(200, seed=3)
    for size in (1, 5, 64):
        groups = bench.batches(stream.commands, size)
        assert [ev for g in groups for ev in g] == [ev for c in stream.commands for ev in c]
        for g in groups:
            assert g[-1].last_in_sequence
            # Another command is taken only while the batch is below its size.
            assert len(g) - _last_command_length(g) < size
    assert len(bench.batches(stream.commands, 1)) == len(stream.commands)


def _last_command_length(group: list[pb.ExecutionEvent]) -> int:
    return sum(1 for ev in group if ev.sequence == group[-1].sequence)


def test_run_reports_cpu_per_event_for_each_batch_size() -> None:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(
        [
            "--projection-commands",
            "80",
            "--projection-batches",
            "1,16",
            "--projection-postgres-url",
            "",
        ]
    )
    result = bench.run(args)
    assert [r["measure"] for r in result["rows"]] == ["SQLite, batch 1", "SQLite, batch 16"]
    for row in result["rows"]:
        assert row["events"] > 0
        assert row["cpu_us_per_event"] > 0
    assert result["stream"]["events"] == sum(len(c) for c in bench.make_stream(80).commands)
    assert any("PostgreSQL skipped" in n for n in result["notes"])
    with pytest.raises(ValueError, match="batch sizes"):
        bench.run(parser.parse_args(["--projection-batches", "0"]))
