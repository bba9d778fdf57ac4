"""The engine service: sequencer, write-ahead journal, snapshots, recovery, publishing.

The core is only ever touched from the event loop, so commands are sequenced in the
order `submit` sees them. A request (COMMAND_DTYPE array) that finds nothing waiting
before it is processed at once, in the handler's own step: it gets the next global
sequences, the batch timestamp (wall clock ns, journaled with the commands so replay is
deterministic) and one `process` call. Only when that is not allowed (a snapshot is
being captured, or too much processed work waits for the disk) or others already wait
does it queue for the sequencer task, which drains the queue in groups of up to
`max_group_commit` commands.

A processed batch is then journaled. If no journal write is in flight it goes at once:
small writes without an fsync on the event loop (the caller is answered before it even
awaits), the rest in the journal thread, which appends the record, fsyncs per policy
and appends the execution events to the events log. Batches processed while a write is
in flight wait and share the next write and fsync (group commit, one journal record).
Only after its write completes is a batch published: callers resolved, market data and
execution streams fed. No result of a batch leaves the process before its own journal
write (and fsync under fsync=every) has completed.

Directory layout under the data dir:
    journal/journal-<first seq>.log   write-ahead journal (commands, instrument records)
    events/events-<first seq>.log     execution history served by SubscribeExecutions
    snapshots/snapshot-<seq>.snap     engine state at a sequence
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import enum
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from hft.engine import snapshots
from hft.engine.config import EngineConfig, InstrumentSpec
from hft.engine.journal import (
    KIND_COMMANDS,
    KIND_EVENTS,
    KIND_INSTRUMENTS,
    JournalCorruptError,
    LogReader,
    Record,
    SegmentLog,
)
from hft.engine.mapping import (
    E_TYPE,
    SUBMIT,
    T_AMEND_REJECTED,
    T_BOOK_CHANGE,
    T_CANCEL_REJECTED,
    T_REJECTED,
    T_TRADE,
    SymbolInfo,
    copy_rows,
    select_rows,
)
from hft.engine.marketdata import SMALL_BATCH, MarketData
from hft.engine.metrics import EngineStats
from hft.engine.streams import Subscriber
from hft.engine.types import COMMAND_DTYPE, Instrument

log = logging.getLogger("hft.engine")


def _count_rejects(types: np.ndarray[Any, Any]) -> int:
    return int(
        np.count_nonzero(
            (types == T_REJECTED) | (types == T_CANCEL_REJECTED) | (types == T_AMEND_REJECTED)
        )
    )


REPLAY_CHUNK = 65_536
_INLINE_WRITE = 256  # commands; smaller unsynced journal writes happen on the event loop
_MERGE_EVENTS = 256  # batches with fewer execution events share events-log records


class State(enum.Enum):
    RECOVERING = "recovering"
    SERVING = "serving"
    STOPPING = "stopping"


class CoreEngine(Protocol):
    """What the service needs of `hft.engine.Engine` (or `ReferenceEngine`)."""

    def add_instrument(self, instrument: Instrument) -> None: ...
    def process(self, commands: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]: ...
    def snapshot(self) -> bytes: ...
    def state_hash(self) -> int: ...
    def live_orders(self) -> int: ...
    def instruments(self) -> list[Instrument]: ...
    def order(self, order_id: int) -> Any: ...
    def depth(self, symbol_id: int, levels: int = ...) -> Any: ...


class ServiceUnavailableError(Exception):
    """The engine is recovering or stopping (UNAVAILABLE)."""


class OverloadedError(Exception):
    """The sequencer queue is full (RESOURCE_EXHAUSTED)."""


class FatalEngineError(Exception):
    """The journal could not be written; the process must stop without a snapshot."""


@dataclass(slots=True)
class Result:
    """What a caller gets back: its commands' sequences and execution events."""

    first_seq: int
    ts: int
    rows: list[tuple[int, ...]]  # execution events (no BOOK_CHANGE) of the caller's commands
    bounds: list[int]  # rows[bounds[i]:bounds[i+1]] belong to command i
    events: np.ndarray[Any, Any] | None = None  # the same events as an array (raw=True)

    def command(self, i: int) -> tuple[int, list[tuple[int, ...]]]:
        return self.first_seq + i, self.rows[self.bounds[i] : self.bounds[i + 1]]


@dataclass(slots=True)
class _Pending:
    cmds: np.ndarray[Any, Any]
    future: asyncio.Future[Result]
    t_recv: int
    raw: bool = False  # the caller wants the events array (vectorised encoding)


@dataclass(slots=True)
class _Batch:
    first_seq: int
    last_seq: int
    ts: int
    cmds: np.ndarray[Any, Any]
    events: np.ndarray[Any, Any]
    exec_events: np.ndarray[Any, Any]
    items: list[_Pending]
    t_ready: int
    # Small batches only (None otherwise): events.tolist() and its execution rows, made
    # once and shared by the answer, the statistics and the market data.
    rows: list[tuple[int, ...]] | None = None
    exec_rows: list[tuple[int, ...]] | None = None


@dataclass(slots=True)
class _SnapshotJob:
    sequence: int
    meta: dict[str, Any]
    core: bytes
    future: asyncio.Future[tuple[int, str]] | None = field(default=None)


ExecItem = tuple[int, np.ndarray[Any, Any]]  # (first sequence, execution events)


def _exec_rows(events: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The execution events of a batch: everything but BOOK_CHANGE (market data only)."""
    return select_rows(events, events["type"] != T_BOOK_CHANGE)


def _exec_rows_small(
    events: np.ndarray[Any, Any], rows: list[tuple[int, ...]]
) -> tuple[np.ndarray[Any, Any], list[tuple[int, ...]]]:
    """`_exec_rows` of a small batch (single commands) with `rows` = events.tolist(), and
    the execution rows as a list: a plain scan beats numpy's fixed cost per call."""
    keep = [i for i, r in enumerate(rows) if r[E_TYPE] != T_BOOK_CHANGE]
    if len(keep) == len(rows):
        return events, rows
    return events.take(keep), [rows[i] for i in keep]


def _concat(parts: list[np.ndarray[Any, Any]]) -> np.ndarray[Any, Any]:
    """Concatenate contiguous record arrays of one dtype (COMMAND_DTYPE / EVENT_DTYPE).

    np.concatenate promotes structured dtypes field by field in Python on every call;
    the same bytes as uint64 words are joined at memcpy speed.
    """
    dtype = parts[0].dtype
    out: np.ndarray[Any, Any] = np.concatenate(
        [np.ascontiguousarray(p).view(np.uint64) for p in parts]
    ).view(dtype)
    return out


def _merge_exec(batches: list[_Batch]) -> np.ndarray[Any, Any]:
    """The execution events of consecutive batches as one events-log record: cmd_index
    rebased to the first batch's first sequence (a copy; the batches keep theirs)."""
    out = _concat([b.exec_events for b in batches])
    base = batches[0].first_seq
    out["cmd_index"] += np.repeat(
        np.array([b.first_seq - base for b in batches], dtype=np.uint32),
        [len(b.exec_events) for b in batches],
    )
    return out


def engine_factory(
    implementation: str,
) -> tuple[Callable[[int, int], CoreEngine], Callable[[bytes], CoreEngine]]:
    """Constructors for the core: "native" (C++ hft._core) or "reference" (pure Python)."""
    if implementation == "reference":
        from hft.engine import ReferenceEngine

        return ReferenceEngine, ReferenceEngine.restore
    from hft.engine import Engine

    return Engine, Engine.restore


class EngineService:
    """Owns the core, the journal, the snapshots and the subscribers of one engine."""

    def __init__(
        self,
        config: EngineConfig,
        data_dir: Path,
        *,
        fsync: str | None = None,
        implementation: str = "native",
    ) -> None:
        self.config = config
        self.settings = config.engine
        self.fsync = fsync or self.settings.fsync
        self.data_dir = data_dir
        self.implementation = implementation
        self.state = State.RECOVERING
        self.started_at = time.monotonic()
        self.engine: CoreEngine | None = None
        self.specs: dict[int, InstrumentSpec] = {}
        self.by_symbol: dict[str, InstrumentSpec] = {}
        self.infos: dict[int, SymbolInfo] = {}
        self.stats = EngineStats()
        self.next_seq = 1
        self.processed_seq = 0
        self.durable_seq = 0
        self.published_seq = 0
        self.last_ts = 0
        self.recovery_seconds = 0.0
        self.replayed_commands = 0
        self.last_snapshot_seq = 0
        self.journal = SegmentLog(
            data_dir / "journal",
            "journal",
            self.settings.segment_bytes,
            gaps="segments",
            # fsync=every: each group's write is its own fdatasync (O_DSYNC), one system
            # call and one return to the interpreter less in the journal thread.
            durable_writes=self.fsync == "every",
        )
        self.events_log = SegmentLog(
            data_dir / "events", "events", self.settings.segment_bytes, gaps="any"
        )
        self.snapshot_dir = data_dir / "snapshots"
        self.md = MarketData([], self.infos)
        self.exec_subscribers: set[Subscriber[ExecItem]] = set()
        self._pending: deque[_Pending] = deque()
        self._pending_cmds = 0
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Processed, not yet handed to a journal write; at most _max_unjournaled commands
        # before further requests wait in _pending (the journal sets the pace).
        self._unjournaled: list[_Batch] = []
        self._unjournaled_cmds = 0
        self._max_unjournaled = 8 * self.settings.max_group_commit
        self._writing = False  # a journal write is in the journal thread
        self._io_ops = 0  # other log operations (syncs, pruning) queued in the journal thread
        self._capturing = False  # a snapshot is being captured: nothing may be processed
        self._io = ThreadPoolExecutor(1, thread_name_prefix="journal")
        self._snap_io = ThreadPoolExecutor(1, thread_name_prefix="snapshot")
        self._tasks: list[asyncio.Task[Any]] = []
        self._snapshot_requests: list[asyncio.Future[tuple[int, str]]] = []
        self._snapshot_running = False
        self._durable_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._fatal: BaseException | None = None
        self._commands_at_last_snapshot = 0
        self.on_fatal: Callable[[BaseException], None] | None = None

    # ------------------------------------------------------------------ recovery

    def recover(self) -> None:
        """Load the newest valid snapshot and replay the journal tail (blocking).

        Raises JournalCorruptError when a log is damaged before its end, RuntimeError
        when the snapshot and journal do not fit together or the config contradicts the
        journaled instruments.
        """
        t0 = time.perf_counter()
        new_engine, restore = engine_factory(self.implementation)
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        snapshots.prune(self.snapshot_dir, keep=10**9)  # removes leftover temporary files only
        snap, skipped = snapshots.load_newest(self.snapshot_dir)
        for msg in skipped:
            log.warning("snapshot skipped: %s", msg)
        base_seq = 0
        book_seqs: dict[int, int] = {}
        if snap is not None:
            try:
                engine = restore(snap.core)
            except ValueError as exc:
                raise RuntimeError(f"{snap.path}: the core rejected the snapshot: {exc}") from None
            base_seq = snap.sequence
            for d in snap.meta.get("instruments", []):
                self._register(InstrumentSpec.from_json(d))
            self.stats.restore(snap.meta.get("stats", {}))
            self.last_ts = int(snap.meta.get("last_ts", 0))
            book_seqs = {int(k): int(v) for k, v in snap.meta.get("book_seqs", {}).items()}
            log.info(
                "snapshot loaded",
                extra={"fields": {"path": str(snap.path), "sequence": base_seq}},
            )
        else:
            engine = new_engine(self.settings.max_orders, self.settings.default_max_open_orders)
        self.engine = engine
        self.last_snapshot_seq = base_seq

        # The events log is derived data: keep what precedes the snapshot (it was fsynced
        # before the snapshot was written) and regenerate the rest from the journal.
        self.events_log.open(keep_records=False)
        self.events_log.truncate_after(base_seq)
        if self.events_log.next_seq < base_seq + 1:
            log.error(
                "execution history is missing sequences %d..%d (events log lost records)",
                self.events_log.next_seq,
                base_seq,
            )
            self.events_log.skip_to(base_seq + 1)

        state = _Replay(self, engine, base_seq, book_seqs)
        self.journal.open(keep_records=False, on_record=state.record)
        state.flush()
        if self.journal.truncated_bytes:
            log.warning(
                "journal: cut a torn record at the end (%d bytes never acknowledged)",
                self.journal.truncated_bytes,
            )
        last = max(base_seq, state.last_seq)
        if self.journal.next_seq <= last:
            # Snapshot newer than the journal's end (only possible without fsync=every
            # after a machine crash): continue the journal after the snapshot.
            self.journal.skip_to(last + 1)
        self.next_seq = last + 1
        self.processed_seq = self.durable_seq = self.published_seq = last
        self.replayed_commands = state.commands
        self._reconcile_instruments(engine)
        for sid in self.specs:
            self.md.add_symbol(sid)
            depth = engine.depth(sid, 1 << 30)
            for lvl in depth.bids:
                self.md.load_level(sid, 1, lvl.price, lvl.qty, lvl.order_count)
            for lvl in depth.asks:
                self.md.load_level(sid, 2, lvl.price, lvl.qty, lvl.order_count)
            self.md.books[sid].book_seq = state.book_seqs.get(sid, 0)
        self._commands_at_last_snapshot = self.stats.commands
        self.recovery_seconds = time.perf_counter() - t0
        log.info(
            "recovery complete",
            extra={
                "fields": {
                    "snapshot_sequence": base_seq,
                    "replayed_commands": state.commands,
                    "last_sequence": last,
                    "seconds": round(self.recovery_seconds, 3),
                    "state_hash": f"{engine.state_hash():016x}",
                }
            },
        )

    def _register(self, spec: InstrumentSpec) -> None:
        self.specs[spec.symbol_id] = spec
        self.by_symbol[spec.symbol] = spec
        self.infos[spec.symbol_id] = (spec.symbol, spec.tick_str, spec.lot_str)

    def _reconcile_instruments(self, engine: CoreEngine) -> None:
        """Add instruments that are new in the config (journaled); refuse contradictions."""
        new: list[InstrumentSpec] = []
        for spec in self.config.instruments:
            have = self.specs.get(spec.symbol_id)
            if have is None:
                other = self.by_symbol.get(spec.symbol)
                if other is not None:
                    raise RuntimeError(
                        f"config: instrument {spec.symbol} has symbol_id {spec.symbol_id}, but the "
                        f"journal has it as symbol_id {other.symbol_id}; ids cannot change"
                    )
                new.append(spec)
                continue
            for name in ("symbol", "tick_size", "lot_size"):
                if getattr(have, name) != getattr(spec, name):
                    raise RuntimeError(
                        f"config: instrument {spec.symbol_id} ({have.symbol}): {name} is "
                        f"{getattr(spec, name)} in the config but {getattr(have, name)} in the "
                        "journal; resting orders are in the journaled units, so this cannot change"
                    )
            for name in ("min_qty", "max_qty", "band_bps"):
                if getattr(have, name) != getattr(spec, name):
                    log.warning(
                        "config: instrument %s: %s differs from the journaled value (%s vs %s); "
                        "the journaled value stays in force",
                        spec.symbol,
                        name,
                        getattr(spec, name),
                        getattr(have, name),
                    )
        if new:
            payload = json.dumps([s.to_json() for s in new]).encode()
            self.journal.append(KIND_INSTRUMENTS, self.next_seq, self.next_seq - 1, payload)
            self.journal.sync()
            for spec in new:
                engine.add_instrument(spec.to_core())
                self._register(spec)
            log.info("instruments added", extra={"fields": {"symbols": [s.symbol for s in new]}})

    # ------------------------------------------------------------------ running

    def start(self) -> None:
        """Start the sequencer and timers (after `recover`)."""
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._tasks = [asyncio.create_task(self._sequencer(), name="sequencer")]
        if self.fsync == "interval":
            self._tasks.append(asyncio.create_task(self._fsync_timer(), name="fsync-timer"))
        if self.settings.snapshot_interval_s > 0 or self.settings.snapshot_every_commands > 0:
            self._tasks.append(asyncio.create_task(self._snapshot_timer(), name="snapshot-timer"))
        self.state = State.SERVING

    def submit(
        self, cmds: np.ndarray[Any, Any], t_recv: int, *, raw: bool = False
    ) -> asyncio.Future[Result]:
        """Sequence commands (COMMAND_DTYPE); the future resolves once they are journaled.

        `t_recv` is when the request was received (perf_counter_ns): the processing
        latency is measured from it. With `raw`, the Result carries the events as an
        array (cmd_index rebased to the caller's commands) instead of rows.

        Raises ServiceUnavailableError when not serving, OverloadedError when the queue is full.
        """
        if self.state is not State.SERVING:
            raise ServiceUnavailableError(f"engine is {self.state.value}")
        assert self._loop is not None
        n = len(cmds)
        if self._pending or not self._can_process():
            if self._pending_cmds + n > self.settings.queue_capacity and self._pending_cmds > 0:
                raise OverloadedError(
                    f"engine queue is full ({self._pending_cmds} commands waiting); retry later"
                )
            fut: asyncio.Future[Result] = self._loop.create_future()
            self._pending.append(_Pending(cmds, fut, t_recv, raw))
            self._pending_cmds += n
            assert self._wakeup is not None
            self._wakeup.set()
            return fut
        # Nothing waits before these commands: process them now, in the caller's step,
        # instead of waking the sequencer task (a hop through the event loop that lets
        # every other ready handler run first). Sequence order is submit order either way.
        fut = self._loop.create_future()
        self._process([_Pending(cmds, fut, t_recv, raw)], n)
        return fut

    def _can_process(self) -> bool:
        """Whether commands may go through the core now: not while a snapshot is being
        captured, and not while too much processed work waits for the journal."""
        return not self._capturing and self._unjournaled_cmds < self._max_unjournaled

    def _process(self, items: list[_Pending], n: int) -> None:
        """Sequence and process `items` (n commands in all) as one batch and queue it for
        the journal. No result leaves before the batch's journal write (`_commit`)."""
        assert self.engine is not None
        cmds = items[0].cmds if len(items) == 1 else _concat([it.cmds for it in items])
        ts = time.time_ns()
        if ts < self.last_ts:
            ts = self.last_ts
        self.last_ts = ts
        cmds["ts"] = ts
        first = self.next_seq
        self.next_seq += n
        try:
            events = self.engine.process(cmds)
        except Exception as exc:  # the core refusing a batch is a bug: stop, keep the journal
            self._fail(items, exc)
            self._die(exc)
            return
        t_ready = time.perf_counter_ns()
        self.processed_seq = first + n - 1
        # One sample per command; vectorised only when it pays (numpy has a fixed cost).
        hist = self.stats.processing
        if n <= 32:
            for it in items:
                lat = t_ready - it.t_recv
                for _ in range(len(it.cmds)):
                    hist.record(lat)
        else:
            hist.record_many(
                np.repeat(
                    np.array([t_ready - it.t_recv for it in items], dtype=np.int64),
                    [len(it.cmds) for it in items],
                )
            )
        if len(events) <= SMALL_BATCH:
            rows = events.tolist()
            exec_events, exec_rows = _exec_rows_small(events, rows)
            batch = _Batch(
                first, first + n - 1, ts, cmds, events, exec_events, items, t_ready, rows, exec_rows
            )
        else:
            batch = _Batch(
                first, first + n - 1, ts, cmds, events, _exec_rows(events), items, t_ready
            )
        self._unjournaled.append(batch)
        self._unjournaled_cmds += n
        if not self._writing:
            # The disk is idle: this batch goes now (a small unsynced write even answers
            # the caller before it awaits). Batches processed while a write is in flight
            # share the next write and fsync (group commit).
            self._commit()

    async def _sequencer(self) -> None:
        """Processes what `submit` could not process at once: commands that arrived while
        a snapshot was captured, while the journal was too far behind, or behind others."""
        assert self._wakeup is not None
        max_group = self.settings.max_group_commit
        while True:
            if self._fatal is not None:
                return
            if self._snapshot_requests and not self._snapshot_running:
                await self._capture_snapshot()
                continue
            if not self._pending or not self._can_process():
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            items: list[_Pending] = []
            n = 0
            while self._pending and (n == 0 or n + len(self._pending[0].cmds) <= max_group):
                it = self._pending.popleft()
                items.append(it)
                n += len(it.cmds)
            self._pending_cmds -= n
            self._process(items, n)
            if self._pending:
                # Let the journal write of this group start before the next one.
                await asyncio.sleep(0)

    async def _capture_snapshot(self) -> None:
        """Capture the core at a batch boundary with nothing in flight (processed ==
        published), then write it in the background."""
        assert self.engine is not None
        self._snapshot_running = True
        self._capturing = True
        waiters, self._snapshot_requests = self._snapshot_requests, []
        try:
            try:
                await self.wait_durable(self.processed_seq)
            except FatalEngineError as exc:
                for w in waiters:
                    if not w.done():
                        w.set_exception(exc)
                self._snapshot_running = False
                return
            seq = self.published_seq
            meta = {
                "sequence": seq,
                "instruments": [s.to_json() for s in self.specs.values()],
                "book_seqs": {str(k): v for k, v in self.md.book_seqs().items()},
                "stats": self.stats.persistent(),
                "last_ts": self.last_ts,
                "implementation": self.implementation,
                "state_hash": f"{self.engine.state_hash():016x}",
            }
            core = self.engine.snapshot()
        except BaseException:
            self._snapshot_running = False
            raise
        finally:
            self._capturing = False
            if self._wakeup is not None:
                self._wakeup.set()
        job = _SnapshotJob(seq, meta, core)
        task = asyncio.create_task(self._write_snapshot(job, waiters))
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    async def _write_snapshot(
        self, job: _SnapshotJob, waiters: list[asyncio.Future[tuple[int, str]]]
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            # The history before the snapshot must be durable: recovery keeps the
            # events log only up to the snapshot and regenerates the rest.
            await self._io_call(self.events_log.sync)
            path = await loop.run_in_executor(
                self._snap_io,
                snapshots.write_snapshot,
                self.snapshot_dir,
                job.sequence,
                job.meta,
                job.core,
            )
            removed = await loop.run_in_executor(
                self._snap_io, snapshots.prune, self.snapshot_dir, self.settings.snapshots_keep
            )
            kept = snapshots.list_snapshots(self.snapshot_dir)
            oldest = kept[-1][0] if kept else 0
            pruned = await self._io_call(self.journal.prune_through, oldest)
            self.stats.snapshots += 1
            self.last_snapshot_seq = job.sequence
            log.info(
                "snapshot written",
                extra={
                    "fields": {
                        "path": str(path),
                        "sequence": job.sequence,
                        "bytes": len(job.core),
                        "removed_snapshots": len(removed),
                        "pruned_segments": [p.name for p in pruned],
                    }
                },
            )
            for w in waiters:
                if not w.done():
                    w.set_result((job.sequence, str(path)))
        except Exception as exc:
            log.exception("snapshot failed")
            for w in waiters:
                if not w.done():
                    w.set_exception(exc)
        finally:
            self._snapshot_running = False
            if self._wakeup is not None:
                self._wakeup.set()

    def request_snapshot(self) -> asyncio.Future[tuple[int, str]]:
        """Ask for a snapshot at the next batch boundary; resolves to (sequence, path)."""
        fut: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        self._snapshot_requests.append(fut)
        if self._wakeup is not None:
            self._wakeup.set()
        return fut

    def _journal_write(self, batches: list[_Batch]) -> int:
        """Append a commit group to the journal as one record, fsync once per policy, then
        append its execution events to the events log. Runs in the journal thread or,
        for small unsynced groups, on the event loop while that thread is idle (so the
        logs are never touched from two threads at once)."""
        written = self.journal.append_parts(
            KIND_COMMANDS,
            batches[0].first_seq,
            batches[-1].last_seq,
            [b.cmds.view(np.uint8) for b in batches],
        )
        if self.fsync == "every":
            # Opened for synchronous writes, the journal has nothing left to flush; the
            # call keeps the policy visible here and costs no system call.
            self.journal.sync()
        # Runs of small batches (single commands) share one events record; a large
        # batch's events are written as they are rather than copied to rebase them.
        run: list[_Batch] = []
        for b in batches:
            if len(b.exec_events) >= _MERGE_EVENTS:
                self._append_events(run)
                self._append_events([b])
                run = []
            elif len(b.exec_events):
                run.append(b)
        self._append_events(run)
        return written

    def _append_events(self, run: list[_Batch]) -> None:
        if not run:
            return
        ex = run[0].exec_events if len(run) == 1 else _merge_exec(run)
        self.events_log.append(KIND_EVENTS, run[0].first_seq, run[-1].last_seq, ex.view(np.uint8))

    async def _io_call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a log operation other than a commit in the journal thread, in order with
        the journal writes. Until it has finished (even if the caller is cancelled),
        commits go through that thread too instead of writing on the event loop."""
        loop = self._loop or asyncio.get_running_loop()
        self._io_ops += 1

        def done(_: concurrent.futures.Future[Any]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to count
                loop.call_soon_threadsafe(self._io_done)

        cf = self._io.submit(fn, *args)
        cf.add_done_callback(done)
        return await asyncio.wrap_future(cf, loop=loop)

    def _io_done(self) -> None:
        self._io_ops -= 1

    def _commit(self) -> None:
        """Write everything processed and not yet journaled as one group; answer and
        publish it once written (and fsynced under fsync=every)."""
        if self._writing or not self._unjournaled or self._fatal is not None:
            return
        batches = self._unjournaled
        n = self._unjournaled_cmds
        self._unjournaled = []
        self._unjournaled_cmds = 0
        t0 = time.perf_counter_ns()
        if n <= _INLINE_WRITE and self.fsync != "every" and not self._io_ops:
            # A small write costs less than a thread handoff (two context switches).
            try:
                written = self._journal_write(batches)
            except BaseException as exc:
                self._journal_failed(batches, exc)
                return
            self._committed(batches, written, t0)
            return
        self._writing = True
        loop = self._loop
        assert loop is not None

        def done(f: concurrent.futures.Future[int]) -> None:
            # Journal thread: hand the result to the loop directly (no task in between).
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(self._written, batches, f, t0)

        self._io.submit(self._journal_write, batches).add_done_callback(done)

    def _written(self, batches: list[_Batch], f: concurrent.futures.Future[int], t0: int) -> None:
        self._writing = False
        exc = f.exception()
        if exc is not None:
            self._journal_failed(batches, exc)
            return
        self._committed(batches, f.result(), t0)
        if self._unjournaled:
            # Processed while the disk was busy: the next group goes right away.
            self._commit()
        if self._pending and self._wakeup is not None:
            self._wakeup.set()

    def _committed(self, batches: list[_Batch], written: int, t0: int) -> None:
        self.stats.journal.record(time.perf_counter_ns() - t0)
        st = self.stats
        st.journal_batches += 1
        st.journal_bytes += written
        for b in batches:
            self._publish(b)

    def _journal_failed(self, batches: list[_Batch], exc: BaseException) -> None:
        err = FatalEngineError(f"journal write failed: {exc}")
        for b in batches:
            self._fail(b.items, err)
        self._die(exc)

    def _publish(self, b: _Batch) -> None:
        """A journaled batch: answer its callers, then publish its events."""
        st = self.stats
        n = b.last_seq - b.first_seq + 1
        st.commands += n
        ex = b.exec_events
        if b.exec_rows is not None and n <= 32:
            # Small batches: counting in Python beats numpy's fixed cost per call.
            st.orders += b.cmds["kind"].tolist().count(SUBMIT)
            types = [r[E_TYPE] for r in b.exec_rows]
            st.trades += types.count(T_TRADE)
            st.rejects += (
                types.count(T_REJECTED)
                + types.count(T_CANCEL_REJECTED)
                + types.count(T_AMEND_REJECTED)
            )
        else:
            st.orders += int(np.count_nonzero(b.cmds["kind"] == SUBMIT))
            et = ex["type"]
            st.trades += int(np.count_nonzero(et == T_TRADE))
            st.rejects += _count_rejects(et)
        self.durable_seq = b.last_seq
        self._resolve(b)
        # The subscribers and published_seq move together, with no await in between,
        # so a stream switching from history to live misses nothing.
        self.md.apply(b.first_seq, b.events, b.rows)
        if len(ex):
            item = (b.first_seq, ex)
            for sub in self.exec_subscribers:
                sub.push(item)
        self.published_seq = b.last_seq
        if self._durable_waiters:
            still = []
            for seq, fut in self._durable_waiters:
                if seq <= self.durable_seq:
                    if not fut.done():
                        fut.set_result(None)
                else:
                    still.append((seq, fut))
            self._durable_waiters = still

    def _resolve(self, b: _Batch) -> None:
        ex = b.exec_events
        n = b.last_seq - b.first_seq + 1
        if len(b.items) == 1 and n == 1:
            # One command (the unary rpcs): all of the events are its own.
            it = b.items[0]
            if not it.future.done():
                if it.raw:
                    it.future.set_result(Result(b.first_seq, b.ts, [], [], ex))
                else:
                    own = ex.tolist() if b.exec_rows is None else b.exec_rows
                    it.future.set_result(Result(b.first_seq, b.ts, own, [0, len(own)]))
            return
        bounds = np.searchsorted(ex["cmd_index"], np.arange(n + 1), side="left").tolist()
        rows: list[tuple[int, ...]] | None = None
        offset = 0
        for it in b.items:
            k = len(it.cmds)
            if not it.future.done():
                lo, hi = bounds[offset], bounds[offset + k]
                if it.raw:
                    # Readers of the events only read: the first caller's part needs no copy.
                    part = ex[lo:hi]
                    if offset:
                        part = copy_rows(part)
                        part["cmd_index"] -= offset
                    it.future.set_result(Result(b.first_seq + offset, b.ts, [], [], part))
                else:
                    if rows is None:
                        rows = ex.tolist() if b.exec_rows is None else b.exec_rows
                    it.future.set_result(
                        Result(
                            b.first_seq + offset,
                            b.ts,
                            rows[lo:hi],
                            [x - lo for x in bounds[offset : offset + k + 1]],
                        )
                    )
            offset += k

    @staticmethod
    def _fail(items: Iterable[_Pending], exc: BaseException) -> None:
        err = exc
        if not isinstance(exc, FatalEngineError):
            err = FatalEngineError(f"engine stopped: {exc}")
        for it in items:
            if not it.future.done():
                it.future.set_exception(err)

    def _die(self, exc: BaseException) -> None:
        """The core state is ahead of the journal or the core failed: fail everything in
        flight and stop without a snapshot (recovery from the journal is correct)."""
        if self._fatal is not None:
            return
        log.critical("fatal engine error; stopping without a snapshot", exc_info=exc)
        self._fatal = exc
        self.state = State.STOPPING
        err = FatalEngineError(f"engine stopped: {exc}")
        self._fail(self._pending, err)
        self._pending.clear()
        self._pending_cmds = 0
        for b in self._unjournaled:
            self._fail(b.items, err)
        self._unjournaled = []
        self._unjournaled_cmds = 0
        for _, fut in self._durable_waiters:
            if not fut.done():
                fut.set_exception(err)
        self._durable_waiters = []
        for sub in self.exec_subscribers:
            sub.close()
        if self._wakeup is not None:
            self._wakeup.set()
        if self.on_fatal is not None:
            self.on_fatal(exc)

    async def wait_durable(self, seq: int) -> None:
        """Return once every command up to `seq` is journaled (and published).

        Raises FatalEngineError when the engine stops on a fatal error first."""
        if self._fatal is not None and seq > self.durable_seq:
            raise FatalEngineError(f"engine stopped: {self._fatal}")
        if seq <= self.durable_seq:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._durable_waiters.append((seq, fut))
        await fut

    async def _fsync_timer(self) -> None:
        interval = self.settings.fsync_interval_ms / 1000.0
        while True:
            await asyncio.sleep(interval)
            try:
                await self._io_call(self.journal.sync)
            except OSError as exc:
                self._die(exc)
                return

    async def _snapshot_timer(self) -> None:
        started = time.monotonic()
        every = self.settings.snapshot_every_commands
        interval = self.settings.snapshot_interval_s
        while True:
            await asyncio.sleep(1.0)
            since = self.stats.commands - self._commands_at_last_snapshot
            due_time = interval > 0 and time.monotonic() - started >= interval
            due_count = every > 0 and since >= every
            if (due_time or due_count) and since > 0 and not self._snapshot_running:
                self._commands_at_last_snapshot = self.stats.commands
                started = time.monotonic()
                fut = self.request_snapshot()
                with contextlib.suppress(Exception):
                    await fut

    # ------------------------------------------------------------------ subscribers

    def subscribe_executions(self) -> Subscriber[ExecItem]:
        sub: Subscriber[ExecItem] = Subscriber(self.settings.subscriber_queue)
        self.exec_subscribers.add(sub)
        return sub

    def unsubscribe_executions(self, sub: Subscriber[ExecItem]) -> None:
        self.exec_subscribers.discard(sub)

    def history_reader(self, from_seq: int) -> LogReader:
        return LogReader(self.events_log.directory, "events", from_seq)

    # ------------------------------------------------------------------ stop

    async def stop(self, snapshot: bool = True) -> None:
        """Stop accepting commands, drain what was accepted, snapshot, close the logs."""
        if self._fatal is None:
            self.state = State.STOPPING
            # Shutdown only: polling keeps the hot path free of extra signalling.
            while self._pending and self._fatal is None:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            with contextlib.suppress(FatalEngineError):
                await self.wait_durable(self.processed_seq)
            if snapshot and self._fatal is None and self.published_seq > self.last_snapshot_seq:
                fut = self.request_snapshot()
                try:
                    await asyncio.wait_for(fut, timeout=120)
                except Exception:
                    log.exception("final snapshot failed")
            while self._snapshot_running:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        for sub in list(self.exec_subscribers):
            sub.close()
        for md_sub, _ in list(self.md.subscribers):
            md_sub.close()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(BaseException):
                await t
        if self._fatal is None:
            await self._io_call(self._close_logs)
        self._io.shutdown(wait=True)
        self._snap_io.shutdown(wait=True)

    def _close_logs(self) -> None:
        self.journal.close()
        self.events_log.close()

    # ------------------------------------------------------------------ queries

    def queue_depth(self) -> int:
        return self._pending_cmds

    def subscriber_count(self) -> int:
        return len(self.exec_subscribers) + len(self.md.subscribers)


class _Replay:
    """Journal replay at recovery: batches commands into large `process` calls and
    regenerates the events log after the snapshot."""

    def __init__(
        self, svc: EngineService, engine: CoreEngine, base_seq: int, book_seqs: dict[int, int]
    ) -> None:
        self.svc = svc
        self.engine = engine
        self.base_seq = base_seq
        self.book_seqs = dict(book_seqs)
        self.last_seq = base_seq
        self.commands = 0
        self._chunks: list[np.ndarray[Any, Any]] = []
        self._chunk_first = base_seq + 1
        self._chunk_n = 0

    def record(self, rec: Record) -> None:
        kind, first, last, payload = rec.kind, rec.first_seq, rec.last_seq, rec.payload
        where = (rec.path, rec.offset)
        if last <= self.base_seq and not (kind == KIND_INSTRUMENTS and first > self.base_seq):
            return
        if kind == KIND_INSTRUMENTS:
            self.flush()
            for d in json.loads(payload):
                spec = InstrumentSpec.from_json(d)
                if spec.symbol_id not in self.svc.specs:
                    self.engine.add_instrument(spec.to_core())
                    self.svc._register(spec)
            return
        if kind != KIND_COMMANDS:
            raise JournalCorruptError(where[0], where[1], f"unknown record kind {kind}")
        if first > self.last_seq + 1:
            raise JournalCorruptError(
                where[0],
                where[1],
                f"journal is missing sequences {self.last_seq + 1}..{first - 1} after the snapshot "
                f"at {self.base_seq}; restore the data directory from a backup",
            )
        cmds = np.frombuffer(payload, dtype=COMMAND_DTYPE)
        if len(cmds) != last - first + 1:
            raise JournalCorruptError(
                where[0], where[1], "record length does not match its sequence range"
            )
        skip = self.last_seq + 1 - first
        if skip > 0:
            cmds = cmds[skip:]
        self._chunks.append(cmds)
        self._chunk_n += len(cmds)
        self.last_seq = last
        if self._chunk_n >= REPLAY_CHUNK:
            self.flush()

    def flush(self) -> None:
        if not self._chunk_n:
            return
        cmds = np.concatenate(self._chunks) if len(self._chunks) > 1 else self._chunks[0].copy()
        first = self._chunk_first
        events = self.engine.process(cmds)
        n = len(cmds)
        st = self.svc.stats
        st.commands += n
        st.orders += int(np.count_nonzero(cmds["kind"] == SUBMIT))
        et = events["type"]
        st.trades += int(np.count_nonzero(et == T_TRADE))
        st.rejects += _count_rejects(et)
        self.svc.last_ts = max(self.svc.last_ts, int(cmds["ts"].max()))
        is_md = (et == T_TRADE) | (et == T_BOOK_CHANGE)
        if is_md.any():
            sids = events["symbol_id"][is_md]
            bseq = events["book_seq"][is_md]
            for sid in np.unique(sids).tolist():
                self.book_seqs[sid] = int(bseq[sids == sid].max())
        ex = select_rows(events, et != T_BOOK_CHANGE)
        log_ = self.svc.events_log
        if len(ex):
            log_.append(KIND_EVENTS, first, first + n - 1, ex.view(np.uint8))
        self.commands += n
        self._chunks = []
        self._chunk_first = first + n
        self._chunk_n = 0


def state_hash_of(svc: EngineService) -> int:
    assert svc.engine is not None
    return svc.engine.state_hash()


def instruments_of(svc: EngineService) -> Iterable[tuple[InstrumentSpec, Instrument | None]]:
    """Each configured instrument with the core's live view (status, reference price)."""
    assert svc.engine is not None
    live = {i.symbol_id: i for i in svc.engine.instruments()}
    for sid in sorted(svc.specs):
        yield svc.specs[sid], live.get(sid)
