from decimal import Decimal

import pytest

from hft.services.candles import aggregate, bucket_start

D = Decimal
S = 1_000_000_000


def test_bucket_start_per_interval():
    ts = (3600 * 5 + 60 * 7 + 42) * S + 123
    assert bucket_start(ts, "1s") == 3600 * 5 + 60 * 7 + 42
    assert bucket_start(ts, "1m") == 3600 * 5 + 60 * 7
    assert bucket_start(ts, "5m") == 3600 * 5 + 60 * 5
    assert bucket_start(ts, "1h") == 3600 * 5
    with pytest.raises(KeyError):
        bucket_start(ts, "2m")


def test_aggregate_ohlcv():
    trades = [
        (10 * S, D(5), D(1)),
        (20 * S, D(7), D(2)),
        (30 * S, D(4), D(1)),
        (59 * S, D(6), D(3)),
        (61 * S, D(8), D(1)),
    ]
    c1, c2 = aggregate(trades, "1m")
    assert (c1.start, c1.open, c1.high, c1.low, c1.close, c1.volume, c1.trades) == (
        0,
        D(5),
        D(7),
        D(4),
        D(6),
        D(7),
        4,
    )
    assert (c2.start, c2.open, c2.close, c2.volume) == (60, D(8), D(8), D(1))
