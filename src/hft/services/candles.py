"""OHLCV candles from trades, in fixed UTC intervals."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

INTERVALS: dict[str, int] = {"1s": 1, "1m": 60, "5m": 300, "1h": 3600}


def bucket_start(ts_ns: int, interval: str) -> int:
    """Start (Unix seconds) of the ``interval`` bucket holding a trade at ``ts_ns``.

    Raises KeyError for an unknown interval.
    """
    seconds = INTERVALS[interval]
    secs = ts_ns // 1_000_000_000
    return secs - secs % seconds


@dataclass(frozen=True, slots=True)
class Candle:
    start: int  # Unix seconds
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    trades: int = 1

    @classmethod
    def first(cls, start: int, price: Decimal, quantity: Decimal) -> Candle:
        return cls(start, price, price, price, price, quantity, 1)

    def add(self, price: Decimal, quantity: Decimal) -> Candle:
        """The candle with one more trade (applied in trade order)."""
        return Candle(
            self.start,
            self.open,
            max(self.high, price),
            min(self.low, price),
            price,
            self.volume + quantity,
            self.trades + 1,
        )


def aggregate(trades: list[tuple[int, Decimal, Decimal]], interval: str) -> list[Candle]:
    """Candles (oldest first) from (ts_ns, price, quantity) trades in trade order."""
    out: list[Candle] = []
    for ts, price, qty in trades:
        start = bucket_start(ts, interval)
        if out and out[-1].start == start:
            out[-1] = out[-1].add(price, qty)
        else:
            out.append(Candle.first(start, price, qty))
    return out
