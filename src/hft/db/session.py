"""Async engine, sessions and the serialized write transaction.

Writers must open their transaction with `write_transaction(session)`:

    async with write_transaction(session):
        account = await lock_account(session, account_id)
        ...check cash, insert the order...
    # committed here; rolled back if the block raised

On SQLite there is one writer at a time: the transaction starts with BEGIN IMMEDIATE
(taking the database's write lock up front, so a read-then-write can never fail with
"database is locked" half way) under a per-engine asyncio.Lock (so the coroutines of one
process queue in the event loop instead of blocking threads in busy_timeout). Several
processes on one SQLite file still serialize through BEGIN IMMEDIATE and busy_timeout.

On PostgreSQL transactions run concurrently at READ COMMITTED; `lock_account` takes a
row lock (SELECT ... FOR UPDATE) so two orders of the same account are checked one after
the other and can never both spend the same cash.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, make_url, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

if TYPE_CHECKING:
    from hft.db.models.auth import Account

SQLITE_BUSY_TIMEOUT_MS = 30_000
STATEMENT_CACHE_SIZE = 2048
_BEGIN_OPTION = "hft_begin"

_writer_locks: weakref.WeakKeyDictionary[Engine, asyncio.Lock] = weakref.WeakKeyDictionary()


def create_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    """An async engine for `url` (sqlite+aiosqlite:// or postgresql+asyncpg://).

    SQLite connections get WAL, synchronous=FULL (a commit survives power loss),
    foreign keys and a busy timeout, and explicit transaction control (the driver's own
    implicit BEGIN is disabled so BEGIN IMMEDIATE and transactional DDL work).
    Raises sqlalchemy.exc.ArgumentError for an unknown URL scheme.
    """
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            # A fresh install has no data directory yet.
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False
        )
        _configure_sqlite(engine.sync_engine)
        return engine
    connect_args: dict[str, Any] = {}
    if url.startswith("postgresql+asyncpg"):
        query = make_url(url).query
        # Multi-row INSERTs have one SQL text per batch size (id lists do not: they
        # are bound as one array, hft.db.sql.in_list); with the drivers' default of 100
        # cached statements per connection they would be prepared again and again (a
        # round trip each).
        for option in ("prepared_statement_cache_size", "statement_cache_size"):
            if option not in query:
                connect_args[option] = STATEMENT_CACHE_SIZE
    engine = create_async_engine(
        url, echo=echo, pool_size=pool_size, max_overflow=pool_size, connect_args=connect_args
    )
    _ping_idle_connections(engine.sync_engine)
    return engine


# A pooled connection that has sat idle longer than this is pinged before use. Under
# load connections go back and forth within milliseconds and are not pinged (SQLAlchemy's
# pool_pre_ping would cost a round trip on every checkout); after a server restart or
# an idle period, the idle ones are checked and replaced when dead.
IDLE_PING_S = 1.0
_CHECKED_IN = "hft_checked_in"


def _ping_idle_connections(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: DBAPIConnection | None, record: ConnectionPoolEntry) -> None:
        record.info[_CHECKED_IN] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(
        dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry, _proxy: Any
    ) -> None:
        since = record.info.get(_CHECKED_IN)
        if since is None or time.monotonic() - since < IDLE_PING_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool discards this connection and checks out another (a new one when
            # none is left), as pool_pre_ping does.
            raise DisconnectionError(f"idle connection is dead: {exc}") from exc


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=FULL",
            "PRAGMA foreign_keys=ON",
            f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if mode == "immediate" else "BEGIN")


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit (no implicit refresh I/O)."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def _writer_lock(engine: Engine) -> asyncio.Lock:
    lock = _writer_locks.get(engine)
    if lock is None:
        lock = _writer_locks[engine] = asyncio.Lock()
    return lock


@asynccontextmanager
async def write_transaction(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    """Run the block as one serialized write transaction; commit on success, roll back
    on any exception (which propagates).

    A read-only transaction already open on `session` (e.g. from loading the current
    user) is ended first. Raises RuntimeError if the session holds unflushed or
    uncommitted writes from outside this block: they would escape serialization.
    """
    if session.in_transaction():
        if session.new or session.dirty or session.deleted:
            raise RuntimeError("write_transaction: session has pending changes from outside")
        await session.commit()
    bind = session.bind
    assert isinstance(bind, AsyncEngine), "sessions are bound to one AsyncEngine"
    if bind.dialect.name == "sqlite":
        async with _writer_lock(bind.sync_engine):
            await session.connection(execution_options={_BEGIN_OPTION: "immediate"})
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise
    else:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


async def lock_account(session: AsyncSession, account_id: int) -> Account | None:
    """Load an account for update inside `write_transaction` (a row lock on PostgreSQL;
    SQLite's writer lock already covers it). Returns None when it does not exist."""
    from hft.db.models.auth import Account

    result = await session.execute(
        select(Account)
        .where(Account.id == account_id)
        .with_for_update()
        # A copy the session loaded before the lock may be stale: re-read it under the lock.
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


class Database:
    """An engine plus its session factory; one per application (per process)."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = url
        self.engine = create_engine(url, pool_size=pool_size, echo=echo)
        self.sessionmaker = make_sessionmaker(self.engine)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def session(self) -> AsyncSession:
        """A new session (use as `async with db.session() as session:`)."""
        return self.sessionmaker()

    async def ping(self) -> bool:
        """True when a trivial query succeeds."""
        try:
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")
            return True
        except Exception:
            return False

    async def dispose(self) -> None:
        await self.engine.dispose()


__all__ = [
    "Database",
    "create_engine",
    "lock_account",
    "make_sessionmaker",
    "write_transaction",
]
