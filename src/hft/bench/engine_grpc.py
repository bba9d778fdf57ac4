"""Benchmark of the engine service over gRPC (real `hft engine` processes).

Measured, never asserted:

* ``unary``: SubmitOrder round trip (client send to response parsed) at 1 and 16
  requests in flight, with throughput; beside it a bare grpc.aio echo server (same
  event loop, same payload size, also a separate process) measured in the same run,
  alternating with the engine in rounds so that load from elsewhere hits both alike.
* ``batch``: SubmitOrders, SubmitOrderColumns and StreamOrders throughput (orders/s)
  with journaling fsync per group commit (`--fsync every`, the default) and with fsync
  off (`none`), the engine process's CPU time per order (user + system, all threads),
  and per-batch round trips; beside them bare grpc.aio echo servers (a bidi stream of
  single orders, and unary calls carrying the columnar batch) measured in the same run.
* ``processing``: the engine's own receipt-to-events-ready latency (GetStats) at load.
* ``recovery``: time to recover a journal of N commands (no snapshot).
* ``memory``: engine RSS idle and with N resting orders.

The client pre-serializes requests and skips response parsing in the throughput runs
so that the two cores of a small machine go to the engine, not the load generator.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import numpy as np

from hft.engine import columns
from hft.engine.client import EngineClient, order_request, pb
from hft.engine.config import load_config
from hft.engine.journal import KIND_COMMANDS, KIND_INSTRUMENTS, SegmentLog
from hft.engine.testing import DEFAULT_CONFIG, EngineProcess, default_core
from hft.engine.types import COMMAND_DTYPE, CommandKind
from hft.histogram import LatencyHistogram

TITLE = "Engine service (gRPC)"
_ECHO_METHOD = "/bench.Echo/Echo"
NOTES = [
    "server_cpu_us_per_order: user + system CPU time of the serving process (engine or "
    "echo server, all threads) during the run, divided by the orders sent",
    "batch_rtt: client send to response received per batch request (responses not "
    "parsed); p50_us/p99_us: the engine's own processing time per command (receipt of "
    "the request to events ready, GetStats), which includes waiting behind earlier batches",
    "the same seeded orders go through SubmitOrders (one message per order) and "
    "SubmitOrderColumns (one packed array per field)",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `hft bench engine_grpc`."""
    g = parser.add_argument_group("engine_grpc")
    g.add_argument(
        "--unary-ops", type=int, default=4000, help="SubmitOrder calls per in-flight level"
    )
    g.add_argument(
        "--unary-rounds",
        type=int,
        default=4,
        help="alternations between the echo baseline and the engine per in-flight level",
    )
    g.add_argument("--batch-size", type=int, default=2000, help="orders per SubmitOrders request")
    g.add_argument("--batch-orders", type=int, default=400_000, help="orders per batched run")
    g.add_argument("--batch-inflight", type=int, default=4, help="SubmitOrders requests in flight")
    g.add_argument(
        "--recovery-commands", type=int, default=1_000_000, help="journal size for recovery"
    )
    g.add_argument(
        "--resting-orders", type=int, default=1_000_000, help="resting orders for the RSS figure"
    )
    g.add_argument(
        "--engine-core", default=None, help="native or reference (default: native when built)"
    )


# ---------------------------------------------------------------------- helpers


def _summary_us(h: LatencyHistogram) -> dict[str, float]:
    return {
        "p50_us": round(h.percentile(50) / 1000, 1),
        "p99_us": round(h.percentile(99) / 1000, 1),
        "p999_us": round(h.percentile(99.9) / 1000, 1),
        "max_us": round(h.max / 1000, 1),
    }


def _resting_order(i: int, symbol: str = "AAPL") -> pb.OrderRequest:
    """Non-crossing limit orders: bids below 189.00, asks above 191.00 (AAPL ticks)."""
    buy = i % 2 == 0
    price = 18900 - (i // 2) % 900 if buy else 19100 + (i // 2) % 900
    return order_request(i + 1, 1 + i % 64, symbol, 1 if buy else 2, 1, 1, price, 1 + i % 10)


def _mixed_order(i: int, rng: np.random.Generator) -> pb.OrderRequest:
    """Limit orders around 190.00 (AAPL): about half cross, a third are IOC."""
    buy = bool(rng.integers(2))
    off = int(rng.integers(-30, 31))
    price = 19000 + off
    tif = 3 if rng.random() < 0.33 else 1
    return order_request(
        i + 1, 1 + i % 64, "AAPL", 1 if buy else 2, 1, tif, price, int(rng.integers(1, 11))
    )


def _rss(pid: int) -> int:
    import psutil

    return int(psutil.Process(pid).memory_info().rss)


async def _stats(address: str) -> pb.GetStatsResponse:
    async with EngineClient(address, timeout=60) as c:
        return await c.get_stats()


# ---------------------------------------------------------------------- echo server


async def _echo_serve(port_file: str) -> None:
    async def echo(request: bytes, context: Any) -> bytes:
        return request

    async def echo_stream(requests: Any, context: Any) -> Any:
        async for r in requests:
            yield r

    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo",
        {
            "Echo": grpc.unary_unary_rpc_method_handler(echo),
            "EchoStream": grpc.stream_stream_rpc_method_handler(echo_stream),
        },
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    # Written whole, then renamed: the parent never reads a half-written port.
    tmp_file = Path(port_file + ".tmp")
    await asyncio.to_thread(tmp_file.write_text, str(port))
    await asyncio.to_thread(os.replace, tmp_file, port_file)
    await server.wait_for_termination()


def _start_echo(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port_file = tmp / "echo.port"
    port_file.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hft.bench.engine_grpc", "--echo-server", str(port_file)],
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while not port_file.exists() or not port_file.read_text():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("echo server did not start")
        time.sleep(0.02)
    return proc, f"127.0.0.1:{port_file.read_text()}"


# ---------------------------------------------------------------------- unary


async def _unary(
    address: str,
    method: str,
    payloads: list[bytes],
    inflight: int,
    parse: Any,
    hist: LatencyHistogram,
) -> float:
    """Round trips of `payloads` with `inflight` concurrent callers, recorded in `hist`;
    returns the seconds they took."""
    async with grpc.aio.insecure_channel(address) as ch:
        call = ch.unary_unary(method)
        await call(payloads[0])  # connection set up outside the measurement
        it = iter(payloads[1:])

        async def worker() -> None:
            for p in it:
                t0 = time.perf_counter_ns()
                resp = await call(p)
                parse(resp)
                hist.record(time.perf_counter_ns() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(inflight)))
        return time.perf_counter() - t0


def _unary_row(measure: str, hist: LatencyHistogram, seconds: float) -> dict[str, Any]:
    return {"measure": measure, **_summary_us(hist), "ops_per_s": round(hist.count / seconds)}


def _bench_unary(tmp: Path, core: str, ops: int, rounds: int = 4) -> list[dict[str, Any]]:
    """SubmitOrder against the echo baseline. On a shared machine a burst of load from
    elsewhere would land on whichever of the two runs at that moment, so each in-flight
    level alternates `rounds` slices between them and merges the histograms."""
    rows: list[dict[str, Any]] = []
    echo_proc, echo_addr = _start_echo(tmp)
    engine = EngineProcess(tmp / "unary", core=core)
    engine.start()
    rounds = max(1, min(rounds, ops))
    try:
        orders = [_resting_order(i).SerializeToString() for i in range(2 * ops + 2 * rounds)]
        parse_order = pb.OrderResponse.FromString
        submit = "/trading.pb.TradingEngine/SubmitOrder"
        for level, inflight in enumerate((1, 16)):
            part = orders[level * (ops + rounds) : (level + 1) * (ops + rounds)]
            step = len(part) // rounds
            echo_h, eng_h = LatencyHistogram(), LatencyHistogram()
            echo_s = eng_s = 0.0
            for r in range(rounds):
                chunk = part[r * step : (r + 1) * step]
                echo_s += asyncio.run(
                    _unary(echo_addr, _ECHO_METHOD, chunk, inflight, bytes, echo_h)
                )
                eng_s += asyncio.run(
                    _unary(engine.address, submit, chunk, inflight, parse_order, eng_h)
                )
            echo = _unary_row(f"echo round trip, {inflight} in flight", echo_h, echo_s)
            eng = _unary_row(f"SubmitOrder round trip, {inflight} in flight", eng_h, eng_s)
            eng["p99_vs_echo"] = round(eng["p99_us"] / max(echo["p99_us"], 0.001), 2)
            rows += [echo, eng]
        st = asyncio.run(_stats(engine.address))
        nosync = EngineProcess(tmp / "unary-nosync", core=core, fsync="none")
        nosync.start()
        try:
            h = LatencyHistogram()
            secs = asyncio.run(_unary(nosync.address, submit, orders[: ops + 1], 1, parse_order, h))
            rows.append(_unary_row("SubmitOrder round trip, 1 in flight, fsync=none", h, secs))
        finally:
            nosync.kill()
        rows.append(
            {
                "measure": "engine processing during the unary runs (receipt to events ready)",
                "p50_us": round(st.processing.p50_us, 1),
                "p99_us": round(st.processing.p99_us, 1),
                "p999_us": round(st.processing.p999_us, 1),
                "max_us": round(st.processing.max_us, 1),
            }
        )
    finally:
        engine.kill()
        echo_proc.kill()
        echo_proc.wait()
    return rows


# ---------------------------------------------------------------------- batches


async def _batches(
    address: str, batches: list[bytes], inflight: int, method: str
) -> tuple[float, LatencyHistogram]:
    """Send every batch with `inflight` concurrent callers; returns (seconds, round trips)."""
    hist = LatencyHistogram()
    async with grpc.aio.insecure_channel(
        address,
        options=[
            ("grpc.max_receive_message_length", 256 << 20),
            ("grpc.max_send_message_length", 256 << 20),
        ],
    ) as ch:
        call = ch.unary_unary(method)
        await ch.channel_ready()
        it = iter(batches)

        async def worker() -> None:
            for b in it:
                t = time.perf_counter_ns()
                await call(b, timeout=120)
                hist.record(time.perf_counter_ns() - t)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(inflight)))
        return time.perf_counter() - t0, hist


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads)."""
    import psutil

    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def _order_columns(orders: list[pb.OrderRequest]) -> bytes:
    """The OrderColumns encoding of the same orders (built once, outside the timing)."""
    data, _symbols, _index, _ids = columns.request_from(
        {
            "symbol": [o.symbol for o in orders],
            "order_id": np.array([o.order_id for o in orders], dtype=np.uint64),
            "account_id": np.array([o.account_id for o in orders], dtype=np.uint64),
            "side": np.array([o.side for o in orders], dtype=np.int32),
            "type": np.array([o.type for o in orders], dtype=np.int32),
            "time_in_force": np.array([o.time_in_force for o in orders], dtype=np.int32),
            "price": np.array([o.price for o in orders], dtype=np.int64),
            "quantity": np.array([o.quantity for o in orders], dtype=np.int64),
            "post_only": np.array([o.post_only for o in orders], dtype=bool),
            "stp_mode": np.array([o.stp_mode for o in orders], dtype=np.int32),
        }
    )
    return data


async def _stream(
    address: str, orders: list[bytes], method: str = "/trading.pb.TradingEngine/StreamOrders"
) -> float:
    async with grpc.aio.insecure_channel(address) as ch:
        call = ch.stream_stream(method)
        t0 = time.perf_counter()
        n = 0
        async for _ in call(iter(orders)):
            n += 1
        assert n == len(orders)
        return time.perf_counter() - t0


def _column_arrays(orders: list[pb.OrderRequest]) -> dict[str, Any]:
    """The orders as the client library's input: numpy columns and a symbol table."""
    symbols = sorted({o.symbol for o in orders})
    index = {s: i for i, s in enumerate(symbols)}
    return {
        "symbols": symbols,
        "symbol_index": np.array([index[o.symbol] for o in orders], dtype=np.uint32),
        "order_id": np.array([o.order_id for o in orders], dtype=np.uint64),
        "account_id": np.array([o.account_id for o in orders], dtype=np.uint64),
        "side": np.array([o.side for o in orders], dtype=np.uint8),
        "type": np.array([o.type for o in orders], dtype=np.uint8),
        "time_in_force": np.array([o.time_in_force for o in orders], dtype=np.uint8),
        "price": np.array([o.price for o in orders], dtype=np.int64),
        "quantity": np.array([o.quantity for o in orders], dtype=np.int64),
    }


async def _client_columns(
    address: str, batches: list[dict[str, Any]], inflight: int
) -> tuple[float, LatencyHistogram]:
    """EngineClient.submit_order_columns: encoding and decoding included."""
    hist = LatencyHistogram()
    async with EngineClient(address, timeout=120) as c:
        await c.wait_ready()
        it = iter(batches)

        async def worker() -> None:
            for b in it:
                t = time.perf_counter_ns()
                res = await c.submit_order_columns(b)
                hist.record(time.perf_counter_ns() - t)
                assert len(res) == len(b["order_id"])

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(inflight)))
        return time.perf_counter() - t0, hist


def _batch_row(
    measure: str,
    orders: int,
    secs: float,
    cpu: float,
    st: pb.GetStatsResponse,
    rtt: LatencyHistogram | None = None,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "measure": measure,
        "orders_per_s": round(orders / secs),
        "server_cpu_us_per_order": round(cpu / orders * 1e6, 2),
    }
    if rtt is not None:
        row["batch_rtt_p50_us"] = round(rtt.percentile(50) / 1000, 1)
        row["batch_rtt_p99_us"] = round(rtt.percentile(99) / 1000, 1)
    row.update(
        {
            "p50_us": round(st.processing.p50_us, 1),
            "p99_us": round(st.processing.p99_us, 1),
            "p999_us": round(st.processing.p999_us, 1),
            "max_us": round(st.processing.max_us, 1),
            "journal_p99_us": round(st.journal.p99_us, 1),
            "group_commits": st.journal_batches,
            "trades": st.trades,
        }
    )
    return row


def _run_engine(
    tmp: Path, name: str, core: str, fsync: str, work: Any
) -> tuple[float, float, pb.GetStatsResponse, Any]:
    """Start an engine, run `work(address)`; returns (seconds, engine CPU seconds during
    the work, its stats after it, what work returned besides the seconds)."""
    engine = EngineProcess(tmp / name, core=core, fsync=fsync)
    engine.start()
    try:
        assert engine.proc is not None
        pid = engine.proc.pid
        cpu0 = _cpu_seconds(pid)
        out = work(engine.address)
        cpu = _cpu_seconds(pid) - cpu0
        st = asyncio.run(_stats(engine.address))
    finally:
        engine.kill()
    secs, extra = out if isinstance(out, tuple) else (out, None)
    return secs, cpu, st, extra


def _bench_batches(tmp: Path, core: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    rng = np.random.default_rng(7)
    size = args.batch_size
    inflight = args.batch_inflight
    nb = max(1, args.batch_orders // size)
    total = nb * size
    orders = [_mixed_order(i, rng) for i in range(total)]
    chunks = [orders[k * size : (k + 1) * size] for k in range(nb)]
    batches = [pb.OrderBatch(orders=c).SerializeToString() for c in chunks]
    col_batches = [_order_columns(c) for c in chunks]
    stream_n = min(len(orders), 100_000)
    stream_orders = [o.SerializeToString() for o in orders[:stream_n]]
    echo_proc, echo_addr = _start_echo(tmp)
    try:
        secs = asyncio.run(_stream(echo_addr, stream_orders, "/bench.Echo/EchoStream"))
        rows.append(
            {
                "measure": "bare grpc.aio bidi echo stream (baseline)",
                "orders_per_s": round(stream_n / secs),
            }
        )
        cpu0 = _cpu_seconds(echo_proc.pid)
        secs, rtt = asyncio.run(_batches(echo_addr, col_batches, inflight, _ECHO_METHOD))
        cpu = _cpu_seconds(echo_proc.pid) - cpu0
        rows.append(
            {
                "measure": f"bare grpc.aio unary echo of the OrderColumns batches "
                f"({size} per batch, {inflight} in flight; baseline)",
                "orders_per_s": round(total / secs),
                "server_cpu_us_per_order": round(cpu / total * 1e6, 2),
                "batch_rtt_p50_us": round(rtt.percentile(50) / 1000, 1),
                "batch_rtt_p99_us": round(rtt.percentile(99) / 1000, 1),
            }
        )
    finally:
        echo_proc.kill()
        echo_proc.wait()
    for fsync in ("every", "none"):
        secs, cpu, st, rtt = _run_engine(
            tmp,
            f"columns-{fsync}",
            core,
            fsync,
            lambda a: asyncio.run(
                _batches(a, col_batches, inflight, "/trading.pb.TradingEngine/SubmitOrderColumns")
            ),
        )
        rows.append(
            _batch_row(
                f"SubmitOrderColumns, {size} per batch, {inflight} in flight, fsync={fsync}",
                total,
                secs,
                cpu,
                st,
                rtt,
            )
        )
        if fsync == "every":
            client_batches = [_column_arrays(c) for c in chunks]
            secs, cpu, st, rtt = _run_engine(
                tmp,
                "client-columns",
                core,
                fsync,
                lambda a, b=client_batches: asyncio.run(_client_columns(a, b, inflight)),
            )
            rows.append(
                _batch_row(
                    f"EngineClient.submit_order_columns (client encodes and decodes), {size} "
                    f"per batch, {inflight} in flight, fsync={fsync}",
                    total,
                    secs,
                    cpu,
                    st,
                    rtt,
                )
            )
        secs, cpu, st, rtt = _run_engine(
            tmp,
            f"batch-{fsync}",
            core,
            fsync,
            lambda a: asyncio.run(
                _batches(a, batches, inflight, "/trading.pb.TradingEngine/SubmitOrders")
            ),
        )
        rows.append(
            _batch_row(
                f"SubmitOrders, {size} per batch, {inflight} in flight, fsync={fsync}",
                total,
                secs,
                cpu,
                st,
                rtt,
            )
        )
        secs, cpu, st, _ = _run_engine(
            tmp, f"stream-{fsync}", core, fsync, lambda a: asyncio.run(_stream(a, stream_orders))
        )
        rows.append(_batch_row(f"StreamOrders, one stream, fsync={fsync}", stream_n, secs, cpu, st))
    return rows


# ---------------------------------------------------------------------- recovery and memory


def write_journal(data_dir: Path, cmds: np.ndarray[Any, Any], per_record: int = 2000) -> None:
    """A journal holding `cmds` (COMMAND_DTYPE) after the default instruments, as the
    engine writes it (group commits of `per_record` commands)."""
    cfg = load_config(DEFAULT_CONFIG)
    log = SegmentLog(data_dir / "journal", "journal", cfg.engine.segment_bytes)
    log.open(keep_records=False)
    log.append(KIND_INSTRUMENTS, 1, 0, json.dumps([s.to_json() for s in cfg.instruments]).encode())
    for start in range(0, len(cmds), per_record):
        part = cmds[start : start + per_record]
        log.append(KIND_COMMANDS, start + 1, start + len(part), part.view(np.uint8))
    log.close()


def mixed_commands(n: int, seed: int = 3) -> np.ndarray[Any, Any]:
    """Submits around 190.00 (half cross, a third IOC) and cancels of earlier orders."""
    rng = np.random.default_rng(seed)
    cmds = np.zeros(n, dtype=COMMAND_DTYPE)
    i = np.arange(n, dtype=np.int64)
    cancel = rng.random(n) < 0.2
    cmds["kind"] = np.where(cancel, CommandKind.CANCEL, CommandKind.SUBMIT)
    cmds["side"] = np.where(cancel, 0, 1 + rng.integers(0, 2, n))
    cmds["type"] = np.where(cancel, 0, 1)
    cmds["tif"] = np.where(cancel, 0, np.where(rng.random(n) < 0.33, 3, 1))
    cmds["symbol_id"] = np.where(cancel, 0, 1)
    acc = 1 + i % 64
    target = np.maximum(1, i - rng.integers(1, 2000, n))
    cmds["order_id"] = np.where(cancel, target, i + 1)
    cmds["account_id"] = np.where(cancel, 1 + (target - 1) % 64, acc)
    cmds["price"] = np.where(cancel, 0, 19000 + rng.integers(-30, 31, n))
    cmds["qty"] = np.where(cancel, 0, rng.integers(1, 11, n))
    cmds["ts"] = 1_700_000_000_000_000_000 + i * 1000
    return cmds


def resting_commands(n: int) -> np.ndarray[Any, Any]:
    """n non-crossing GTC limit orders over 1,800 price levels of AAPL."""
    cmds = np.zeros(n, dtype=COMMAND_DTYPE)
    i = np.arange(n, dtype=np.int64)
    buy = i % 2 == 0
    cmds["kind"] = CommandKind.SUBMIT
    cmds["side"] = np.where(buy, 1, 2)
    cmds["type"] = 1
    cmds["tif"] = 1
    cmds["symbol_id"] = 1
    cmds["order_id"] = i + 1
    cmds["account_id"] = 1 + i % 1024
    cmds["price"] = np.where(buy, 18900 - (i // 2) % 900, 19100 + (i // 2) % 900)
    cmds["qty"] = 1 + i % 10
    cmds["ts"] = 1_700_000_000_000_000_000 + i
    return cmds


def _start_timed(engine: EngineProcess) -> float:
    t0 = time.perf_counter()
    engine.start(timeout=600)
    return time.perf_counter() - t0


def _bench_recovery_memory(tmp: Path, core: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    idle = EngineProcess(tmp / "idle", core=core)
    idle.start()
    try:
        time.sleep(0.5)
        assert idle.proc is not None
        rows.append(
            {"measure": "engine RSS idle", "rss_mib": round(_rss(idle.proc.pid) / 2**20, 1)}
        )
    finally:
        idle.kill()

    n = args.recovery_commands
    write_journal(tmp / "recovery", mixed_commands(n))
    rec = EngineProcess(tmp / "recovery", core=core)
    wall = _start_timed(rec)
    try:
        st = asyncio.run(_stats(rec.address))
        rows.append(
            {
                "measure": f"recovery of {n:,} journaled commands (no snapshot)",
                "seconds": round(st.recovery_seconds, 2),
                "start_to_serving_s": round(wall, 2),
                "commands_per_s": round(st.replayed_commands / max(st.recovery_seconds, 1e-9)),
                "trades": st.trades,
            }
        )
        # The same state from a snapshot (what a restart after a clean stop does).
        assert rec.stop() == 0
        wall = _start_timed(rec)
        st = asyncio.run(_stats(rec.address))
        rows.append(
            {
                "measure": f"restart from a snapshot after {n:,} commands",
                "seconds": round(st.recovery_seconds, 2),
                "start_to_serving_s": round(wall, 2),
            }
        )
    finally:
        rec.kill()

    m = args.resting_orders
    write_journal(tmp / "resting", resting_commands(m))
    rest = EngineProcess(tmp / "resting", core=core)
    wall = _start_timed(rest)
    try:
        st = asyncio.run(_stats(rest.address))
        assert rest.proc is not None
        rows.append(
            {
                "measure": f"engine RSS with {st.live_orders:,} resting orders",
                "rss_mib": round(_rss(rest.proc.pid) / 2**20, 1),
                "seconds": round(st.recovery_seconds, 2),
                "start_to_serving_s": round(wall, 2),
            }
        )
    finally:
        rest.kill()
    return rows


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run every part; returns {"title", "rows", ...} (latencies in µs, RSS in MiB)."""
    core = args.engine_core or default_core()
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hft-bench-engine-") as d:
        tmp = Path(d)
        rows += _bench_unary(tmp, core, args.unary_ops, args.unary_rounds)
        rows += _bench_batches(tmp, core, args)
        rows += _bench_recovery_memory(tmp, core, args)
    return {
        "title": TITLE,
        "notes": NOTES,
        "core": core,
        "cpus": os.cpu_count(),
        "seconds": round(time.perf_counter() - t0, 1),
        "rows": rows,
    }


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--echo-server":
        try:
            import uvloop

            uvloop.run(_echo_serve(sys.argv[2]))
        except ImportError:
            asyncio.run(_echo_serve(sys.argv[2]))
    else:
        parser = argparse.ArgumentParser(prog="python -m hft.bench.engine_grpc")
        add_arguments(parser)
        print(json.dumps(run(parser.parse_args()), indent=2))
