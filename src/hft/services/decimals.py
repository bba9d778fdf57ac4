"""Decimal input at the edge: strict parsing and exact conversion to ticks and lots.

The API takes prices, quantities and money as decimal strings (JSON numbers are accepted
and validated the same way). Everything that is not a plain finite decimal is refused:
NaN, Infinity, negative zero, exponent notation, more decimals than the instrument
allows, and absurd lengths. No float ever holds a value: a JSON number arrives here as
its source text (see `parse_decimal`).
"""

from __future__ import annotations

import functools
import re
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from hft.services.errors import InvalidInputError

# Digits, an optional single point, optional leading minus. No exponent, no spaces.
_DECIMAL_RE = re.compile(r"^-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$")
MAX_DECIMAL_CHARS = 40
MAX_INTEGER_DIGITS = 18


def parse_decimal(value: object, field: str, *, code: str | None = None) -> Decimal:
    """Parse an API decimal (str, int or Decimal; floats are refused) exactly.

    Raises InvalidInputError with ``code`` (default ``invalid_<field>``) when the value is not
    a plain finite decimal, is negative zero, or is too long.
    """
    err_code = code or f"invalid_{field}"
    if isinstance(value, bool) or value is None:
        raise InvalidInputError(err_code, f"{field} must be a decimal string", field)
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidInputError(err_code, f"{field} must be finite", field)
        text = format(value, "f")
    elif isinstance(value, str):
        text = value
    else:
        raise InvalidInputError(err_code, f"{field} must be a decimal string", field)
    if len(text) > MAX_DECIMAL_CHARS:
        raise InvalidInputError(err_code, f"{field} is too long", field)
    if not _DECIMAL_RE.match(text):
        lowered = text.strip().lower()
        if "nan" in lowered or "inf" in lowered:
            raise InvalidInputError(err_code, f"{field} must be finite (no NaN or Infinity)", field)
        if "e" in lowered:
            raise InvalidInputError(err_code, f"{field} must not use exponent notation", field)
        raise InvalidInputError(err_code, f"{field} is not a decimal number: {text[:20]!r}", field)
    try:
        dec = Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only valid text
        raise InvalidInputError(err_code, f"{field} is not a decimal number", field) from exc
    if dec.is_zero() and dec.is_signed():
        raise InvalidInputError(err_code, f"{field} must not be negative zero", field)
    integer_digits = len(text.lstrip("-").split(".")[0].lstrip("0"))
    if integer_digits > MAX_INTEGER_DIGITS:
        raise InvalidInputError(err_code, f"{field} is out of range", field)
    return dec


@functools.lru_cache(maxsize=1024)
def decimals_of(step: Decimal) -> int:
    """Number of decimal places of a step such as Decimal("0.01") (-> 2); memoized,
    since the few tick and lot sizes are asked for on every conversion."""
    exponent = step.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def to_units(value: Decimal, step: Decimal, field: str, code: str) -> int:
    """Convert a decimal to an integer number of ``step`` (ticks or lots), exactly.

    Raises InvalidInputError(code) when the value has more decimals than the step or is not a
    multiple of it.
    """
    places = decimals_of(step)
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places and not value.is_zero():
        raise InvalidInputError(
            code, f"{field} {value} has more than {places} decimals (step {step})", field
        )
    units, remainder = divmod(value, step)
    if remainder != 0:
        raise InvalidInputError(code, f"{field} {value} is not a multiple of {step}", field)
    return int(units)


def from_units(units: int, step: Decimal) -> Decimal:
    """Ticks or lots back to a decimal with the step's number of places."""
    places = decimals_of(step)
    return (Decimal(units) * step).quantize(Decimal(1).scaleb(-places))


def quantize_money(value: Decimal, places: int) -> Decimal:
    """Round money to ``places`` decimals, half-even (banker's rounding)."""
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)


def fmt(value: Decimal | None) -> str | None:
    """A decimal as the API prints it: plain notation, no exponent, no trailing zeros
    beyond what the value carries."""
    if value is None:
        return None
    if value.is_zero():
        return "0"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
