"""The end-to-end benchmark's pure parts: percentiles, the load mix, options, report rows."""

from __future__ import annotations

import argparse
import random
from collections import Counter

from hft.bench import e2e
from hft.sim.market import InstrumentSpec

AAPL = InstrumentSpec.from_api(
    {
        "symbol": "AAPL",
        "tick_size": "0.01",
        "lot_size": "1",
        "min_quantity": "1",
        "max_quantity": "100000",
        "price_band_pct": "10",
        "reference_price": "190.00",
    }
)


def test_percentiles_are_exact_order_statistics() -> None:
    samples = [float(i) for i in range(1, 101)]
    random.Random(1).shuffle(samples)
    p = e2e.percentiles(samples)
    assert p == {
        "count": 100,
        "p50_ms": 51.0,
        "p90_ms": 91.0,
        "p99_ms": 100.0,
        "max_ms": 100.0,
        "mean_ms": 50.5,
    }
    assert e2e.percentiles([]) == {"count": 0}


def test_load_mix_is_valid_and_varied() -> None:
    rng = random.Random(3)
    lo, hi = AAPL.band_ticks(19_000)
    kinds: Counter[tuple[str, str]] = Counter()
    for _ in range(2000):
        order = e2e._load_order(rng, AAPL, 19_000.0)
        kinds[(order.type, order.time_in_force)] += 1
        assert 1 <= order.lots <= 5
        if order.type == "limit":
            assert lo <= order.price <= hi
            assert abs(order.price - 19_000) <= 19_000 * 20e-4 + 1
            body = order.to_request(AAPL)
            assert body["price"].count(".") == 1
            assert len(body["price"].split(".")[1]) == 2
    assert set(kinds) == {("market", "ioc"), ("limit", "ioc"), ("limit", "gtc")}
    assert 0.1 < kinds[("market", "ioc")] / 2000 < 0.2


def test_prefixed_options_win_and_defaults_apply() -> None:
    parser = argparse.ArgumentParser()
    e2e.add_arguments(parser)
    ns = parser.parse_args(["--e2e-orders", "7", "--e2e-sim-rate", "12.5"])
    assert e2e._arg(ns, "orders", 300) == 7
    assert e2e._arg(ns, "sim_rate", 40.0) == 12.5
    assert e2e._arg(ns, "database_url", "x") == "x"
    assert e2e._arg(argparse.Namespace(orders=9), "orders", 300) == 9
    assert e2e._arg(None, "orders", 300) == 300


def test_report_rows() -> None:
    result = {
        "settings": {"load_rate": 100.0},
        "latency": {
            "rest_place_to_response": {
                "count": 3,
                "p50_ms": 1.0,
                "p90_ms": 2.0,
                "p99_ms": 3.0,
                "max_ms": 3.0,
            },
            "ws_place_to_fill": {
                "count": 2,
                "p50_ms": 1.5,
                "p90_ms": 2.5,
                "p99_ms": 2.5,
                "max_ms": 2.5,
            },
        },
        "load": {"requests_per_s": 90.5, "requests": 905, "latency": {"p50_ms": 4.0}},
        "rss_mb": {
            "with_simulation": {"engine": 60.0, "api": 140.0, "sim": 40.0, "total": 240.0},
            "idle_engine_api": {"engine": 60.0, "api": 140.0, "total": 200.0},
        },
    }
    rows = e2e._rows(result)
    assert [r["count"] for r in rows[:3]] == [3, 2, 905]
    assert "90.5 req/s achieved (asked 100)" in rows[2]["measure"]
    assert rows[3]["p50 ms"] == 240.0
    assert "engine 60.0, api 140.0, sim 40.0" in rows[3]["measure"]
