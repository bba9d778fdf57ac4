"""Differential tests: the C++ core and the reference book must agree on everything.

A Hypothesis state machine drives both with the same random commands (several symbols
and accounts, every order type, time in force, STP mode, post-only, cancels and amends
of live, filled and unknown ids, cancel-all, kill switch, expiry, halts, id reuse, full
books) and demands identical events, depth, order states and state hash after every
step. The default run is short; `HFT_DIFF_STEPS=100000` makes a long one.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from hft.engine import (
    COMMAND_DTYPE,
    CommandKind,
    Engine,
    Event,
    EventType,
    Instrument,
    InstrumentStatus,
    OrderState,
    ReferenceEngine,
    core_available,
    events_from_array,
)

pytestmark = pytest.mark.skipif(
    not core_available() and not os.environ.get("CI"),
    reason="hft._core is not built (make build)",
)

STEPS_PER_EXAMPLE = 100
TOTAL_STEPS = int(os.environ.get("HFT_DIFF_STEPS", "3000"))
# Commands sent to both engines so far in this process (the long run reports them).
STATS = {"steps": 0, "events": 0, "trades": 0}

SYMBOLS = (1, 2, 3)
INSTRUMENTS = (
    Instrument(1, "AAA"),
    Instrument(2, "BBB", min_qty=2, max_qty=40, band_bps=800, reference_price=100),
    Instrument(3, "CCC", max_qty=1000, status=InstrumentStatus.HALTED),
)

order_ids = st.integers(1, 50)
accounts = st.integers(1, 4)
symbol_ids = st.one_of(st.sampled_from(SYMBOLS), st.sampled_from((0, 9)))
prices = st.one_of(
    st.integers(92, 108), st.integers(92, 108), st.sampled_from((0, -3, 1, 10**6, (1 << 63) - 1))
)
quantities = st.one_of(st.integers(1, 12), st.integers(1, 60), st.sampled_from((0, -1, 1 << 40)))
sides = st.one_of(st.sampled_from((1, 2)), st.sampled_from((1, 2)), st.integers(0, 3))
types = st.one_of(st.just(1), st.just(1), st.just(1), st.just(2), st.integers(0, 3))
tifs = st.one_of(st.sampled_from((1, 1, 2, 3, 4)), st.integers(0, 5))
stps = st.one_of(st.integers(0, 3), st.just(4))
post_onlys = st.one_of(st.just(0), st.just(0), st.just(1), st.just(2))


class DifferentialMachine(RuleBasedStateMachine):
    """Runs every command on both engines and compares the outcome."""

    core: Engine
    ref: ReferenceEngine

    def __init__(self) -> None:
        super().__init__()
        self.ts = 0

    @initialize(max_orders=st.sampled_from((12, 30, 1 << 20)), default_max=st.sampled_from((0, 4)))
    def setup(self, max_orders: int, default_max: int) -> None:
        self.max_orders, self.default_max = max_orders, default_max
        self.core = Engine(max_orders=max_orders, default_max_open_orders=default_max)
        self.ref = ReferenceEngine(max_orders=max_orders, default_max_open_orders=default_max)
        for inst in INSTRUMENTS:
            self.core.add_instrument(inst)
            self.ref.add_instrument(inst)

    def _both(self, method: str, *args: Any, **kwargs: Any) -> None:
        self.ts += 1
        kwargs["ts"] = self.ts
        got = getattr(self.core, method)(*args, **kwargs)
        want = getattr(self.ref, method)(*args, **kwargs)
        assert got == want, f"{method}{args}: core {got} != reference {want}"
        STATS["steps"] += 1
        STATS["events"] += len(got)
        STATS["trades"] += sum(1 for e in got if e.type == EventType.TRADE)

    # Hypothesis picks rules uniformly, so one rule draws the command kind from a weighted
    # list: mostly valid orders (so books build up and trade), and every other command
    # often enough to meet every path.
    KINDS = (
        ("resting", 8),
        ("aggressive", 4),
        ("any_submit", 2),
        ("cancel_live", 3),
        ("cancel", 1),
        ("amend_live", 3),
        ("amend", 1),
        ("cancel_all", 1),
        ("kill_switch", 1),
        ("max_open_orders", 1),
        ("instrument_status", 1),
        ("expire_day", 1),
        ("batch", 1),
        ("snapshot_restore", 1),
    )
    WEIGHTED = tuple(name for name, weight in KINDS for _ in range(weight))

    @rule(data=st.data())
    def step(self, data: st.DataObject) -> None:
        kind = data.draw(st.sampled_from(self.WEIGHTED), label="kind")
        getattr(self, "_" + kind)(data)

    def _resting(self, data: st.DataObject) -> None:
        """A valid GTC/DAY limit order near the touch."""
        tif = data.draw(st.sampled_from((1, 1, 2)))
        self._both(
            "submit",
            data.draw(order_ids),
            data.draw(accounts),
            data.draw(st.sampled_from((1, 1, 2))),
            data.draw(st.sampled_from((1, 2))),
            1,
            tif,
            data.draw(st.integers(95, 105)),
            data.draw(st.integers(2, 12)),
            post_only=data.draw(st.sampled_from((0, 0, 0, 1))),
            stp=data.draw(st.integers(0, 3)),
        )

    def _aggressive(self, data: st.DataObject) -> None:
        """A valid, usually crossing limit or market order of any time in force."""
        self._both(
            "submit",
            data.draw(order_ids),
            data.draw(accounts),
            data.draw(st.sampled_from((1, 1, 2))),
            data.draw(st.sampled_from((1, 2))),
            data.draw(st.sampled_from((1, 1, 2))),
            data.draw(st.sampled_from((1, 2, 3, 3, 4, 4))),
            data.draw(st.integers(95, 105)),
            data.draw(st.integers(2, 30)),
            stp=data.draw(st.integers(0, 3)),
        )

    def _any_submit(self, data: st.DataObject) -> None:
        """Any field may be invalid: exercises every reject reason and its check order."""
        self._both(
            "submit",
            data.draw(order_ids),
            data.draw(accounts),
            data.draw(symbol_ids),
            data.draw(sides),
            data.draw(types),
            data.draw(tifs),
            data.draw(prices),
            data.draw(quantities),
            post_only=data.draw(post_onlys),
            stp=data.draw(stps),
        )

    def _live_order(self, data: st.DataObject) -> OrderState | None:
        live = self.ref.open_orders(data.draw(accounts))
        return data.draw(st.sampled_from(live)) if live else None

    def _cancel_live(self, data: st.DataObject) -> None:
        o = self._live_order(data)
        if o is not None:
            self._both("cancel", o.order_id, o.account_id)

    def _cancel(self, data: st.DataObject) -> None:
        self._both("cancel", data.draw(order_ids), data.draw(accounts))

    def _amend_live(self, data: st.DataObject) -> None:
        """Amend a live order: same price down/equal/up, or a new price that may cross."""
        o = self._live_order(data)
        if o is None:
            return
        price = data.draw(st.sampled_from((o.price, o.price, o.price - 2, o.price + 2, 100)))
        price = min(price, (1 << 63) - 1)  # an order resting at the top price stays in range
        qty = data.draw(st.sampled_from((o.leaves_qty, o.leaves_qty - 1, o.leaves_qty + 3, 1)))
        self._both("amend", o.order_id, o.account_id, price, qty)

    def _amend(self, data: st.DataObject) -> None:
        self._both(
            "amend",
            data.draw(order_ids),
            data.draw(accounts),
            data.draw(prices),
            data.draw(quantities),
        )

    def _cancel_all(self, data: st.DataObject) -> None:
        self._both("cancel_all", data.draw(accounts), data.draw(symbol_ids))

    def _kill_switch(self, data: st.DataObject) -> None:
        enabled = data.draw(st.sampled_from((True, False, False)))
        self._both("set_kill_switch", data.draw(accounts), enabled)

    def _max_open_orders(self, data: st.DataObject) -> None:
        self._both("set_max_open_orders", data.draw(accounts), data.draw(st.integers(0, 6)))

    def _instrument_status(self, data: st.DataObject) -> None:
        status = data.draw(st.sampled_from((1, 1, 2, 3)))
        self._both("set_instrument_status", data.draw(symbol_ids), status)

    def _expire_day(self, data: st.DataObject) -> None:
        self._both("expire_day", data.draw(symbol_ids))

    def _batch(self, data: st.DataObject) -> None:
        """A short random batch through `process` on both engines."""
        seed = data.draw(st.integers(0, 2**32 - 1))
        cmds = random_commands(np.random.default_rng(seed), data.draw(st.integers(1, 20)))
        cmds["ts"] += self.ts
        self.ts += len(cmds)
        got, want = self.core.process(cmds), self.ref.process(cmds)
        assert events_from_array(got) == events_from_array(want)
        STATS["steps"] += len(cmds)
        STATS["events"] += len(got)

    def _snapshot_restore(self, data: st.DataObject) -> None:
        """Carry on from restored snapshots: nothing the books do may change."""
        self.core = Engine.restore(
            self.core.snapshot(),
            max_orders=self.max_orders,
            default_max_open_orders=self.default_max,
            instruments=INSTRUMENTS,
        )
        self.ref = ReferenceEngine.restore(self.ref.snapshot())

    @invariant()
    def same_state(self) -> None:
        if not hasattr(self, "ref"):
            return
        assert self.core.state_hash() == self.ref.state_hash()
        assert self.core.live_orders() == self.ref.live_orders()
        for sym in (*SYMBOLS, 9):
            assert self.core.depth(sym, 1000) == self.ref.depth(sym, 1000)
            assert self.core.best_bid(sym) == self.ref.best_bid(sym)
            assert self.core.best_ask(sym) == self.ref.best_ask(sym)
        for acc in range(1, 5):
            assert self.core.open_orders(acc) == self.ref.open_orders(acc)
        assert self.core.instruments() == self.ref.instruments()
        for oid in range(0, 52):
            assert self.core.order(oid) == self.ref.order(oid)


def test_differential_state_machine() -> None:
    """Run the state machine until at least HFT_DIFF_STEPS commands went to both engines."""
    STATS["steps"] = STATS["events"] = STATS["trades"] = 0
    rounds = 0
    while STATS["steps"] < TOTAL_STEPS:
        run_state_machine_as_test(
            DifferentialMachine,
            settings=settings(
                max_examples=50,
                stateful_step_count=STEPS_PER_EXAMPLE,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
        rounds += 1
        # Each round runs ~50 examples of up to 100 steps; far more rounds means no steps.
        assert rounds <= 10 + TOTAL_STEPS // 100, "the state machine stopped making steps"
    print(
        f"differential: {STATS['steps']} steps, {STATS['events']} events, "
        f"{STATS['trades']} trades in {rounds} rounds, no divergence"
    )


def random_commands(rng: np.random.Generator, n: int) -> np.ndarray:
    """A random COMMAND_DTYPE batch over the same small id spaces as the state machine."""
    c = np.zeros(n, dtype=COMMAND_DTYPE)
    c["kind"] = rng.choice([1, 1, 1, 1, 1, 2, 2, 3, 3, 4, 5, 6, 7, 8], size=n)
    c["side"] = rng.choice([1, 2, 1, 2, 0, 3], size=n)
    c["type"] = rng.choice([1, 1, 1, 2, 0], size=n)
    c["tif"] = rng.choice([1, 1, 2, 3, 4, 0, 5], size=n)
    c["stp"] = rng.choice([0, 1, 2, 3, 4], size=n)
    c["post_only"] = rng.choice([0, 0, 0, 1, 2], size=n)
    c["symbol_id"] = rng.choice([1, 2, 3, 1, 2, 0, 9], size=n)
    c["order_id"] = rng.integers(1, 40, size=n)
    c["account_id"] = rng.integers(1, 5, size=n)
    c["price"] = rng.integers(92, 109, size=n)
    c["qty"] = rng.integers(0, 15, size=n)
    kill = c["kind"] == 5
    c["qty"][kill] = rng.integers(0, 2, size=int(kill.sum()))
    status = c["kind"] == 7
    c["qty"][status] = rng.choice([1, 1, 2, 3], size=int(status.sum()))
    c["ts"] = np.arange(n)
    return c


def _pair() -> tuple[Engine, ReferenceEngine]:
    core, ref = Engine(max_orders=30), ReferenceEngine(max_orders=30)
    for inst in INSTRUMENTS:
        core.add_instrument(inst)
        ref.add_instrument(inst)
    return core, ref


@pytest.mark.parametrize("seed", range(4))
def test_batch_process_matches_reference_and_per_call(seed: int) -> None:
    cmds = random_commands(np.random.default_rng(seed), 3000)
    core, ref = _pair()
    got = core.process(cmds)
    want = ref.process(cmds)
    assert got.dtype == want.dtype
    assert events_from_array(got) == events_from_array(want)
    assert core.state_hash() == ref.state_hash()

    # The same commands through the per-call methods give the same events.
    single, _ = _pair()
    per_call = []
    for i, row in enumerate(cmds):
        for ev in apply_row(single, row):
            ev = ev._replace(cmd_index=i)
            if ev.type in (EventType.CANCEL_REJECTED, EventType.AMEND_REJECTED):
                # Batch rejects echo the record's symbol_id; per-call cancel/amend have none.
                assert ev.symbol_id == 0
                ev = ev._replace(symbol_id=int(row["symbol_id"]))
            per_call.append(ev)
    assert per_call == events_from_array(got)
    assert single.state_hash() == core.state_hash()


def apply_row(e: Engine | ReferenceEngine, r: np.void) -> list[Event]:
    """Run one COMMAND_DTYPE record through the per-call method of its kind."""
    kind, ts = int(r["kind"]), int(r["ts"])
    oid, acc, sym = int(r["order_id"]), int(r["account_id"]), int(r["symbol_id"])
    price, qty = int(r["price"]), int(r["qty"])
    if kind == CommandKind.SUBMIT:
        return e.submit(
            oid,
            acc,
            sym,
            int(r["side"]),
            int(r["type"]),
            int(r["tif"]),
            price,
            qty,
            post_only=int(r["post_only"]),
            stp=int(r["stp"]),
            ts=ts,
        )
    if kind == CommandKind.CANCEL:
        return e.cancel(oid, acc, ts=ts)
    if kind == CommandKind.AMEND:
        return e.amend(oid, acc, price, qty, ts=ts)
    if kind == CommandKind.CANCEL_ALL:
        return e.cancel_all(acc, sym, ts=ts)
    if kind == CommandKind.SET_KILL_SWITCH:
        return e.set_kill_switch(acc, bool(qty), ts=ts)
    if kind == CommandKind.SET_MAX_OPEN_ORDERS:
        return e.set_max_open_orders(acc, qty, ts=ts)
    if kind == CommandKind.SET_INSTRUMENT_STATUS:
        return e.set_instrument_status(sym, qty, ts=ts)
    assert kind == CommandKind.EXPIRE_DAY
    return e.expire_day(sym, ts=ts)


@pytest.mark.parametrize("kind", [0, 9, 255])
def test_batch_with_unknown_kind_runs_nothing(kind: int) -> None:
    cmds = random_commands(np.random.default_rng(5), 50)
    cmds[30]["kind"] = kind
    for e in _pair():
        before = e.state_hash()
        with pytest.raises(ValueError, match="unknown kind"):
            e.process(cmds)
        assert e.state_hash() == before
        assert e.live_orders() == 0
