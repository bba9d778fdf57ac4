"""Snapshots: a restored engine has the same state and behaves the same afterwards."""

from __future__ import annotations

import numpy as np
import pytest

from hft.engine import Engine, Instrument, ReferenceEngine, Side

from .test_differential import INSTRUMENTS, random_commands

Eng = Engine | ReferenceEngine


def _loaded(cls: type[Eng], seed: int) -> Eng:
    e = cls(max_orders=1000)
    for inst in INSTRUMENTS:
        e.add_instrument(inst)
    cmds = random_commands(np.random.default_rng(seed), 3000)
    e.process(cmds[np.isin(cmds["kind"], [1, 2, 3])])
    e.set_kill_switch(9, True)
    e.set_max_open_orders(8, 3)
    return e


def _restore(cls: type[Eng], data: bytes) -> Eng:
    if cls is Engine:
        return Engine.restore(data, max_orders=1000, instruments=INSTRUMENTS)
    return ReferenceEngine.restore(data)


@pytest.mark.parametrize("seed", [1, 2])
def test_snapshot_round_trip(engine_cls: type[Eng], seed: int) -> None:
    e = _loaded(engine_cls, seed)
    assert e.live_orders() > 0
    data = e.snapshot()
    r = _restore(engine_cls, data)
    assert r.state_hash() == e.state_hash()
    assert r.live_orders() == e.live_orders()
    assert r.instruments() == e.instruments()
    for sym in (1, 2, 3):
        assert r.depth(sym, 1000) == e.depth(sym, 1000)
    for acc in range(1, 5):
        assert r.open_orders(acc) == e.open_orders(acc)
    # Same commands afterwards: same events (trade ids, book_seq, priorities all kept).
    more = random_commands(np.random.default_rng(seed + 100), 2000)
    assert np.array_equal(r.process(more), e.process(more))
    assert r.state_hash() == e.state_hash()
    assert r.snapshot() == e.snapshot()


def test_core_and_reference_snapshots_restore_to_the_same_state() -> None:
    core, ref = _loaded(Engine, 3), _loaded(ReferenceEngine, 3)
    assert core.state_hash() == ref.state_hash()
    assert _restore(Engine, core.snapshot()).state_hash() == (
        _restore(ReferenceEngine, ref.snapshot()).state_hash()
    )


def test_snapshot_of_empty_engine(engine_cls: type[Eng]) -> None:
    e = engine_cls()
    r = _restore(engine_cls, e.snapshot())
    assert r.state_hash() == e.state_hash()
    assert r.instruments() == []


def test_restored_engine_keeps_kill_switch_and_limits(engine_cls: type[Eng]) -> None:
    e = engine_cls()
    e.add_instrument(Instrument(1, "AAA"))
    e.set_kill_switch(5, True)
    e.set_max_open_orders(6, 1)
    e.submit(1, 6, 1, Side.BUY, 1, 1, 100, 1)
    r = _restore(engine_cls, e.snapshot())
    assert r.submit(2, 5, 1, Side.BUY, 1, 1, 100, 1)[0].reason == 17  # KILL_SWITCH
    assert r.submit(2, 6, 1, Side.BUY, 1, 1, 100, 1)[0].reason == 16  # MAX_OPEN_ORDERS


def _garbage(cls: type[Eng]) -> list[bytes]:
    good = _loaded(cls, 4).snapshot()
    rng = np.random.default_rng(0)
    return [
        b"",
        b"garbage",
        good[: len(good) // 2],
        good[:-1],
        bytes(rng.integers(0, 256, size=4096, dtype=np.uint8)),
        b"\x00" * 64,
    ]


def test_restore_garbage_raises_value_error(engine_cls: type[Eng]) -> None:
    for data in _garbage(engine_cls):
        with pytest.raises(ValueError):  # noqa: PT011 - messages vary by the damage
            _restore(engine_cls, data)


def test_restore_rejects_non_bytes() -> None:
    with pytest.raises(ValueError, match="bytes"):
        Engine.restore("not bytes")  # type: ignore[arg-type]
