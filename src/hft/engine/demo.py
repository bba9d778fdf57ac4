"""`hft demo`: replay a generated order stream through the C++ core and show the result.

Generates a seeded workload (`hft.bench.workload`), runs it through `Engine.process` in
chunks, then prints each symbol's depth (prices in decimals, tick 0.01) and the run's
statistics: operations per second, trades, volume, live orders, events by type.
"""

from __future__ import annotations

import argparse
import sys
import time
from decimal import Decimal

import numpy as np

from hft.bench import workload as wl
from hft.engine import CoreUnavailableError, Engine, EventType, RejectReason


def _price(ticks: int, tick: Decimal) -> str:
    return f"{Decimal(ticks) * tick:,.2f}"


def _print_depth(eng: Engine, symbol_id: int, name: str, levels: int, tick: Decimal) -> None:
    d = eng.depth(symbol_id, levels)
    bid, ask = eng.best_bid(symbol_id), eng.best_ask(symbol_id)
    top = "top of book: "
    top += f"bid {_price(bid[0], tick)} x {bid[1]}" if bid else "no bids"
    top += " | "
    top += f"ask {_price(ask[0], tick)} x {ask[1]}" if ask else "no asks"
    print(f"\n{name} (symbol {symbol_id})  {top}")
    print(f"  {'orders':>6} {'qty':>8} {'bid':>12} | {'ask':<12} {'qty':<8} {'orders':<6}")
    for i in range(max(len(d.bids), len(d.asks))):
        b = d.bids[i] if i < len(d.bids) else None
        a = d.asks[i] if i < len(d.asks) else None
        left = f"{b.order_count:>6} {b.qty:>8} {_price(b.price, tick):>12}" if b else " " * 28
        right = f"{_price(a.price, tick):<12} {a.qty:<8} {a.order_count:<6}" if a else ""
        print(f"  {left} | {right}")


def main(argv: list[str]) -> int:
    """Entry point of `hft demo`; returns 1 with a message if the core is not built."""
    p = argparse.ArgumentParser(prog="hft demo", description=__doc__.splitlines()[0])
    p.add_argument("--ops", type=int, default=1_000_000, help="operations to replay")
    p.add_argument("--symbols", type=int, default=3, help="number of symbols")
    p.add_argument("--seed", type=int, default=1, help="workload seed")
    p.add_argument("--levels", type=int, default=5, help="depth levels to print per side")
    p.add_argument("--chunk", type=int, default=4096, help="commands per batch call")
    args = p.parse_args(argv)
    if args.ops < 1 or args.symbols < 1 or args.levels < 0 or args.chunk < 1:
        p.error("--ops, --symbols and --chunk must be >= 1, --levels >= 0")
    try:
        eng = Engine(max_orders=1 << 22)
    except CoreUnavailableError as exc:
        print(f"hft demo: {exc}", file=sys.stderr)
        return 1
    instruments = wl.instruments(args.symbols)
    for inst in instruments:
        eng.add_instrument(inst)

    print(f"generating {args.ops:,} operations on {args.symbols} symbol(s), seed {args.seed} ...")
    t0 = time.perf_counter()
    cmds = wl.generate(args.ops, args.symbols, args.seed)
    gen_s = time.perf_counter() - t0

    counts = np.zeros(16, dtype=np.int64)
    volume = 0
    rejects = np.zeros(32, dtype=np.int64)
    t0 = time.perf_counter()
    busy = 0.0
    for i in range(0, len(cmds), args.chunk):
        c0 = time.perf_counter()
        ev = eng.process(cmds[i : i + args.chunk])
        busy += time.perf_counter() - c0
        counts += np.bincount(ev["type"], minlength=16)
        volume += int(ev["qty"][ev["type"] == EventType.TRADE].sum())
        rej = ev["type"] == EventType.REJECTED
        rejects += np.bincount(ev["reason"][rej], minlength=32)
    wall = time.perf_counter() - t0

    for inst in instruments:
        _print_depth(eng, inst.symbol_id, inst.symbol, args.levels, Decimal(inst.tick_size))

    print("\nstatistics")
    print(f"  operations        {len(cmds):>14,}   (generated in {gen_s:.2f} s)")
    rate = len(cmds) / busy
    print(f"  core throughput   {rate:>14,.0f} ops/s  (batch path, chunks of {args.chunk})")
    print(f"  replay wall time  {wall:>14.3f} s")
    print(f"  trades            {int(counts[EventType.TRADE]):>14,}")
    print(f"  traded volume     {volume:>14,} lots")
    print(f"  live orders       {eng.live_orders():>14,}")
    print(f"  state hash        {eng.state_hash():>14x}")
    print("  events by type")
    for t in EventType:
        if counts[t]:
            print(f"    {t.name:<16}{int(counts[t]):>14,}")
    if rejects.any():
        print("  rejects by reason")
        for r in RejectReason:
            if rejects[r]:
                print(f"    {r.name:<22}{int(rejects[r]):>8,}")
    return 0
