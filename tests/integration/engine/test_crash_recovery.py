"""kill -9 under load, restart, and check that nothing acknowledged was lost.

A seeded order flow runs through the client from several concurrent tasks (unary,
batched rows and batched columns) while the engine is killed at a random moment. After
each restart: every acknowledged command is present with the same events it was
acknowledged with, sequences are 1..last with no gap or duplicate, and the engine's
state hash equals the reference model's fed with the journaled commands in sequence
order.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hft.engine.client import EngineClient, EngineUnavailable, pb
from hft.engine.testing import Cmd, EngineProcess, OrderFlow, apply_to_reference, reference_engine

pytestmark = pytest.mark.timeout(240)

Key = tuple[str, int]


def key_of(cmd: Cmd) -> Key:
    return (cmd.kind, cmd.req.order_id)


def key_of_events(events: list[pb.ExecutionEvent]) -> Key:
    first = events[0]
    if first.type in (pb.EVENT_TYPE_ACCEPTED, pb.EVENT_TYPE_REJECTED):
        return ("submit", first.order_id)
    assert first.type in (pb.EVENT_TYPE_CANCELED, pb.EVENT_TYPE_CANCEL_REJECTED), first
    return ("cancel", first.order_id)


def columns_of(batch: list[Cmd]) -> dict[str, Any]:
    reqs = [c.req for c in batch]
    assert all(isinstance(r, pb.OrderRequest) for r in reqs)

    def col(name: str, dtype: Any) -> np.ndarray[Any, Any]:
        return np.array([getattr(r, name) for r in reqs], dtype=dtype)

    return {
        "symbol": [str(getattr(r, "symbol")) for r in reqs],  # noqa: B009
        "order_id": col("order_id", np.uint64),
        "account_id": col("account_id", np.uint64),
        "side": col("side", np.int64),
        "type": col("type", np.int64),
        "time_in_force": col("time_in_force", np.int64),
        "price": col("price", np.int64),
        "quantity": col("quantity", np.int64),
        "post_only": col("post_only", bool),
        "stp_mode": col("stp_mode", np.int64),
    }


class Load:
    def __init__(self, seed: int) -> None:
        self.flow = OrderFlow(seed)
        self.rng = random.Random(seed + 1)
        self.sent: dict[Key, Cmd] = {}
        self.acked: dict[Key, Any] = {}  # key -> response (with sequence and events)
        self.column_acks = 0

    async def worker(self, client: EngineClient, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                if self.rng.random() < 0.1:
                    batch = [self.flow.next() for _ in range(self.rng.randint(2, 40))]
                    batch = [c for c in batch if c.kind == "submit"]
                    for c in batch:
                        self.sent[key_of(c)] = c
                    resp = await client.submit_orders([c.req for c in batch])
                    for c, r in zip(batch, resp.responses, strict=True):
                        self.acked[key_of(c)] = r
                    continue
                if self.rng.random() < 0.05:
                    # The columnar batch path, acknowledged per order like the others.
                    batch = [self.flow.next() for _ in range(self.rng.randint(2, 60))]
                    batch = [c for c in batch if c.kind == "submit"]
                    for c in batch:
                        self.sent[key_of(c)] = c
                    got = await client.submit_order_columns(columns_of(batch))
                    for c, r in zip(batch, got.responses(), strict=True):
                        self.acked[key_of(c)] = r
                    self.column_acks += len(batch)
                    continue
                if self.rng.random() < 0.01:
                    await client.take_snapshot()
                    continue
                cmd = self.flow.next()
                self.sent[key_of(cmd)] = cmd
                if cmd.kind == "submit":
                    r = await client.submit_order(cmd.req)
                else:
                    r = await client.cancel_order(cmd.req.order_id, cmd.req.account_id)
                self.acked[key_of(cmd)] = r
            except EngineUnavailable:
                return

    async def run_and_kill(self, engine: EngineProcess, duration: float) -> None:
        stop = asyncio.Event()
        async with EngineClient(engine.address, timeout=10) as client:
            workers = [asyncio.create_task(self.worker(client, stop)) for _ in range(6)]
            await asyncio.sleep(duration)
            await asyncio.to_thread(engine.kill)
            stop.set()
            await asyncio.gather(*workers)


async def all_events(address: str, last: int) -> list[pb.ExecutionEvent]:
    out: list[pb.ExecutionEvent] = []
    if last == 0:
        return out
    async with EngineClient(address) as c:
        async for ev in c.subscribe_executions(0):
            out.append(ev)
            if ev.sequence == last and ev.last_in_sequence:
                break
    return out


def group(events: list[pb.ExecutionEvent]) -> dict[int, list[pb.ExecutionEvent]]:
    by_seq: dict[int, list[pb.ExecutionEvent]] = {}
    prev = (0, -1)
    for ev in events:
        k = (ev.sequence, ev.index)
        assert k > prev, f"out of order or duplicate: {prev} then {k}"
        prev = k
        by_seq.setdefault(ev.sequence, []).append(ev)
    for seq, evs in by_seq.items():
        assert [e.index for e in evs] == list(range(len(evs))), seq
        assert [e.last_in_sequence for e in evs] == [False] * (len(evs) - 1) + [True], seq
    return by_seq


async def verify(engine: EngineProcess, load: Load, ref: Any, fed_through: int) -> int:
    """Check the restarted engine against what was acknowledged; returns the last sequence."""
    async with EngineClient(engine.address) as c:
        health = await c.health()
        stats = await c.get_stats()
    last = health.last_sequence
    assert stats.last_sequence == last
    for key, resp in load.acked.items():
        assert resp.sequence <= last, (
            f"acknowledged {key} at {resp.sequence} lost (engine ends at {last})"
        )
    by_seq = group(await all_events(engine.address, last))
    assert sorted(by_seq) == list(range(1, last + 1)), "sequence gap"
    seq_of: dict[Key, int] = {}
    for seq in range(1, last + 1):
        key = key_of_events(by_seq[seq])
        assert key not in seq_of, f"{key} journaled twice"
        seq_of[key] = seq
        assert key in load.sent, f"sequence {seq} is a command nobody sent: {key}"
    for key, resp in load.acked.items():
        assert seq_of.get(key) == resp.sequence, key
        assert list(resp.events) == by_seq[resp.sequence], key
    for seq in range(fed_through + 1, last + 1):
        evs = by_seq[seq]
        ref_events = apply_to_reference(ref, load.sent[key_of_events(evs)], evs[0].timestamp_ns)
        got = [(e.type, e.order_id, e.quantity, e.leaves_quantity, e.price) for e in evs]
        want = [
            (int(e.type), e.order_id, e.qty, e.leaves_qty, e.price)
            for e in ref_events
            if e.type != 9
        ]
        assert got == want, seq
    assert stats.state_hash == ref.state_hash()
    return last


async def test_kill_9_under_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path / "engine", extra_args=[])
    load = Load(seed=20261124)
    ref = reference_engine()
    fed = 0
    rng = random.Random(7)
    try:
        for _round in range(4):
            engine.start()
            if _round:
                fed = await verify(engine, load, ref, fed)
            await load.run_and_kill(engine, rng.uniform(0.3, 1.2))
        engine.start()
        fed = await verify(engine, load, ref, fed)
        assert len(load.acked) > 100
        assert load.column_acks > 0
        # A clean stop snapshots; the next start replays nothing and ends in the same state.
        assert engine.stop() == 0
        engine.start()
        async with EngineClient(engine.address) as c:
            stats = await c.get_stats()
        assert stats.replayed_commands == 0
        assert stats.last_snapshot_sequence == fed
        assert stats.state_hash == ref.state_hash()
    finally:
        engine.kill()
