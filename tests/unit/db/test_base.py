"""Exact decimal and UTC timestamp columns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Column, Integer, MetaData, Table, insert, select
from sqlalchemy.exc import StatementError

from hft.db.base import Numeric, UtcDateTime, canonical_decimal
from hft.db.session import create_engine

metadata = MetaData()
probe = Table(
    "probe",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("amount", Numeric()),
    Column("ts", UtcDateTime()),
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("100.500", "100.5"),
        ("1E+2", "100"),
        ("-0", "0"),
        ("0.000", "0"),
        ("-0.0001", "-0.0001"),
        ("12345678901234567890.123456789012345678", "12345678901234567890.123456789012345678"),
        ("190.000000000000000000", "190"),
        ("-3.000000000000000000", "-3"),
        ("0E-18", "0"),
        ("1E-18", "0.000000000000000001"),
        ("1.0E+3", "1000"),
        ("99999999999999999999999999999999999999", "99999999999999999999999999999999999999"),
        ("-99999999999999999999.999999999999999999", "-99999999999999999999.999999999999999999"),
    ],
)
def test_canonical_decimal(value: str, expected: str) -> None:
    out = canonical_decimal(Decimal(value))
    assert format(out, "f") == expected
    assert out == Decimal(value)


@given(
    st.decimals(
        allow_nan=False, allow_infinity=False, min_value=-(10**20), max_value=10**20
    ).filter(lambda d: d.as_tuple().exponent >= -18)  # type: ignore[operator]
)
def test_canonical_decimal_is_the_same_number_in_plain_form(value: Decimal) -> None:
    out = canonical_decimal(value)
    assert out.as_tuple().exponent <= 0  # type: ignore[operator]
    text = format(out, "f")
    assert Decimal(text) == value
    assert text != "-0"
    assert not ("." in text and text.endswith("0"))


@pytest.fixture
async def engine(empty_db_url: str) -> AsyncIterator[object]:
    eng = create_engine(empty_db_url, pool_size=1)
    async with eng.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield eng
    await eng.dispose()


async def test_decimals_round_trip_exactly(engine) -> None:
    values = [
        Decimal("0.1"),
        Decimal("0.2"),
        Decimal("-123.456789012345678901"[:22]),
        Decimal("99999999999999999999.999999999999999999"),
        Decimal("0.000000000000000001"),
        Decimal(7),
        Decimal("-0"),
    ]
    async with engine.begin() as conn:
        await conn.execute(insert(probe), [{"id": i, "amount": v} for i, v in enumerate(values)])
    async with engine.connect() as conn:
        rows = (await conn.execute(select(probe.c.amount).order_by(probe.c.id))).scalars().all()
    assert rows == values
    assert all(isinstance(r, Decimal) for r in rows)
    assert rows[0] + rows[1] == Decimal("0.3")
    assert str(rows[6]) == "0"


@pytest.mark.parametrize(
    "bad",
    [0.1, Decimal("NaN"), Decimal("Infinity"), Decimal("1E-19"), "12", True],
)
async def test_inexact_or_invalid_decimals_are_refused(engine, bad: object) -> None:
    with pytest.raises(StatementError):
        async with engine.begin() as conn:
            await conn.execute(insert(probe), {"id": 1, "amount": bad})


async def test_timestamps_are_utc_aware(engine) -> None:
    local = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone(timedelta(hours=2)))
    async with engine.begin() as conn:
        await conn.execute(insert(probe), {"id": 1, "ts": local})
    async with engine.connect() as conn:
        ts = (await conn.execute(select(probe.c.ts))).scalar_one()
    assert ts == local
    assert ts.tzinfo is not None
    assert ts.utcoffset() == timedelta(0)
    assert ts.astimezone(UTC).hour == 1
    with pytest.raises(StatementError):
        async with engine.begin() as conn:
            await conn.execute(insert(probe), {"id": 2, "ts": datetime(2026, 1, 1)})
