from decimal import Decimal

import pytest

from hft.services.errors import InvalidInputError
from hft.services.instruments import InstrumentInfo
from hft.services.orders import validate_amend, validate_order

AAPL = InstrumentInfo(1, "AAPL", Decimal("0.01"), Decimal("1"), 1, 100000, 1000, 19000)
BTC = InstrumentInfo(6, "BTC-USD", Decimal("0.01"), Decimal("0.0001"), 1, 1_000_000, 0, 0)
HALTED = InstrumentInfo(7, "HALT", Decimal("0.01"), Decimal("1"), 1, 10, 0, 0, trading=False)
INSTRUMENTS = {i.symbol: i for i in (AAPL, BTC, HALTED)}


def order(**kw):
    body = {"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": "10", "price": "190.25"}
    body.update(kw)
    return {k: v for k, v in body.items() if v is not ...}


def test_valid_limit_order_converts_to_ticks_and_lots():
    spec = validate_order(order(side="BUY", type="Limit"), INSTRUMENTS)
    assert (spec.side, spec.type, spec.time_in_force) == ("buy", "limit", "gtc")
    assert (spec.price_ticks, spec.quantity_lots) == (19025, 10)
    assert spec.price == Decimal("190.25")
    btc = validate_order(order(symbol="BTC-USD", quantity="0.0025", price="65000.01"), INSTRUMENTS)
    assert (btc.price_ticks, btc.quantity_lots) == (6500001, 25)


def test_market_order_defaults_to_ioc_and_takes_no_price():
    spec = validate_order(order(type="market", price=...), INSTRUMENTS)
    assert (spec.time_in_force, spec.price_ticks, spec.price) == ("ioc", 0, None)


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        ({"symbol": "NOPE"}, "unknown_symbol"),
        ({"symbol": "HALT", "price": "1.00", "quantity": "1"}, "symbol_halted"),
        ({"side": "hold"}, "invalid_side"),
        ({"type": "stop"}, "invalid_type"),
        ({"time_in_force": "gtd"}, "invalid_time_in_force"),
        ({"quantity": "0"}, "invalid_quantity"),
        ({"quantity": "-1"}, "invalid_quantity"),
        ({"quantity": "1.5"}, "quantity_not_on_lot"),
        ({"quantity": "100001"}, "quantity_out_of_range"),
        ({"quantity": "NaN"}, "invalid_quantity"),
        ({"price": ...}, "price_required"),
        ({"price": "190.255"}, "price_not_on_tick"),
        ({"price": "0"}, "invalid_price"),
        ({"price": "-0"}, "invalid_price"),
        ({"price": "Infinity"}, "invalid_price"),
        ({"price": "1e2"}, "invalid_price"),
        ({"price": "250.00"}, "price_out_of_band"),
        ({"type": "market", "price": "190.00"}, "price_not_allowed"),
        ({"post_only": "yes"}, "invalid_post_only"),
        ({"post_only": True, "time_in_force": "ioc"}, "invalid_post_only"),
        ({"client_order_id": "x" * 65}, "invalid_client_order_id"),
        ({"client_order_id": "bad id"}, "invalid_client_order_id"),
    ],
)
def test_bad_orders_get_specific_codes(kw, code):
    with pytest.raises(InvalidInputError) as exc:
        validate_order(order(**kw), INSTRUMENTS)
    assert exc.value.code == code


def test_amend_quantity_is_total_and_leaves_exclude_fills():
    spec = validate_amend(
        {"quantity": "8"},
        AAPL,
        order_type="limit",
        price_ticks=19000,
        quantity_lots=10,
        filled_lots=3,
    )
    assert (spec.quantity_lots, spec.leaves_lots, spec.price_ticks) == (8, 5, 19000)
    with pytest.raises(InvalidInputError) as exc:
        validate_amend(
            {"quantity": "3"},
            AAPL,
            order_type="limit",
            price_ticks=19000,
            quantity_lots=10,
            filled_lots=3,
        )
    assert exc.value.code == "invalid_quantity"
    with pytest.raises(InvalidInputError) as exc:
        validate_amend({}, AAPL, order_type="limit", price_ticks=1, quantity_lots=1, filled_lots=0)
    assert exc.value.code == "nothing_to_amend"
    spec = validate_amend(
        {"price": "191.00"},
        AAPL,
        order_type="limit",
        price_ticks=19000,
        quantity_lots=10,
        filled_lots=0,
    )
    assert (spec.price_ticks, spec.leaves_lots) == (19100, 10)
