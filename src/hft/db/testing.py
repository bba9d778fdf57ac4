"""Throwaway databases for tests and benchmarks (not used by the running platform).

`TemporaryPostgres` creates uniquely named databases on a shared PostgreSQL server and
drops them again, so concurrent test sessions never see each other's data.
"""

from __future__ import annotations

import asyncio
import os
import secrets

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import make_url

from hft.db.migrate import upgrade
from hft.db.session import create_engine

ENV_POSTGRES_URL = "HFT_TEST_POSTGRES_URL"


def postgres_test_url() -> str | None:
    """The PostgreSQL server tests may use (env HFT_TEST_POSTGRES_URL), or None."""
    return os.environ.get(ENV_POSTGRES_URL) or None


def _dsn(url: str, database: str) -> str:
    u = make_url(url).set(drivername="postgresql", database=database)
    return u.render_as_string(hide_password=False)


class TemporaryPostgres:
    """Databases named `<prefix>_<random>...` on the server of `server_url` (any
    postgresql+asyncpg:// URL; its database is only used to connect for CREATE/DROP).

    `template()` creates one migrated database; `clone()` copies it (fast: PostgreSQL
    copies files) for each test. `close()` drops every database this object created.
    """

    def __init__(self, server_url: str, prefix: str = "hft_test") -> None:
        self.server_url = server_url
        self.prefix = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
        self._created: list[str] = []
        self._template: str | None = None
        self._counter = 0
        self._free: list[str] = []

    def url_for(self, database: str) -> str:
        """The SQLAlchemy URL of `database` on the same server."""
        return (
            make_url(self.server_url).set(database=database).render_as_string(hide_password=False)
        )

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(
            _dsn(self.server_url, make_url(self.server_url).database or "postgres")
        )
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def create(self, *, template: str | None = None) -> str:
        """A new empty (or template-copied) database; returns its SQLAlchemy URL."""
        self._counter += 1
        name = f"{self.prefix}_{self._counter}"
        source = f" TEMPLATE {template}" if template else ""
        await self._admin(f'CREATE DATABASE "{name}"{source}')
        self._created.append(name)
        return self.url_for(name)

    async def template(self) -> str:
        """Name of a database migrated to head, created once."""
        if self._template is None:
            url = await self.create()
            engine = create_engine(url, pool_size=1)
            try:
                await upgrade(engine)
            finally:
                await engine.dispose()
            self._template = make_url(url).database
        assert self._template is not None
        return self._template

    async def clone(self) -> str:
        """URL of a fresh copy of the migrated template."""
        return await self.create(template=await self.template())

    async def _drop(self, name: str) -> None:
        try:
            await self._admin(f'DROP DATABASE IF EXISTS "{name}"')
        except asyncpg.ObjectInUseError:
            # Someone left a connection open (e.g. a killed server): end it. FORCE is
            # the exception, not the rule, because it is much slower.
            await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def acquire(self) -> str:
        """URL of a migrated database with empty tables: a recycled one when available
        (see `release`), else a new copy of the template."""
        if self._free:
            return self._free.pop()
        return await self.clone()

    async def release(self, url: str) -> None:
        """Empty every table of `url`'s database and keep it for the next `acquire`.

        Much cheaper than DROP DATABASE, which forces a server-wide checkpoint. The
        append-only audit trigger is bypassed with session_replication_role (needs a
        superuser); without that privilege the database is dropped instead.
        """
        name = make_url(url).database
        conn = await asyncpg.connect(_dsn(self.server_url, name or ""))
        try:
            tables = [
                r["tablename"]
                for r in await conn.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename <> 'alembic_version'"
                )
            ]
            if tables:
                quoted = ", ".join(f'"{t}"' for t in tables)
                async with conn.transaction():
                    await conn.execute("SET LOCAL session_replication_role = replica")
                    await conn.execute(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE")
        except asyncpg.InsufficientPrivilegeError:
            await conn.close()
            await self.drop(url)
            return
        finally:
            if not conn.is_closed():
                await conn.close()
        self._free.append(url)

    async def drop(self, url: str) -> None:
        """Drop a database made by `create`/`clone` (connections to it should be closed)."""
        name = make_url(url).database
        if name in self._created:
            await self._drop(name)
            self._created.remove(name)

    async def close(self) -> None:
        for name in list(reversed(self._created)):
            await self._drop(name)
        self._created.clear()
        self._free.clear()
        self._template = None

    def close_sync(self) -> None:
        asyncio.run(self.close())


__all__ = ["ENV_POSTGRES_URL", "TemporaryPostgres", "postgres_test_url"]
