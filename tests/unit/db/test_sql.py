"""Dialect-specific statement pieces (hft.db.sql)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import cast

import pytest
from sqlalchemy import Table, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import StatementError

from hft.db.models.trading import CandleRow, FillRow, OrderRow
from hft.db.session import create_engine
from hft.db.sql import DIALECTS, in_list, pg_unnest

_ORDERS = cast(Table, OrderRow.__table__)


def test_every_supported_dialect_has_a_form() -> None:
    assert set(in_list(_ORDERS.c.id, "ids")) == set(DIALECTS)


def test_postgresql_binds_the_list_as_one_array() -> None:
    stmt = select(_ORDERS.c.id).where(in_list(_ORDERS.c.id, "ids")["postgresql"])
    compiled = stmt.compile(dialect=postgresql.asyncpg.dialect())  # type: ignore[attr-defined]
    assert str(compiled).endswith("WHERE orders.id = ANY ($1::BIGINT[])")
    # One parameter whatever the list's length: the SQL text never changes.
    assert compiled.construct_params({"ids": [1, 2, 3]})["ids"] == [1, 2, 3]


def test_sqlite_expands_the_list() -> None:
    stmt = select(_ORDERS.c.id).where(in_list(_ORDERS.c.id, "ids")["sqlite"])
    assert str(stmt.compile(dialect=sqlite.dialect())).endswith(
        "WHERE orders.id IN (__[POSTCOMPILE_ids])"
    )


async def test_pg_unnest_rows_round_trip_through_postgresql(postgres_db_url: str) -> None:
    table = cast(Table, FillRow.__table__)
    columns = ("order_id", "symbol", "price", "fee", "time")
    sql, params = pg_unnest(table, columns, "f")
    assert [p.key for p in params] == [f"f_{c}" for c in columns]
    stmt = text(f"SELECT * FROM {sql}").bindparams(*params)
    when = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    engine = create_engine(postgres_db_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    stmt,
                    {
                        "f_order_id": [1, 2**40, 3],
                        "f_symbol": ["AAPL", "BTC-USD", "X"],
                        "f_price": [Decimal("190.25"), Decimal("0.000000000000000001"), 7],
                        "f_fee": [Decimal(0), None, Decimal("-1E+2")],
                        "f_time": [when, when, when.astimezone(timezone(timedelta(hours=-5)))],
                    },
                )
            ).all()
            assert [tuple(r) for r in rows] == [
                (1, "AAPL", Decimal("190.25"), Decimal(0), when),
                (2**40, "BTC-USD", Decimal("0.000000000000000001"), None, when),
                (3, "X", Decimal(7), Decimal(-100), when),
            ]
            # No rows: empty arrays, same statement.
            empty = {f"f_{c}": [] for c in columns}
            assert (await conn.execute(stmt, empty)).all() == []
            # Each element goes through the column type's own checks.
            bad = {**empty, "f_price": [Decimal("NaN")]}
            with pytest.raises(StatementError, match="non-finite"):
                await conn.execute(stmt, bad)
            naive = {**empty, "f_time": [datetime(2026, 1, 2)]}
            with pytest.raises(StatementError, match="timezone-aware"):
                await conn.execute(stmt, naive)
            inexact = {**empty, "f_price": [0.5]}
            with pytest.raises(StatementError, match="needs Decimal or int"):
                await conn.execute(stmt, inexact)
            too_fine = {**empty, "f_fee": [Decimal("1E-19")]}
            with pytest.raises(StatementError, match="more than 18 decimals"):
                await conn.execute(stmt, too_fine)
    finally:
        await engine.dispose()


def test_decimals_and_timestamps_are_bound_as_one_array_literal() -> None:
    pg = postgresql.asyncpg.dialect()  # type: ignore[attr-defined]
    when = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2)))
    _, params = pg_unnest(cast(Table, FillRow.__table__), ("price", "time"), "f")
    price, time = (p.type.bind_processor(pg) for p in params)
    assert price is not None
    assert time is not None
    assert price([Decimal("190.250"), None, Decimal("-1E+2"), 3]) == "{190.250,NULL,-100,3}"
    assert time([when]) == "{2026-01-02T01:04:05.678901+00:00}"
    utc = "2026-01-02T01:04:05.678901+00:00"
    assert time([None, when, when, None, when]) == f"{{NULL,{utc},{utc},NULL,{utc}}}"
    assert price([]) == "{}"
    assert price([Decimal("1E-18")]) == "{0.000000000000000001}"
    for bad in (Decimal("1.0000000000000000000"), Decimal("NaN"), Decimal("-Infinity"), 1.5):
        with pytest.raises((ValueError, TypeError)):
            price([Decimal(1), bad])


def test_pg_unnest_quotes_and_casts_each_column() -> None:
    table = cast(Table, CandleRow.__table__)
    sql, _ = pg_unnest(table, ("symbol", "interval", "volume"), "c")
    assert sql == (
        "unnest(CAST(:c_symbol AS VARCHAR(32)[]), CAST(:c_interval AS VARCHAR(4)[]), "
        "CAST(:c_volume AS NUMERIC(38, 18)[])) AS c(symbol, interval, volume)"
    )
