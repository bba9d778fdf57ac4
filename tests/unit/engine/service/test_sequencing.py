"""EngineService sequencing in process: commands go through the core as they arrive,
answers wait for their journal write, commands processed during a write share the next
one, and failures reach every caller in flight."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hft.engine.journal import KIND_COMMANDS, KIND_EVENTS, LogReader, SegmentLog
from hft.engine.mapping import T_ACCEPTED, T_TRADE
from hft.engine.service import (
    EngineService,
    FatalEngineError,
    OverloadedError,
    Result,
    ServiceUnavailableError,
    State,
)
from hft.engine.testing import default_config, default_core
from hft.engine.types import COMMAND_DTYPE, EVENT_DTYPE, CommandKind

pytestmark = pytest.mark.timeout(60)


def order(
    order_id: int, side: int, price: int, qty: int = 1, account: int = 1
) -> np.ndarray[Any, Any]:
    """One GTC limit SUBMIT on symbol 1 (AAPL) as the handlers build it."""
    cmds = np.zeros(1, dtype=COMMAND_DTYPE)
    cmds["kind"] = CommandKind.SUBMIT
    cmds["side"] = side
    cmds["type"] = 1
    cmds["tif"] = 1
    cmds["symbol_id"] = 1
    cmds["order_id"] = order_id
    cmds["account_id"] = account
    cmds["price"] = price
    cmds["qty"] = qty
    return cmds


def submit(svc: EngineService, cmds: np.ndarray[Any, Any]) -> asyncio.Future[Result]:
    return svc.submit(cmds, time.perf_counter_ns())


def make_service(data_dir: Path, fsync: str, **settings: Any) -> EngineService:
    cfg = default_config()
    engine = dataclasses.replace(
        cfg.engine, snapshot_interval_s=0, snapshot_every_commands=0, **settings
    )
    svc = EngineService(
        dataclasses.replace(cfg, engine=engine),
        data_dir,
        fsync=fsync,
        implementation=default_core(),
    )
    svc.recover()
    return svc


@pytest.fixture
async def synced(tmp_path: Path) -> AsyncIterator[EngineService]:
    """A serving engine with fsync=every (every journal write goes to the journal thread)."""
    svc = make_service(tmp_path / "engine", "every")
    svc.start()
    yield svc
    if svc.state is State.SERVING:
        await svc.stop(snapshot=False)


class Gate:
    """Holds the journal thread inside `journal.sync` until opened (or makes it fail)."""

    def __init__(self, svc: EngineService, monkeypatch: pytest.MonkeyPatch) -> None:
        self.opened = threading.Event()
        self.entered = threading.Event()
        self.error: OSError | None = None
        real: Callable[[], bool] = svc.journal.sync

        def sync() -> bool:
            self.entered.set()
            assert self.opened.wait(20), "gate never opened"
            if self.error is not None:
                raise self.error
            return real()

        monkeypatch.setattr(svc.journal, "sync", sync)

    async def wait_entered(self) -> None:
        assert await asyncio.to_thread(self.entered.wait, 20)

    def open(self) -> None:
        self.opened.set()


async def test_answer_waits_for_the_journal_write(
    synced: EngineService, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = synced
    gate = Gate(svc, monkeypatch)
    fut = submit(svc, order(1, 1, 18900))
    # Processed on receipt; the answer and the published state wait for the fsync.
    assert svc.processed_seq == 1
    await gate.wait_entered()
    await asyncio.sleep(0.02)
    assert not fut.done()
    assert svc.durable_seq == 0
    assert svc.published_seq == 0
    assert svc.md.order_book(1, 5, svc.published_seq).bids == []
    gate.open()
    res = await asyncio.wait_for(fut, 20)
    assert res.first_seq == 1
    assert svc.durable_seq == svc.published_seq == 1
    assert [r[0] for r in res.rows] == [T_ACCEPTED]


async def test_commands_processed_during_a_write_share_the_next_record(
    synced: EngineService, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    svc = synced
    gate = Gate(svc, monkeypatch)
    first = submit(svc, order(1, 1, 18900))  # a resting bid
    await gate.wait_entered()
    # While the first write waits for the disk, the next commands are processed at once
    # in arrival order and wait for the following write together.
    later = [
        submit(svc, order(2, 2, 19100)),  # resting ask
        submit(svc, order(3, 2, 18900, account=2)),  # trades with order 1
        submit(svc, order(4, 1, 19100, 2, account=2)),  # trades with order 2, one lot rests
        submit(svc, order(5, 1, 18800, account=2)),  # resting bid
    ]
    assert svc.processed_seq == 5
    assert not any(f.done() for f in [first, *later])
    gate.open()
    results = await asyncio.wait_for(asyncio.gather(first, *later), 20)
    assert [r.first_seq for r in results] == [1, 2, 3, 4, 5]
    assert svc.stats.journal_batches == 2
    assert svc.stats.trades == 2
    trade_rows = [r for r in results[2].rows if r[0] == T_TRADE]
    assert len(trade_rows) == 1
    await svc.stop(snapshot=False)

    journal = SegmentLog(tmp_path / "engine" / "journal", "journal", 1 << 20, gaps="segments")
    journal.open()
    cmd_records = [r for r in journal.records_on_open if r.kind == KIND_COMMANDS]
    journal.close()
    assert [(r.first_seq, r.last_seq) for r in cmd_records] == [(1, 1), (2, 5)]
    journaled = np.frombuffer(cmd_records[1].payload, dtype=COMMAND_DTYPE)
    assert journaled["order_id"].tolist() == [2, 3, 4, 5]
    assert len(set(journaled["ts"].tolist())) == 4  # each command kept its own batch time

    # The events log holds the group as one record whose cmd_index is relative to its
    # first sequence: each event maps back to the command that caused it.
    reader = LogReader(tmp_path / "engine" / "events", "events", 1)
    records = reader.read(10)
    reader.close()
    assert [(r.kind, r.first_seq, r.last_seq) for r in records] == [
        (KIND_EVENTS, 1, 1),
        (KIND_EVENTS, 2, 5),
    ]
    seq_of_order = {oid: r.first_seq for oid, r in zip([1, 2, 3, 4, 5], results, strict=True)}
    accepted = 0
    for rec in records:
        for ev in np.frombuffer(rec.payload, dtype=EVENT_DTYPE):
            if ev["type"] == T_ACCEPTED:
                assert rec.first_seq + int(ev["cmd_index"]) == seq_of_order[int(ev["order_id"])]
                accepted += 1
    assert accepted == 5

    # Recovery replays the merged record to the same state.
    again = make_service(tmp_path / "engine", "every")
    assert again.durable_seq == 5
    assert again.engine is not None
    assert svc.engine is not None
    assert again.engine.state_hash() == svc.engine.state_hash()
    again.journal.close()
    again.events_log.close()


async def test_a_caller_going_away_does_not_stop_its_command(
    synced: EngineService, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = synced
    gate = Gate(svc, monkeypatch)
    gone = submit(svc, order(1, 1, 18900))
    await gate.wait_entered()
    gone.cancel()
    gate.open()
    res = await asyncio.wait_for(submit(svc, order(2, 1, 18900)), 20)
    assert res.first_seq == 2
    assert svc.durable_seq == 2
    assert svc.engine is not None
    assert svc.engine.live_orders() == 2
    assert svc.stats.orders == 2


async def test_small_unsynced_write_answers_before_the_caller_waits(tmp_path: Path) -> None:
    svc = make_service(tmp_path / "engine", "none")
    svc.start()
    try:
        fut = submit(svc, order(1, 1, 18900))
        # Written on the event loop within submit: no trip through the loop before the
        # answer (fsync=none only; fsync=every waits for the journal thread).
        assert fut.done()
        assert fut.result().first_seq == 1
        assert svc.durable_seq == 1
    finally:
        await svc.stop(snapshot=False)


async def test_journal_failure_fails_every_command_in_flight(
    synced: EngineService, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = synced
    fatal: list[BaseException] = []
    svc.on_fatal = fatal.append
    gate = Gate(svc, monkeypatch)
    in_write = submit(svc, order(1, 1, 18900))
    await gate.wait_entered()
    processed = [submit(svc, order(2, 1, 18900)), submit(svc, order(3, 1, 18900))]
    gate.error = OSError(28, "No space left on device")
    gate.open()
    with pytest.raises(FatalEngineError, match="journal write failed"):
        await asyncio.wait_for(in_write, 20)
    for fut in processed:
        with pytest.raises(FatalEngineError):
            await fut
    assert svc.state is State.STOPPING
    assert svc.durable_seq == 0
    assert len(fatal) == 1
    with pytest.raises(ServiceUnavailableError):
        submit(svc, order(4, 1, 18900))
    with pytest.raises(FatalEngineError):
        await svc.wait_durable(3)
    await svc.stop(snapshot=False)


async def test_commands_wait_while_a_snapshot_is_captured(
    synced: EngineService, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = synced
    gate = Gate(svc, monkeypatch)
    first = submit(svc, order(1, 1, 18900))
    await gate.wait_entered()
    snap = svc.request_snapshot()
    # The capture waits for the write in flight; what arrives meanwhile is queued, not
    # processed, so the snapshot holds exactly the commands before it.
    while not svc._capturing:  # noqa: ASYNC110 - the sequencer task starts the capture
        await asyncio.sleep(0.001)
    queued = submit(svc, order(2, 1, 18800))
    assert svc.queue_depth() == 1
    assert svc.processed_seq == 1
    gate.open()
    seq, path = await asyncio.wait_for(snap, 20)
    assert seq == 1
    assert await asyncio.to_thread(Path(path).exists)
    assert (await asyncio.wait_for(first, 20)).first_seq == 1
    assert (await asyncio.wait_for(queued, 20)).first_seq == 2
    assert svc.queue_depth() == 0


async def test_queue_is_bounded_while_commands_cannot_be_processed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = make_service(tmp_path / "engine", "every", queue_capacity=2)
    svc.start()
    try:
        gate = Gate(svc, monkeypatch)
        first = submit(svc, order(1, 1, 18900))
        await gate.wait_entered()
        snap = svc.request_snapshot()
        while not svc._capturing:  # noqa: ASYNC110
            await asyncio.sleep(0.001)
        queued = [submit(svc, order(2, 1, 18900)), submit(svc, order(3, 1, 18900))]
        with pytest.raises(OverloadedError, match="queue is full"):
            submit(svc, order(4, 1, 18900))
        gate.open()
        await asyncio.wait_for(asyncio.gather(first, snap, *queued), 20)
        assert svc.durable_seq == 3
    finally:
        await svc.stop(snapshot=False)
