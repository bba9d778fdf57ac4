"""A seeded, deterministic order-flow generator for the benchmarks.

The stream imitates a liquid continuous market on one or more symbols. Each symbol has
a mid price (ticks) that drifts by one tick now and then. Every operation is, with these
probabilities:

* 58 % passive limit add (GTC): a buy below or a sell above the mid, 1-30 ticks away
  ("within a few dozen ticks"), 1-20 lots;
* 25 % cancel of an order that is live at that point of the stream;
* 10 % aggressive limit IOC crossing 1-3 price levels beyond the mid, 5-60 lots;
* 5 % market order (IOC), 1-30 lots;
* 2 % amend of a live order: mostly a quantity reduction (keeps priority), otherwise a
  one-tick price move away from the mid (loses priority).

Orders come from 1000 accounts (the default self-trade prevention applies) with order
ids 1, 2, 3, ... (never reused); `ts` advances 1 µs per operation. "Live" is exact: the
generator replays what it has generated through a matching engine in chunks (the C++
core when built, otherwise the reference book: same semantics, same stream) and drops
filled or self-trade-cancelled orders from its live set, so a cancel or amend hits an
order filled earlier in the same 256-operation chunk only rarely.

The same (ops, symbols, seed) always yields the same array. Instruments are symbol ids
1..K named ``S1``..``SK``, min 1 and max 1e9 lots, no price band, trading
(`instruments(k)`); the native benchmark binary assumes the same.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from hft.engine import (
    COMMAND_DTYPE,
    CommandKind,
    Engine,
    EventType,
    Instrument,
    OrderType,
    ReferenceEngine,
    Side,
    TimeInForce,
    core_available,
)

START_MID = 100_000
ACCOUNTS = 1000
CHUNK = 256
# Cumulative thresholds of the operation mix (see the module docstring).
_MIX = np.cumsum([0.58, 0.25, 0.10, 0.05, 0.02])
CSV_FIELDS = tuple(n for n in COMMAND_DTYPE.names or () if not n.startswith("_"))


def instruments(symbols: int) -> list[Instrument]:
    """The instruments a workload of `symbols` symbols trades on."""
    return [Instrument(i, f"S{i}", min_qty=1, max_qty=1_000_000_000) for i in range(1, symbols + 1)]


class _LiveSet:
    """Live order ids with O(1) add, remove and uniform random choice."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.pos: dict[int, int] = {}

    def add(self, oid: int) -> None:
        self.pos[oid] = len(self.ids)
        self.ids.append(oid)

    def discard(self, oid: int) -> None:
        i = self.pos.pop(oid, None)
        if i is None:
            return
        last = self.ids.pop()
        if i < len(self.ids):
            self.ids[i] = last
            self.pos[last] = i


def generate(ops: int, symbols: int = 1, seed: int = 0) -> np.ndarray[Any, Any]:
    """Generate `ops` commands over `symbols` symbols; returns a COMMAND_DTYPE array.

    Raises ValueError when ops < 0 or symbols < 1.
    """
    if ops < 0:
        raise ValueError(f"ops must be >= 0, got {ops}")
    if symbols < 1:
        raise ValueError(f"symbols must be >= 1, got {symbols}")
    rng = np.random.default_rng(seed)
    out = np.zeros(ops, dtype=COMMAND_DTYPE)
    engine: Engine | ReferenceEngine = Engine() if core_available() else ReferenceEngine()
    for inst in instruments(symbols):
        engine.add_instrument(inst)

    mids = [START_MID] * (symbols + 1)
    live = [_LiveSet() for _ in range(symbols + 1)]
    # order id -> (symbol, side, price, leaves, account) as the generator last knew it.
    info: dict[int, tuple[int, int, int, int, int]] = {}
    next_id = 1

    for start in range(0, ops, CHUNK):
        n = min(CHUNK, ops - start)
        # Always draw whole chunks, so a longer stream starts with the shorter one.
        u = rng.random(CHUNK).tolist()
        sym = rng.integers(1, symbols + 1, size=CHUNK).tolist()
        drift = rng.integers(-1, 2, size=CHUNK).tolist()
        drift_on = (rng.random(CHUNK) < 0.05).tolist()
        side = rng.integers(1, 3, size=CHUNK).tolist()
        acct = rng.integers(1, ACCOUNTS + 1, size=CHUNK).tolist()
        offset = rng.integers(1, 31, size=CHUNK).tolist()
        levels = rng.integers(1, 4, size=CHUNK).tolist()
        small = rng.integers(1, 21, size=CHUNK).tolist()
        large = rng.integers(5, 61, size=CHUNK).tolist()
        pick = rng.random(CHUNK).tolist()
        rows = []
        for j in range(n):
            s = sym[j]
            if drift_on[j]:
                mids[s] += drift[j]
            mid = mids[s]
            ts = (start + j) * 1000
            r = u[j]
            kind, oid, acc, sd, typ, tif, price, qty = (
                CommandKind.SUBMIT,
                0,
                acct[j],
                side[j],
                0,
                0,
                0,
                0,
            )
            target = 0
            if (_MIX[0] <= r < _MIX[1]) or r >= _MIX[3]:
                ids = live[s].ids
                if ids:
                    target = ids[int(pick[j] * len(ids))]
                else:
                    r = 0.0  # nothing live on this symbol yet: add liquidity instead
            if r < _MIX[0]:
                oid, typ, tif = next_id, OrderType.LIMIT, TimeInForce.GTC
                price = mid - offset[j] if sd == Side.BUY else mid + offset[j]
                qty = small[j]
                next_id += 1
                live[s].add(oid)
                info[oid] = (s, sd, price, qty, acc)
            elif r < _MIX[1]:
                kind, oid = CommandKind.CANCEL, target
                acc = info.pop(oid)[4]
                live[s].discard(oid)
            elif r < _MIX[2]:
                oid, typ, tif = next_id, OrderType.LIMIT, TimeInForce.IOC
                price = mid + levels[j] if sd == Side.BUY else mid - levels[j]
                qty = large[j]
                next_id += 1
            elif r < _MIX[3]:
                oid, typ, tif, qty = next_id, OrderType.MARKET, TimeInForce.IOC, small[j] + 10
                next_id += 1
            else:
                kind, oid = CommandKind.AMEND, target
                _, order_side, price, leaves, acc = info[oid]
                if leaves > 1 and pick[j] < 0.7:
                    qty = max(1, leaves // 2)
                else:
                    qty = leaves
                    price = price - 1 if order_side == Side.BUY else price + 1
                info[oid] = (s, order_side, price, qty, acc)
                sd = 0
            rows.append((kind, sd, typ, tif, 0, 0, 0, s, 0, oid, acc, price, qty, ts))
        chunk = np.array(rows, dtype=COMMAND_DTYPE)
        out[start : start + n] = chunk
        _settle(engine, chunk, live, info)
    return out


def _settle(
    engine: Engine | ReferenceEngine,
    chunk: np.ndarray[Any, Any],
    live: list[_LiveSet],
    info: dict[int, tuple[int, int, int, int, int]],
) -> None:
    """Run the chunk and drop orders that are no longer live from the live sets."""
    ev = engine.process(chunk)
    trade = ev["type"] == EventType.TRADE
    gone = set(ev["maker_order_id"][trade & (ev["maker_leaves_qty"] == 0)].tolist())
    gone |= set(ev["order_id"][(ev["type"] == EventType.CANCELED)].tolist())
    gone |= set(ev["order_id"][trade & (ev["leaves_qty"] == 0)].tolist())
    for oid in gone:
        entry = info.pop(oid, None)
        if entry is not None:
            live[entry[0]].discard(oid)
    # Partial fills change leaves; amends read them from `info`.
    partial = trade & (ev["maker_leaves_qty"] > 0)
    for oid, leaves in zip(
        ev["maker_order_id"][partial].tolist(),
        ev["maker_leaves_qty"][partial].tolist(),
        strict=True,
    ):
        entry = info.get(oid)
        if entry is not None:
            info[oid] = (entry[0], entry[1], entry[2], leaves, entry[4])


def save(commands: np.ndarray[Any, Any], path: str | Path) -> list[Path]:
    """Write the workload as FILE.npy and FILE.csv (whatever suffix `path` has)."""
    base = Path(path)
    if base.suffix in (".npy", ".csv"):
        base = base.with_suffix("")
    npy, csv_path = base.with_suffix(".npy"), base.with_suffix(".csv")
    npy.parent.mkdir(parents=True, exist_ok=True)
    np.save(npy, commands, allow_pickle=False)
    with csv_path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_FIELDS)
        cols = [commands[name].tolist() for name in CSV_FIELDS]
        w.writerows(zip(*cols, strict=True))
    return [npy, csv_path]


def load(path: str | Path) -> np.ndarray[Any, Any]:
    """Read a workload written by `save` (.npy or .csv); ValueError if it is not one."""
    p = Path(path)
    if p.suffix == ".csv":
        with p.open(newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or tuple(header) != CSV_FIELDS:
                raise ValueError(f"{p}: not a workload CSV (header must be {','.join(CSV_FIELDS)})")
            rows = [tuple(int(x) for x in row) for row in reader]
        out = np.zeros(len(rows), dtype=COMMAND_DTYPE)
        if rows:
            data = np.array(rows, dtype=np.int64)
            for i, name in enumerate(CSV_FIELDS):
                out[name] = data[:, i]
        return out
    arr: np.ndarray[Any, Any] = np.load(p, allow_pickle=False)
    if arr.dtype != COMMAND_DTYPE or arr.ndim != 1:
        raise ValueError(f"{p}: not a 1-D COMMAND_DTYPE array (dtype {arr.dtype})")
    return arr
