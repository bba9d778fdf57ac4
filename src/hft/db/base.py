"""Declarative base and the column types every table uses.

Money and quantities are exact: `Numeric` is NUMERIC(38, 18) on PostgreSQL and a
canonical decimal string on SQLite (which has no exact decimal type and would otherwise
round through float). Do decimal arithmetic in Python, not in SQL: on SQLite, SUM() or
ORDER BY over a `Numeric` column works on text. Timestamps are timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Context, Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, MetaData, String
from sqlalchemy import Numeric as SqlNumeric
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator, TypeEngine

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Integer primary keys that are 64-bit on PostgreSQL; SQLite only autoincrements a column
# declared exactly INTEGER (which is 64-bit there anyway).
BigIntId = BigInteger().with_variant(Integer(), "sqlite")

NUMERIC_PRECISION = 38
NUMERIC_SCALE = 18


class Base(DeclarativeBase):
    """Base of every table; constraint names follow NAMING_CONVENTION (stable migrations)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def canonical_decimal(value: Decimal) -> Decimal:
    """`value` without trailing zeros and never in exponent form: 100.500 -> 100.5,
    1E+2 -> 100, -0 -> 0.

    Runs for every decimal column of every row read, so it avoids the generic route
    (normalize, then undo a positive exponent): an integral value is quantized to units,
    any other one normalized, which is the same result at half the cost.
    """
    if not value:
        return _ZERO
    if value == value.to_integral_value(context=_WIDE):
        return value.quantize(_ONE, context=_WIDE)
    return value.normalize(_WIDE)


# Twice NUMERIC's precision: no 38-digit value is ever rounded on the way.
_WIDE = Context(prec=2 * NUMERIC_PRECISION)
_ZERO = Decimal(0)
_ONE = Decimal(1)


class Numeric(TypeDecorator[Decimal]):
    """An exact decimal column: NUMERIC(38, 18) on PostgreSQL, decimal text on SQLite.

    Accepts Decimal or int on write (float is refused: it is not exact) and always returns
    Decimal. Raises ValueError for NaN, infinities or more than 18 decimals.
    """

    impl = SqlNumeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(64))
        return dialect.type_descriptor(SqlNumeric(NUMERIC_PRECISION, NUMERIC_SCALE, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if type(value) is Decimal:  # the common case first: every money write is one
            dec = value
        elif value is None:
            return None
        elif isinstance(value, bool) or not isinstance(value, Decimal | int):
            raise TypeError(f"exact decimal column needs Decimal or int, got {type(value)!r}")
        else:
            dec = Decimal(value)
        if not dec.is_finite():
            raise ValueError(f"non-finite decimal {dec!r} cannot be stored")
        if dec.as_tuple().exponent < -NUMERIC_SCALE:  # type: ignore[operator]
            raise ValueError(f"{dec} has more than {NUMERIC_SCALE} decimals")
        if dialect.name == "sqlite":
            # Canonical text: no exponent, no trailing zeros, and never "-0".
            return format(canonical_decimal(dec), "f")
        return dec

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return canonical_decimal(value if isinstance(value, Decimal) else Decimal(str(value)))

    def copy(self, **kw: Any) -> Numeric:
        return Numeric()

    def __repr__(self) -> str:
        return "Numeric()"


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp (TIMESTAMPTZ on PostgreSQL, naive UTC on SQLite).

    Raises ValueError when given a naive datetime (its zone would be a guess).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return "UtcDateTime()"


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (microsecond precision)."""
    return datetime.now(UTC)


__all__ = ["Base", "BigIntId", "Numeric", "UtcDateTime", "canonical_decimal", "utcnow"]
