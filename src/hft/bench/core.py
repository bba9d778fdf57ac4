"""Benchmark of the matching core from Python (and, optionally, the native binary).

Paths measured on the same workload (see `hft.bench.workload`):

* ``batch``: `Core.process` on chunks of COMMAND_DTYPE records, events taken out after
  each chunk. Latency per operation is the chunk's wall time divided by its size (the
  batch path has no per-operation timing), so its percentiles describe chunks.
* ``per_call``: one `Core.submit` / `cancel` / `amend` call per operation, events
  drained in bulk with `take_events` every `--drain` operations. Every `--sample`-th call
  is timed alone with `time.perf_counter_ns` (the timer's own ~50-100 ns are included).
* ``facade``: the typed `hft.engine.Engine` methods on the first `--facade-ops`
  operations: one call per operation, each returning `Event` objects.
* ``reference``: the pure-Python reference book on the first `--ref-ops` operations,
  for scale; its state hash must equal the core's after the same operations.
* ``native``: the C++ benchmark binary (`make bench` builds it) on the same .npy file;
  its JSON is included as printed.
* ``resting_memory``: RSS of a fresh process holding N resting orders.

Nothing here asserts a speed: it measures and reports.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from hft.bench import workload as wl
from hft.engine import (
    COMMAND_DTYPE,
    EVENT_DTYPE,
    CommandKind,
    Engine,
    EventType,
    ReferenceEngine,
)
from hft.histogram import LatencyHistogram

TITLE = "Matching core"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `hft bench core` (also accepted by `hft bench all`)."""
    parser.add_argument("--workload", help="replay this .npy/.csv workload instead of generating")
    parser.add_argument("--ops", type=int, default=1_000_000, help="operations to generate")
    parser.add_argument("--symbols", type=int, default=1, help="symbols in a generated workload")
    parser.add_argument("--seed", type=int, default=1, help="seed of a generated workload")
    parser.add_argument("--chunk", type=int, default=4096, help="batch path: commands per call")
    parser.add_argument(
        "--drain", type=int, default=4096, help="per-call path: take_events every N"
    )
    parser.add_argument(
        "--sample", type=int, default=16, help="per-call path: time every N-th call"
    )
    parser.add_argument(
        "--facade-ops", type=int, default=200_000, help="typed Engine methods ops (0 = skip)"
    )
    parser.add_argument("--ref-ops", type=int, default=20_000, help="reference ops (0 = skip)")
    parser.add_argument(
        "--resting",
        type=int,
        default=1_000_000,
        help="resting orders for the memory test (0 = skip)",
    )
    parser.add_argument("--native", help="path of the native benchmark binary (core_bench)")


def _summary(hist: LatencyHistogram) -> dict[str, float]:
    s = hist.summary()
    return {"p50_ns": s["p50"], "p99_ns": s["p99"], "p999_ns": s["p999"], "max_ns": s["max"]}


def _new_engine(symbols: int, max_orders: int = 1 << 22) -> Engine:
    eng = Engine(max_orders=max_orders)
    for inst in wl.instruments(symbols):
        eng.add_instrument(inst)
    return eng


def _symbols_of(cmds: np.ndarray[Any, Any]) -> int:
    return max(1, int(cmds["symbol_id"].max())) if len(cmds) else 1


def bench_batch(cmds: np.ndarray[Any, Any], chunk: int) -> dict[str, Any]:
    """Replay through `Core.process` in chunks of `chunk` commands."""
    eng = _new_engine(_symbols_of(cmds))
    core = eng.core
    raw = np.ascontiguousarray(cmds)
    chunks = [raw[i : i + chunk].view(np.uint8).data for i in range(0, len(raw), chunk)]
    per_chunk = np.zeros(len(chunks), dtype=np.int64)
    trades = events = 0
    clock = time.perf_counter_ns
    t_start = clock()
    for k, buf in enumerate(chunks):
        t0 = clock()
        core.process(buf)
        ev = core.take_events()
        per_chunk[k] = clock() - t0
        # Counting is cheap next to matching but is not part of the engine's work.
        events += len(ev) // EVENT_DTYPE.itemsize
        trades += int(np.count_nonzero(ev.view(EVENT_DTYPE)["type"] == EventType.TRADE))
    seconds = (clock() - t_start) / 1e9
    hist = LatencyHistogram()
    sizes = np.array([b.nbytes // COMMAND_DTYPE.itemsize for b in chunks], dtype=np.int64)
    hist.record_many(np.repeat(per_chunk // np.maximum(sizes, 1), sizes))
    matching_seconds = float(per_chunk.sum()) / 1e9
    return {
        "path": "batch",
        "ops": len(cmds),
        "seconds": round(seconds, 4),
        "ops_per_s": round(len(cmds) / seconds) if seconds else 0,
        "engine_ops_per_s": round(len(cmds) / matching_seconds) if matching_seconds else 0,
        "chunk": chunk,
        "latency": "per-chunk wall time / chunk size",
        **_summary(hist),
        "events": events,
        "trades": trades,
        "state_hash": f"{eng.state_hash():016x}",
        "live_orders": eng.live_orders(),
    }


def bench_per_call(cmds: np.ndarray[Any, Any], drain: int, sample: int) -> dict[str, Any]:
    """Replay one core call per operation, draining events in bulk."""
    eng = _new_engine(_symbols_of(cmds))
    core = eng.core
    cols = [
        cmds[name].tolist()
        for name in (
            "kind",
            "order_id",
            "account_id",
            "symbol_id",
            "side",
            "type",
            "tif",
            "price",
            "qty",
            "post_only",
            "stp",
            "ts",
        )
    ]
    rows = list(zip(*cols, strict=True))
    submit, cancel, amend, take = core.submit, core.cancel, core.amend, core.take_events
    clock = time.perf_counter_ns
    samples = np.zeros(len(rows) // max(sample, 1) + 1, dtype=np.int64)
    ns = 0
    trades = 0
    sub_kind, cancel_kind = int(CommandKind.SUBMIT), int(CommandKind.CANCEL)
    t_start = clock()
    for i, (kind, oid, acc, sym, side, typ, tif, price, qty, po, stp, ts) in enumerate(rows):
        timed = i % sample == 0
        if timed:
            t0 = clock()
        if kind == sub_kind:
            submit(oid, acc, sym, side, typ, tif, price, qty, po, stp, ts)
        elif kind == cancel_kind:
            cancel(oid, acc, ts)
        else:
            amend(oid, acc, price, qty, ts)
        if timed:
            samples[ns] = clock() - t0
            ns += 1
        if i % drain == drain - 1:
            ev = take()
            trades += int(np.count_nonzero(ev.view(EVENT_DTYPE)["type"] == EventType.TRADE))
    ev = take()
    seconds = (clock() - t_start) / 1e9
    trades += int(np.count_nonzero(ev.view(EVENT_DTYPE)["type"] == EventType.TRADE))
    hist = LatencyHistogram()
    hist.record_many(samples[:ns])
    return {
        "path": "per_call",
        "ops": len(rows),
        "seconds": round(seconds, 4),
        "ops_per_s": round(len(rows) / seconds) if seconds else 0,
        "latency": f"perf_counter_ns around every {sample}th call",
        "latency_samples": ns,
        **_summary(hist),
        "trades": trades,
        "state_hash": f"{eng.state_hash():016x}",
        "live_orders": eng.live_orders(),
    }


def bench_facade(cmds: np.ndarray[Any, Any]) -> dict[str, Any]:
    """Replay through the typed `Engine` methods (each returns a list of Event objects)."""
    eng = _new_engine(_symbols_of(cmds))
    rows = list(
        zip(
            *(
                cmds[n].tolist()
                for n in ("kind", "order_id", "account_id", "symbol_id", "side", "type", "tif")
            ),
            *(cmds[n].tolist() for n in ("price", "qty", "ts")),
            strict=True,
        )
    )
    trades = 0
    sub_kind, cancel_kind = int(CommandKind.SUBMIT), int(CommandKind.CANCEL)
    t0 = time.perf_counter()
    for kind, oid, acc, sym, side, typ, tif, price, qty, ts in rows:
        if kind == sub_kind:
            events = eng.submit(oid, acc, sym, side, typ, tif, price, qty, ts=ts)
        elif kind == cancel_kind:
            events = eng.cancel(oid, acc, ts=ts)
        else:
            events = eng.amend(oid, acc, price, qty, ts=ts)
        trades += sum(1 for e in events if e.type == EventType.TRADE)
    seconds = time.perf_counter() - t0
    return {
        "path": "facade",
        "ops": len(rows),
        "seconds": round(seconds, 4),
        "ops_per_s": round(len(rows) / seconds) if seconds else 0,
        "latency": "not measured",
        "trades": trades,
        "state_hash": f"{eng.state_hash():016x}",
    }


def bench_reference(cmds: np.ndarray[Any, Any]) -> dict[str, Any]:
    """Replay through the pure-Python reference book and cross-check the core's hash."""
    symbols = _symbols_of(cmds)
    ref = ReferenceEngine(max_orders=1 << 22)
    for inst in wl.instruments(symbols):
        ref.add_instrument(inst)
    t0 = time.perf_counter()
    ev = ref.process(cmds)
    seconds = time.perf_counter() - t0
    core = _new_engine(symbols)
    core.process(cmds)
    return {
        "path": "reference",
        "ops": len(cmds),
        "seconds": round(seconds, 4),
        "ops_per_s": round(len(cmds) / seconds) if seconds else 0,
        "latency": "not measured",
        "trades": int(np.count_nonzero(ev["type"] == EventType.TRADE)),
        "state_hash": f"{ref.state_hash():016x}",
        "same_state_as_core": ref.state_hash() == core.state_hash(),
    }


def _resting_child(n: int) -> None:
    import psutil

    proc = psutil.Process()
    eng = Engine(max_orders=max(n, 1))
    for inst in wl.instruments(1):
        eng.add_instrument(inst)
    base = proc.memory_info().rss
    cmds = np.zeros(n, dtype=COMMAND_DTYPE)
    cmds["kind"] = CommandKind.SUBMIT
    cmds["symbol_id"] = 1
    cmds["type"], cmds["tif"] = 1, 1
    cmds["order_id"] = np.arange(1, n + 1)
    cmds["account_id"] = np.arange(n) % 1000 + 1
    # Bids below 1_000_000 and asks above it: nothing crosses, 20_000 levels in all.
    side = np.arange(n) % 2 + 1
    cmds["side"] = side
    depth = np.arange(n) % 10_000 + 1
    cmds["price"] = np.where(side == 1, 1_000_000 - depth, 1_000_000 + depth)
    cmds["qty"] = 10
    # Small chunks keep the core's event buffer (retained capacity) out of the figure.
    chunk = 4096
    for i in range(0, n, chunk):
        eng.process(cmds[i : i + chunk])
    del cmds
    rss = proc.memory_info().rss
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "resting_orders": eng.live_orders(),
                "rss_mb": round(rss / 2**20, 1),
                "rss_before_orders_mb": round(base / 2**20, 1),
                "rss_for_orders_mb": round((rss - base) / 2**20, 1),
                "peak_rss_mb": round(peak_kb / 1024, 1),
            }
        )
    )


def bench_resting_memory(n: int) -> dict[str, Any]:
    """RSS of a fresh Python process holding `n` resting orders in the core."""
    code = f"from hft.bench.core import _resting_child; _resting_child({int(n)})"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def run_native(binary: str, *native_args: str) -> dict[str, Any]:
    """Run the native benchmark (`core_bench WORKLOAD.npy` or `core_bench --resting N`).

    Returns its JSON, or {"error": ...} when the binary is missing or fails.
    """
    path = Path(binary)
    if not path.is_file():
        return {"error": f"native benchmark {binary} not found (build it with `make bench`)"}
    proc = subprocess.run([str(path), *native_args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-500:]}"}
    try:
        result: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return {"error": "native benchmark printed no JSON", "output": proc.stdout[-500:]}
    return result


def _workload(args: argparse.Namespace) -> tuple[np.ndarray[Any, Any], str]:
    if args.workload:
        return wl.load(args.workload), str(args.workload)
    cmds = wl.generate(args.ops, args.symbols, args.seed)
    return cmds, f"generated: ops={args.ops} symbols={args.symbols} seed={args.seed}"


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run every core benchmark; returns the result dict (see hft.bench for its shape)."""
    cmds, source = _workload(args)
    kinds = np.bincount(cmds["kind"], minlength=4)
    results: list[dict[str, Any]] = [bench_batch(cmds, args.chunk)]
    results.append(bench_per_call(cmds, args.drain, args.sample))
    if args.facade_ops > 0:
        results.append(bench_facade(cmds[: args.facade_ops]))
    if args.ref_ops > 0:
        results.append(bench_reference(cmds[: args.ref_ops]))
    native: dict[str, Any] | None = None
    if args.native:
        if args.workload and str(args.workload).endswith(".npy"):
            native = run_native(args.native, str(args.workload))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                npy = wl.save(cmds, Path(tmp) / "workload.npy")[0]
                native = run_native(args.native, str(npy))
    memory = bench_resting_memory(args.resting) if args.resting > 0 else None
    native_memory = None
    if args.native and args.resting > 0:
        native_memory = run_native(args.native, "--resting", str(args.resting))
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rows = [
        {
            "path": r["path"],
            "ops": r["ops"],
            "ops/s": r["ops_per_s"],
            "p50 ns": r.get("p50_ns", ""),
            "p99 ns": r.get("p99_ns", ""),
            "p99.9 ns": r.get("p999_ns", ""),
            "trades": r["trades"],
        }
        for r in results
    ]
    if native and "error" not in native:
        rows.append(
            {
                "path": "native (C++)",
                "ops": native.get("ops", ""),
                "ops/s": native.get("ops_per_s", ""),
                "p50 ns": native.get("p50_ns", ""),
                "p99 ns": native.get("p99_ns", ""),
                "p99.9 ns": native.get("p999_ns", ""),
                "trades": native.get("trades", ""),
            }
        )
    notes = [
        f"Workload: {source}; {len(cmds)} operations "
        f"({kinds[1]} submits, {kinds[2]} cancels, {kinds[3]} amends).",
        "batch: latency is per-chunk wall time / chunk size; per_call: sampled per call, "
        "timer overhead included.",
    ]
    if native and "error" in native:
        notes.append(f"native: {native['error']}")
    if memory:
        notes.append(
            f"{memory['resting_orders']:,} resting orders from Python: RSS {memory['rss_mb']} MB "
            f"({memory['rss_for_orders_mb']} MB for the orders, "
            f"{memory['rss_before_orders_mb']} MB before them)."
        )
    if native_memory and "error" not in native_memory:
        notes.append(
            f"{native_memory.get('resting_orders', 0):,} resting orders in the native binary: "
            f"RSS {native_memory.get('rss_mb')} MB "
            f"({native_memory.get('bytes_per_order')} bytes per order)."
        )
    if native and "error" not in native:
        same = native.get("state_hash") == results[0]["state_hash"]
        native["same_state_as_batch"] = same
        notes.append(
            "native: the C++ binary replays the same .npy without Python "
            f"(repeat {native.get('repeat')}, chunk {native.get('chunk')}); latency per "
            "operation from rdtsc; final state hash "
            + ("equal to" if same else "DIFFERENT from")
            + " the batch path's."
        )
    return {
        "title": TITLE,
        "ops": len(cmds),
        "workload": source,
        "results": results,
        "native": native,
        "resting_memory": memory,
        "native_resting_memory": native_memory,
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "rows": rows,
        "notes": notes,
    }
