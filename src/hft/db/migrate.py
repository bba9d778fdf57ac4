"""Running Alembic migrations from code (the app at start, `hft db` on the CLI)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant works; it only has to be the same in every process of the platform.
_PG_MIGRATION_LOCK = 0x48465444  # "HFTD"


def alembic_config(url: str = "") -> Config:
    """An Alembic Config pointing at the packaged migrations (no alembic.ini needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str | None:
    """The newest revision in the migrations directory."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _migrate(connection: Connection, revision: str, direction: str) -> None:
    if connection.dialect.name == "postgresql":
        # Several backend processes may start at once; one migrates, the others wait.
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    if direction == "up":
        command.upgrade(cfg, revision)
    else:
        command.downgrade(cfg, revision)


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def _run(engine: AsyncEngine, revision: str, direction: str) -> None:
    async with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn = await conn.execution_options(hft_begin="immediate")
        async with conn.begin():
            await conn.run_sync(_migrate, revision, direction)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade the schema to `revision` in one transaction (all or nothing on PostgreSQL
    and SQLite, whose DDL is transactional here). Raises on migration errors."""
    await _run(engine, revision, "up")


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    """Downgrade the schema to `revision` ("base" removes every table). Destroys data."""
    await _run(engine, revision, "down")


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    async with engine.connect() as conn:
        return await conn.run_sync(_current)
