"""The Alembic migrations and the SQLAlchemy models describe the same schema."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

import hft.db.models
from hft.db.migrate import current_revision, downgrade, head_revision, upgrade
from hft.db.session import create_engine


def _diff(connection: Connection) -> list[str]:
    """What autogenerate would change to make the database match the models, one line
    per difference (e.g. `modify_type fills.order_id: INTEGER -> BIGINT`)."""
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    out: list[str] = []
    for item in compare_metadata(context, hft.db.models.Base.metadata):
        for op in item if isinstance(item, list) else [item]:
            out.append(_describe(op))
    return out


def _describe(op: Any) -> str:
    kind = op[0]
    if kind.startswith("modify_"):
        _, _, table, column, _, old, new = op
        return f"{kind} {table}.{column}: database {old!r}, model {new!r}"
    obj = op[1]
    name = getattr(obj, "name", None) or getattr(obj, "fullname", obj)
    table = getattr(getattr(obj, "table", None), "name", "")
    return f"{kind} {table + '.' if table else ''}{name}"


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_models_match_migrations(empty_db_url: str) -> None:
    engine = create_engine(empty_db_url, pool_size=1)
    try:
        await upgrade(engine)
        assert await current_revision(engine) == head_revision()
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
            tables = await conn.run_sync(_tables)
        assert {"users", "accounts", "api_keys", "audit_log"} <= tables
        assert tables - {"alembic_version"} == set(hft.db.models.Base.metadata.tables)
    finally:
        await engine.dispose()


async def test_upgrade_is_idempotent_and_downgrade_reverses_it(empty_db_url: str) -> None:
    engine = create_engine(empty_db_url, pool_size=1)
    try:
        await upgrade(engine)
        await upgrade(engine)
        await downgrade(engine, "base")
        async with engine.connect() as conn:
            left = await conn.run_sync(_tables) - {"alembic_version"}
        assert not left, f"tables the downgrade to base did not drop: {sorted(left)}"
        assert await current_revision(engine) is None
        await upgrade(engine)
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await engine.dispose()
