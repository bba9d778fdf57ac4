from decimal import Decimal

import pytest

from hft.services.portfolio import Position, apply_fill, equity, mark

D = Decimal


def test_long_round_trip_realizes_exact_difference():
    pos = Position()
    e1 = apply_fill(pos, "buy", D(10), D("100.10"), D("0.20"))
    assert e1.cash_delta == D("-1001.20")
    e2 = apply_fill(e1.position, "buy", D(5), D("101.00"), D("0.10"))
    assert e2.position.quantity == 15
    assert e2.position.cost_basis == D("1506.00")
    assert e2.position.average_cost() == D("100.40000000")
    e3 = apply_fill(e2.position, "sell", D(15), D("102.00"), D("0.30"))
    assert e3.position.quantity == 0
    assert e3.position.cost_basis == 0
    assert e3.realized == D("1530.00") - D("1506.00")
    assert e3.position.realized_pnl == D(24)
    assert e3.position.fees == D("0.60")
    assert e1.cash_delta + e2.cash_delta + e3.cash_delta == D(24) - D("0.60")


def test_partial_close_uses_proportional_basis():
    pos = apply_fill(Position(), "buy", D(3), D("10.00"), D(0)).position
    pos = apply_fill(pos, "buy", D(1), D("11.00"), D(0)).position  # basis 41 for 4
    eff = apply_fill(pos, "sell", D(1), D("12.00"), D(0))
    assert eff.realized == D("12.00") - D("10.25")
    assert eff.position.cost_basis == D("30.75")


def test_flip_from_long_to_short():
    pos = apply_fill(Position(), "buy", D(2), D(50), D(0)).position
    eff = apply_fill(pos, "sell", D(5), D(55), D(0))
    assert eff.realized == D(10)
    assert eff.position.quantity == -3
    assert eff.position.cost_basis == D(165)
    assert eff.position.average_cost() == D(55)
    # cover the short lower: profit
    eff2 = apply_fill(eff.position, "buy", D(3), D(50), D(0))
    assert eff2.realized == D(15)
    assert eff2.position.quantity == 0


def test_mark_to_market_and_equity():
    long = apply_fill(Position(), "buy", D(4), D("190.00"), D(0)).position
    short = apply_fill(Position(), "sell", D(2), D("100.00"), D(0)).position
    v1 = mark(long, D("191.50"))
    v2 = mark(short, D("99.00"))
    assert (v1.market_value, v1.unrealized_pnl) == (D("766.00"), D("6.00"))
    assert (v2.market_value, v2.unrealized_pnl) == (D("-198.00"), D("2.00"))
    assert equity(D(1000), [v1, v2]) == D("1568.00")
    assert mark(long, None).unrealized_pnl == 0


def test_zero_quantity_fill_refused():
    with pytest.raises(ValueError, match="positive"):
        apply_fill(Position(), "buy", D(0), D(1), D(0))
