"""Dialect-specific statement pieces (hft.db.sql)."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite

from hft.db.models.trading import OrderRow
from hft.db.sql import DIALECTS, in_list

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
