"""A fixed-memory, HDR-style log-linear latency histogram.

Values are non-negative integers (nanoseconds by convention). Values below 2048 are
counted exactly; above that, every power-of-two range ``[2^k, 2^(k+1))`` is split into
1024 equal buckets, so any reported value is within 1/1024 (about 0.1 %, three
significant digits) of a recorded value. Memory is fixed at about 440 KiB whatever is
recorded; values up to 2^63 - 1 are accepted.

Percentiles follow HDR Histogram: the value reported for percentile ``p`` is the
highest value equivalent (same bucket) to the recorded value of rank
``ceil(p / 100 * count)``, clamped to the recorded maximum.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

_SUB_BITS = 11
_SUB_COUNT = 1 << _SUB_BITS  # 2048 exact values, then 1024 buckets per octave
_HALF = _SUB_COUNT >> 1
_MAX_SHIFT = 63 - _SUB_BITS + 1  # the top octave of int64 values
_N_BUCKETS = _SUB_COUNT + _MAX_SHIFT * _HALF
MAX_VALUE = (1 << 63) - 1

# Relative precision of every reported value (upper bound).
RELATIVE_PRECISION = 1.0 / _HALF


def _bit_length(v: np.ndarray) -> np.ndarray:
    """Vectorised int.bit_length for non-negative uint64 values (exact, no floats)."""
    x = v.astype(np.uint64, copy=True)
    bl = np.zeros(x.shape, dtype=np.int64)
    for s in (32, 16, 8, 4, 2, 1):
        m = x >= np.uint64(1 << s)
        bl[m] += s
        x[m] >>= np.uint64(s)
    bl += (x > 0).astype(np.int64)
    return bl


def _index_of(value: int) -> int:
    if value < _SUB_COUNT:
        return value
    shift = value.bit_length() - _SUB_BITS
    return _SUB_COUNT + (shift - 1) * _HALF + ((value >> shift) - _HALF)


def _indices_of(values: np.ndarray) -> np.ndarray:
    shift = np.maximum(_bit_length(values) - _SUB_BITS, 0)
    top = (values >> shift.astype(np.uint64)).astype(np.int64)
    return np.where(
        shift == 0,
        values.astype(np.int64),
        _SUB_COUNT + (shift - 1) * _HALF + (top - _HALF),
    )


def _bucket_bounds(index: int) -> tuple[int, int]:
    """Lowest and highest value that map to bucket `index`."""
    if index < _SUB_COUNT:
        return index, index
    rel = index - _SUB_COUNT
    shift = rel // _HALF + 1
    top = rel % _HALF + _HALF
    low = top << shift
    return low, low + (1 << shift) - 1


class LatencyHistogram:
    """Log-linear histogram of non-negative integer values (ns), ~3 significant digits.

    `record` / `record_many` raise ValueError on negative values or values above
    2^63 - 1. Queries on an empty histogram return 0.
    """

    __slots__ = ("_counts", "_max", "_min", "_sum", "count")

    def __init__(self) -> None:
        self._counts = np.zeros(_N_BUCKETS, dtype=np.int64)
        self.count = 0
        self._sum = 0
        self._min = MAX_VALUE
        self._max = 0

    def record(self, value: int) -> None:
        """Record one value (ns)."""
        v = int(value)
        if v < 0 or v > MAX_VALUE:
            raise ValueError(f"value {v} outside [0, 2^63-1]")
        self._counts[_index_of(v)] += 1
        self.count += 1
        self._sum += v
        self._min = min(self._min, v)
        self._max = max(self._max, v)

    def record_many(self, values: np.ndarray[Any, Any]) -> None:
        """Record every value of an integer array (ns), vectorised."""
        arr = np.asarray(values)
        if arr.size == 0:
            return
        if arr.dtype.kind not in "iu":
            raise ValueError(f"integer values expected, got dtype {arr.dtype}")
        arr = arr.ravel()
        if arr.dtype.kind == "i":
            if int(arr.min()) < 0:
                raise ValueError("negative value in record_many")
            u = arr.astype(np.uint64)
        else:
            u = arr.astype(np.uint64)
            if int(u.max()) > MAX_VALUE:
                raise ValueError("value above 2^63-1 in record_many")
        idx = _indices_of(u)
        self._counts += np.bincount(idx, minlength=_N_BUCKETS)
        self.count += int(u.size)
        self._sum += int(u.sum(dtype=np.uint64))
        self._min = min(self._min, int(u.min()))
        self._max = max(self._max, int(u.max()))

    def merge(self, other: LatencyHistogram) -> None:
        """Add every value recorded in `other` to this histogram."""
        self._counts += other._counts
        self.count += other.count
        self._sum += other._sum
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)

    def reset(self) -> None:
        """Forget every recorded value."""
        self._counts[:] = 0
        self.count = 0
        self._sum = 0
        self._min = MAX_VALUE
        self._max = 0

    @property
    def min(self) -> int:
        return self._min if self.count else 0

    @property
    def max(self) -> int:
        return self._max

    @property
    def mean(self) -> float:
        return self._sum / self.count if self.count else 0.0

    def percentile(self, p: float) -> int:
        """Value (ns) at percentile `p` in [0, 100]; ValueError outside that range."""
        if not 0.0 <= p <= 100.0 or math.isnan(p):
            raise ValueError(f"percentile {p} outside [0, 100]")
        if self.count == 0:
            return 0
        rank = max(1, math.ceil(p / 100.0 * self.count))
        cum = np.cumsum(self._counts)
        index = int(np.searchsorted(cum, rank, side="left"))
        _, high = _bucket_bounds(index)
        return max(self._min, min(high, self._max))

    def summary(self) -> dict[str, float]:
        """count, min, mean, p50, p90, p99, p999, max (values in ns)."""
        return {
            "count": self.count,
            "min": self.min,
            "mean": round(self.mean, 1),
            "p50": self.percentile(50.0),
            "p90": self.percentile(90.0),
            "p99": self.percentile(99.0),
            "p999": self.percentile(99.9),
            "max": self.max,
        }
