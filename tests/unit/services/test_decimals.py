from decimal import Decimal

import pytest

from hft.services.decimals import fmt, from_units, parse_decimal, quantize_money, to_units
from hft.services.errors import InvalidInputError


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", "1"),
        ("190.25", "190.25"),
        ("0.0001", "0.0001"),
        (".5", "0.5"),
        (7, "7"),
        ("-3.5", "-3.5"),
        ("10.", "10"),
    ],
)
def test_parse_accepts_plain_decimals(raw, expected):
    assert parse_decimal(raw, "price") == Decimal(expected)


@pytest.mark.parametrize(
    "raw",
    [
        "NaN",
        "nan",
        "Infinity",
        "-Infinity",
        "inf",
        "1e5",
        "1E-2",
        "-0",
        "-0.00",
        " 1",
        "1 ",
        "0x10",
        "1,5",
        "",
        "+1",
        "1.2.3",
        "١٢",
        "9" * 19,
        "1" * 41,
        None,
        True,
        1.5,
        [],
        {},
    ],
)
def test_parse_refuses_everything_else(raw):
    with pytest.raises(InvalidInputError) as exc:
        parse_decimal(raw, "price")
    assert exc.value.code == "invalid_price"
    assert exc.value.field == "price"


def test_messages_name_the_problem():
    with pytest.raises(InvalidInputError, match="finite"):
        parse_decimal("NaN", "quantity")
    with pytest.raises(InvalidInputError, match="exponent"):
        parse_decimal("1e3", "quantity")
    with pytest.raises(InvalidInputError, match="negative zero"):
        parse_decimal("-0.0", "quantity")


def test_units_exact_and_strict():
    assert to_units(Decimal("190.25"), Decimal("0.01"), "price", "price_not_on_tick") == 19025
    assert to_units(Decimal("0.0003"), Decimal("0.0001"), "q", "quantity_not_on_lot") == 3
    assert to_units(Decimal("5.000"), Decimal("1"), "q", "quantity_not_on_lot") == 5
    with pytest.raises(InvalidInputError) as exc:
        to_units(Decimal("190.255"), Decimal("0.01"), "price", "price_not_on_tick")
    assert exc.value.code == "price_not_on_tick"
    with pytest.raises(InvalidInputError):
        to_units(Decimal("0.17"), Decimal("0.05"), "price", "price_not_on_tick")
    assert to_units(Decimal("0.10"), Decimal("0.05"), "price", "price_not_on_tick") == 2


def test_from_units_and_formatting():
    assert str(from_units(19025, Decimal("0.01"))) == "190.25"
    assert str(from_units(19000, Decimal("0.01"))) == "190.00"
    assert str(from_units(3, Decimal("0.0001"))) == "0.0003"
    assert fmt(Decimal("100.500")) == "100.5"
    assert fmt(Decimal("0E-8")) == "0"
    assert fmt(Decimal("1E+2")) == "100"
    assert quantize_money(Decimal("0.000000125"), 8) == Decimal("0.00000012")
