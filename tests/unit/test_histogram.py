"""LatencyHistogram: percentiles against numpy within the stated precision."""

from __future__ import annotations

import numpy as np
import pytest

from hft.histogram import MAX_VALUE, RELATIVE_PRECISION, LatencyHistogram


def _exact(values: np.ndarray, p: float) -> int:
    # HDR's rank definition: the smallest value with at least p% of samples <= it.
    return int(np.percentile(values, p, method="inverted_cdf"))


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("scale", [50, 5_000, 2_000_000, 10**12])
def test_percentiles_match_numpy(seed: int, scale: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.lognormal(mean=0.0, sigma=1.5, size=20_000) * scale
    values = values.astype(np.int64)
    hist = LatencyHistogram()
    hist.record_many(values)
    assert hist.count == values.size
    for p in (0.0, 1.0, 25.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0):
        exact = _exact(values, p)
        got = hist.percentile(p)
        assert exact <= got <= exact + exact * RELATIVE_PRECISION, (p, exact, got)
    assert hist.min == values.min()
    assert hist.max == values.max()
    assert hist.mean == pytest.approx(values.mean())


def test_small_values_are_exact() -> None:
    values = np.arange(0, 2048, dtype=np.int64)
    hist = LatencyHistogram()
    hist.record_many(values)
    for p in (10.0, 50.0, 99.0):
        assert hist.percentile(p) == _exact(values, p)


def test_record_and_record_many_agree() -> None:
    rng = np.random.default_rng(7)
    values = rng.integers(0, 1 << 40, size=3000)
    a, b = LatencyHistogram(), LatencyHistogram()
    for v in values:
        a.record(int(v))
    b.record_many(values)
    assert a.summary() == b.summary()
    assert a.percentile(33.3) == b.percentile(33.3)


def test_powers_of_two_boundaries() -> None:
    # Exact powers of two and their neighbours are where bucket arithmetic slips.
    values = []
    for k in range(11, 63):
        values += [(1 << k) - 1, 1 << k, (1 << k) + 1]
    values.append(MAX_VALUE)
    arr = np.array(values, dtype=np.int64)
    hist = LatencyHistogram()
    hist.record_many(arr)
    for v in values:
        single = LatencyHistogram()
        single.record(v)
        got = single.percentile(50.0)
        assert got == v  # clamped to min/max of a single sample
    assert hist.max == MAX_VALUE
    for p in (10.0, 50.0, 90.0):
        exact = _exact(arr, p)
        assert exact <= hist.percentile(p) <= exact + exact * RELATIVE_PRECISION


def test_merge_equals_recording_everything() -> None:
    rng = np.random.default_rng(11)
    x = rng.integers(0, 10**9, size=5000)
    y = rng.integers(0, 10**6, size=7000)
    a, b, both = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    a.record_many(x)
    b.record_many(y)
    both.record_many(np.concatenate([x, y]))
    a.merge(b)
    assert a.summary() == both.summary()


def test_summary_keys_and_reset() -> None:
    hist = LatencyHistogram()
    assert hist.summary() == {
        "count": 0,
        "min": 0,
        "mean": 0.0,
        "p50": 0,
        "p90": 0,
        "p99": 0,
        "p999": 0,
        "max": 0,
    }
    hist.record_many(np.array([100, 200, 300], dtype=np.uint64))
    s = hist.summary()
    assert s["count"] == 3
    assert s["min"] == 100
    assert s["max"] == 300
    assert s["p50"] == 200
    assert s["mean"] == 200.0
    hist.reset()
    assert hist.count == 0
    assert hist.percentile(50) == 0


@pytest.mark.parametrize("bad", [-1, MAX_VALUE + 1])
def test_out_of_range_values_rejected(bad: int) -> None:
    hist = LatencyHistogram()
    with pytest.raises(ValueError, match="outside"):
        hist.record(bad)
    assert hist.count == 0


def test_record_many_rejects_bad_arrays_without_change() -> None:
    hist = LatencyHistogram()
    with pytest.raises(ValueError, match="negative"):
        hist.record_many(np.array([5, -3], dtype=np.int64))
    with pytest.raises(ValueError, match="integer"):
        hist.record_many(np.array([1.5]))
    with pytest.raises(ValueError, match="above"):
        hist.record_many(np.array([1 << 63], dtype=np.uint64))
    assert hist.count == 0


@pytest.mark.parametrize("p", [-0.1, 100.1, float("nan")])
def test_bad_percentile(p: float) -> None:
    hist = LatencyHistogram()
    hist.record(1)
    with pytest.raises(ValueError, match="percentile"):
        hist.percentile(p)
