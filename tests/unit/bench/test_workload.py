"""The workload generator: deterministic, the documented mix, cancels that hit live orders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hft.bench import workload as wl
from hft.engine import (
    COMMAND_DTYPE,
    CommandKind,
    EventType,
    OrderType,
    ReferenceEngine,
    TimeInForce,
)


@pytest.fixture(scope="module")
def stream() -> np.ndarray:
    return wl.generate(20_000, symbols=2, seed=7)


def test_same_seed_same_stream(stream: np.ndarray) -> None:
    again = wl.generate(20_000, symbols=2, seed=7)
    assert again.dtype == COMMAND_DTYPE
    assert np.array_equal(again, stream)
    other = wl.generate(20_000, symbols=2, seed=8)
    assert not np.array_equal(other, stream)


def test_prefix_is_stable() -> None:
    # A longer stream starts with the shorter one: runs of different sizes are comparable.
    short, long = wl.generate(3000, 1, 3), wl.generate(5000, 1, 3)
    assert np.array_equal(long[:3000], short)


def test_mix_matches_the_documentation(stream: np.ndarray) -> None:
    n = len(stream)
    sub = stream[stream["kind"] == CommandKind.SUBMIT]
    passive = np.count_nonzero(sub["tif"] == TimeInForce.GTC)
    ioc_limit = np.count_nonzero((sub["tif"] == TimeInForce.IOC) & (sub["type"] == OrderType.LIMIT))
    market = np.count_nonzero(sub["type"] == OrderType.MARKET)
    cancels = np.count_nonzero(stream["kind"] == CommandKind.CANCEL)
    amends = np.count_nonzero(stream["kind"] == CommandKind.AMEND)
    assert passive + ioc_limit + market + cancels + amends == n
    for got, want in (
        (passive, 0.58),
        (cancels, 0.25),
        (ioc_limit, 0.10),
        (market, 0.05),
        (amends, 0.02),
    ):
        assert abs(got / n - want) < 0.02, (got / n, want)
    assert set(np.unique(stream["symbol_id"]).tolist()) == {1, 2}
    # Ids never repeat among submits; timestamps increase 1 µs per operation.
    assert len(np.unique(sub["order_id"])) == len(sub)
    assert np.array_equal(stream["ts"], np.arange(n) * 1000)


def test_prices_stay_near_the_mid(stream: np.ndarray) -> None:
    lim = stream[(stream["kind"] == CommandKind.SUBMIT) & (stream["type"] == OrderType.LIMIT)]
    assert np.all(np.abs(lim["price"] - wl.START_MID) < 2000)


def test_cancels_and_amends_target_live_orders(stream: np.ndarray) -> None:
    ref = ReferenceEngine()
    for inst in wl.instruments(2):
        ref.add_instrument(inst)
    ev = ref.process(stream)
    cancels = np.count_nonzero(stream["kind"] == CommandKind.CANCEL)
    rejected = np.count_nonzero(ev["type"] == EventType.CANCEL_REJECTED)
    assert rejected / cancels < 0.03
    assert np.count_nonzero(ev["type"] == EventType.TRADE) > 1000
    assert np.count_nonzero(ev["type"] == EventType.REJECTED) < len(stream) * 0.01


def test_save_and_load_npy_and_csv(tmp_path: Path) -> None:
    cmds = wl.generate(500, 2, 1)
    paths = wl.save(cmds, tmp_path / "w.npy")
    assert [p.name for p in paths] == ["w.npy", "w.csv"]
    assert np.array_equal(wl.load(paths[0]), cmds)
    assert np.array_equal(wl.load(paths[1]), cmds)
    header = paths[1].read_text().splitlines()[0]
    assert header.startswith("kind,side,type,tif,stp,post_only,symbol_id,order_id")


def test_load_rejects_other_files(tmp_path: Path) -> None:
    bad_csv = tmp_path / "x.csv"
    bad_csv.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="header"):
        wl.load(bad_csv)
    bad_npy = tmp_path / "x.npy"
    np.save(bad_npy, np.arange(3))
    with pytest.raises(ValueError, match="COMMAND_DTYPE"):
        wl.load(bad_npy)


@pytest.mark.parametrize(("ops", "symbols"), [(-1, 1), (10, 0)])
def test_bad_arguments(ops: int, symbols: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        wl.generate(ops, symbols)


def test_empty_workload() -> None:
    assert len(wl.generate(0)) == 0
