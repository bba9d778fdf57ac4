"""Pure simulation arithmetic: rounding, bands, fair value, quotes, requoting, orders."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from hft.sim.market import (
    Amend,
    Cancel,
    FairValue,
    InstrumentSpec,
    LiveQuote,
    MomentumParams,
    NoiseParams,
    OrderIntent,
    Place,
    Quote,
    QuoteParams,
    Side,
    compute_quotes,
    inventory_ratio,
    momentum_order,
    momentum_signal,
    noise_order,
    plan_requote,
)

AAPL = {
    "symbol": "AAPL",
    "tick_size": "0.01",
    "lot_size": "1",
    "min_quantity": "1",
    "max_quantity": "100000",
    "price_band_pct": "10",
    "reference_price": "190.00",
    "last_price": None,
    "status": "trading",
}
BTC = {
    "symbol": "BTC-USD",
    "tick_size": "0.01",
    "lot_size": "0.0001",
    "min_quantity": "0.0001",
    "max_quantity": "100",
    "price_band_pct": "10",
    "reference_price": "65000.00",
    "last_price": "64000.50",
    "status": "trading",
}


@pytest.fixture
def aapl() -> InstrumentSpec:
    return InstrumentSpec.from_api(AAPL)


@pytest.fixture
def btc() -> InstrumentSpec:
    return InstrumentSpec.from_api(BTC)


def test_spec_from_api_parses_decimals(btc: InstrumentSpec) -> None:
    assert btc.lot_size == Decimal("0.0001")
    assert btc.min_lots == 1
    assert btc.max_lots == 1_000_000
    assert btc.anchor_price == Decimal("64000.50")


def test_spec_anchor_falls_back_to_reference(aapl: InstrumentSpec) -> None:
    assert aapl.anchor_price == Decimal("190.00")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tick_size", "0"),
        ("lot_size", "-1"),
        ("tick_size", "NaN"),
        ("max_quantity", "0.00001"),
        ("lot_size", "x"),
    ],
)
def test_spec_rejects_bad_fields(field: str, value: str) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        InstrumentSpec.from_api({**BTC, field: value})


def test_price_and_quantity_strings_are_on_tick_and_lot(btc: InstrumentSpec) -> None:
    assert btc.price_str(6400050) == "64000.50"
    assert btc.qty_str(15) == "0.0015"
    assert btc.qty_str(10000) == "1.0000"
    assert btc.to_ticks(Decimal("64000.505")) == 6400050  # half-even
    assert btc.to_lots(Decimal("0.00159")) == 15  # down


def test_lots_for_notional_rounds_down_and_clamps(
    btc: InstrumentSpec, aapl: InstrumentSpec
) -> None:
    # 5000 / 64000 = 0.078125 BTC -> 781 lots of 0.0001
    assert btc.lots_for_notional(Decimal(5000), 6_400_000) == 781
    assert aapl.lots_for_notional(Decimal(5000), 19_000) == 26
    # Tiny notional: at least the minimum; huge: at most the maximum.
    assert aapl.lots_for_notional(Decimal("0.01"), 19_000) == 1
    assert aapl.lots_for_notional(Decimal(10) ** 12, 19_000) == 100_000


def test_band_is_inside_the_engines_band(aapl: InstrumentSpec) -> None:
    lo, hi = aapl.band_ticks(19_000)
    ref, band_bps = 19_000, 1000
    for p in (lo, hi):
        assert abs(p - ref) * 10000 <= ref * band_bps
    assert (lo, hi) == (17_480, 20_520)  # 80 % of the 10 % band


def test_no_band_when_pct_is_zero() -> None:
    spec = InstrumentSpec.from_api({**AAPL, "price_band_pct": "0"})
    assert spec.band_ticks(19_000)[0] == 1


def test_fair_value_is_deterministic_and_positive() -> None:
    a = FairValue(19_000.0, 19_000.0, volatility=0.01, reversion=0.001)
    b = FairValue(19_000.0, 19_000.0, volatility=0.01, reversion=0.001)
    ra, rb = random.Random(7), random.Random(7)
    path_a = [a.step(ra, 0.25) for _ in range(500)]
    path_b = [b.step(rb, 0.25) for _ in range(500)]
    assert path_a == path_b
    assert min(path_a) > 0
    assert len(set(path_a)) > 400  # it moves


def test_fair_value_reverts_toward_anchor() -> None:
    fv = FairValue(30_000.0, 19_000.0, volatility=0.0, reversion=0.1)
    rng = random.Random(1)
    for _ in range(200):
        fv.step(rng, 1.0)
    assert abs(fv.ticks - 19_000.0) < 10


def test_fair_value_zero_dt_does_not_move() -> None:
    fv = FairValue(100.0, 100.0, volatility=1.0)
    assert fv.step(random.Random(1), 0.0) == 100.0


def test_inventory_ratio_clamps() -> None:
    assert inventory_ratio(50, 100) == 0.5
    assert inventory_ratio(-500, 100) == -1.0
    assert inventory_ratio(5, 0) == 0.0


PARAMS = QuoteParams(
    half_spread_bps=5, levels=3, level_step_bps=4, size_lots=10, max_inventory_lots=100, skew_bps=10
)


def test_flat_quotes_are_symmetric_and_on_tick(aapl: InstrumentSpec) -> None:
    quotes = compute_quotes(19_000.0, 0, PARAMS, aapl, (1, 10**9))
    bids = sorted((q for q in quotes if q.side is Side.BUY), key=lambda q: q.level)
    asks = sorted((q for q in quotes if q.side is Side.SELL), key=lambda q: q.level)
    assert [q.price for q in bids] == [18_990, 18_982, 18_974]
    assert [q.price for q in asks] == [19_010, 19_018, 19_026]
    assert all(q.lots == 10 for q in quotes)
    assert all(isinstance(q.price, int) for q in quotes)


def test_long_inventory_skews_down_and_shrinks_bids(aapl: InstrumentSpec) -> None:
    flat = compute_quotes(19_000.0, 0, PARAMS, aapl, (1, 10**9))
    long = compute_quotes(19_000.0, 50, PARAMS, aapl, (1, 10**9))
    best = {q.side: q for q in long if q.level == 0}
    flat_best = {q.side: q for q in flat if q.level == 0}
    assert best[Side.BUY].price < flat_best[Side.BUY].price
    assert best[Side.SELL].price < flat_best[Side.SELL].price
    assert best[Side.BUY].lots == 5
    assert best[Side.SELL].lots == 10


def test_short_inventory_at_limit_stops_selling(aapl: InstrumentSpec) -> None:
    quotes = compute_quotes(19_000.0, -100, PARAMS, aapl, (1, 10**9))
    assert quotes
    assert {q.side for q in quotes} == {Side.BUY}


def test_tight_market_never_crosses_itself(aapl: InstrumentSpec) -> None:
    params = QuoteParams(half_spread_bps=0.0, levels=1, size_lots=1)
    for fair in (100.0, 100.2, 100.5, 100.9):
        quotes = compute_quotes(fair, 0, params, aapl, (1, 10**9))
        bid = next(q.price for q in quotes if q.side is Side.BUY)
        ask = next(q.price for q in quotes if q.side is Side.SELL)
        assert bid < ask


def test_quotes_outside_band_are_dropped(aapl: InstrumentSpec) -> None:
    quotes = compute_quotes(19_000.0, 0, PARAMS, aapl, (18_980, 19_020))
    assert {q.price for q in quotes} == {18_990, 18_982, 19_010, 19_018}


def test_quote_sizes_respect_min_and_max() -> None:
    spec = InstrumentSpec.from_api({**AAPL, "min_quantity": "5", "max_quantity": "7"})
    quotes = compute_quotes(19_000.0, 0, QuoteParams(size_lots=100, levels=1), spec, (1, 10**9))
    assert {q.lots for q in quotes} == {7}
    quotes = compute_quotes(19_000.0, 0, QuoteParams(size_lots=1, levels=1), spec, (1, 10**9))
    assert {q.lots for q in quotes} == {5}


def test_plan_requote_places_amends_and_cancels() -> None:
    live = {
        (Side.BUY, 0): LiveQuote("b0", 100, 10),
        (Side.BUY, 1): LiveQuote("b1", 98, 10),
        (Side.SELL, 0): LiveQuote("s0", 102, 10),
        (Side.SELL, 2): LiveQuote("s2", 106, 10),
    }
    target = [
        Quote(Side.BUY, 0, 100, 10),  # unchanged
        Quote(Side.BUY, 1, 97, 10),  # moved
        Quote(Side.SELL, 0, 102, 8),  # resized
        Quote(Side.SELL, 1, 104, 10),  # new
    ]
    actions = plan_requote(live, target)
    assert actions[0] == Cancel("s2", (Side.SELL, 2))
    assert Amend("b1", target[1]) in actions
    assert Amend("s0", target[2]) in actions
    assert Place(target[3]) in actions
    assert len(actions) == 4


def test_plan_requote_tolerance_keeps_queue_position() -> None:
    live = {(Side.BUY, 0): LiveQuote("b0", 100, 10)}
    assert plan_requote(live, [Quote(Side.BUY, 0, 101, 10)], tolerance_ticks=1) == []
    assert plan_requote(live, [Quote(Side.BUY, 0, 102, 10)], tolerance_ticks=1) == [
        Amend("b0", Quote(Side.BUY, 0, 102, 10))
    ]


def test_order_intent_request_body(btc: InstrumentSpec) -> None:
    limit = OrderIntent("BTC-USD", Side.BUY, "limit", "gtc", 6_400_001, 25)
    assert limit.to_request(btc, "c1") == {
        "symbol": "BTC-USD",
        "side": "buy",
        "type": "limit",
        "time_in_force": "gtc",
        "quantity": "0.0025",
        "price": "64000.01",
        "client_order_id": "c1",
    }
    market = OrderIntent("BTC-USD", Side.SELL, "market", "ioc", 0, 1).to_request(btc)
    assert "price" not in market
    assert market["quantity"] == "0.0001"


def test_noise_orders_are_valid_and_deterministic(aapl: InstrumentSpec) -> None:
    params = NoiseParams(size_lots=5, max_position_lots=100)
    band = aapl.band_ticks(19_000)
    a = [noise_order(random.Random(3), aapl, 19_000.0, 0, params, band) for _ in range(1)]
    rng1, rng2 = random.Random(11), random.Random(11)
    seq1 = [noise_order(rng1, aapl, 19_000.0, 0, params, band) for _ in range(300)]
    seq2 = [noise_order(rng2, aapl, 19_000.0, 0, params, band) for _ in range(300)]
    assert seq1 == seq2
    assert a
    kinds = {(o.type, o.time_in_force) for o in seq1}
    assert {("market", "ioc"), ("limit", "gtc"), ("limit", "ioc")} <= kinds
    for o in seq1:
        assert 1 <= o.lots <= 10
        if o.type == "limit":
            assert band[0] <= o.price <= band[1]
            assert abs(o.price - 19_000) <= 19_000 * 15 / 1e4 + 1
        else:
            assert o.price == 0
    buys_above = [o for o in seq1 if o.type == "limit" and o.side is Side.BUY and o.price > 19_000]
    buys_below = [o for o in seq1 if o.type == "limit" and o.side is Side.BUY and o.price < 19_000]
    assert len(buys_below) > len(buys_above) > 0  # mostly passive, sometimes crossing


def test_noise_trader_leans_against_large_position(aapl: InstrumentSpec) -> None:
    params = NoiseParams(max_position_lots=100)
    rng = random.Random(5)
    orders = [noise_order(rng, aapl, 19_000.0, 100, params, (1, 10**9)) for _ in range(200)]
    assert all(o.side is Side.SELL for o in orders)
    orders = [noise_order(rng, aapl, 19_000.0, -75, params, (1, 10**9)) for _ in range(400)]
    buys = sum(o.side is Side.BUY for o in orders)
    assert 0.65 < buys / len(orders) < 0.85


def test_momentum_signal() -> None:
    params = MomentumParams(short_window=2, long_window=4, threshold_bps=1)
    up = [Decimal(p) for p in ("100", "100", "101", "102")]
    down = [Decimal(p) for p in ("102", "101", "100", "100")]
    flat = [Decimal(100)] * 4
    assert momentum_signal(up, params) is Side.BUY
    assert momentum_signal(down, params) is Side.SELL
    assert momentum_signal(flat, params) is None
    assert momentum_signal(up[:3], params) is None


def test_momentum_order_respects_position_limit(aapl: InstrumentSpec) -> None:
    params = MomentumParams(size_lots=5, max_position_lots=20)
    assert momentum_order(aapl, Side.BUY, 0, params) == OrderIntent(
        "AAPL", Side.BUY, "market", "ioc", 0, 5
    )
    assert momentum_order(aapl, Side.BUY, 18, params) == OrderIntent(
        "AAPL", Side.BUY, "market", "ioc", 0, 2
    )
    assert momentum_order(aapl, Side.BUY, 20, params) is None
    assert momentum_order(aapl, Side.SELL, 20, params) == OrderIntent(
        "AAPL", Side.SELL, "market", "ioc", 0, 5
    )
    # Past the limit it reduces, whatever the signal.
    assert momentum_order(aapl, None, 27, params) == OrderIntent(
        "AAPL", Side.SELL, "market", "ioc", 0, 7
    )
    assert momentum_order(aapl, None, 0, params) is None
