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
import contextlib
import logging
import re
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import event, make_url, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

if TYPE_CHECKING:
    from hft.db.models.auth import Account

log = logging.getLogger("hft.db.session")
T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 30_000
# How long a transaction ChainedTransactions began for a writer's next batch may wait for
# it before the writer ends it: an idle writer holds no open transaction longer.
BEGUN_IDLE_S = 1.0
# How long ChainedTransactions keeps one chain of transactions going before it lets the
# connection go idle outside a transaction once. A PostgreSQL backend reports its table
# statistics (rows inserted, updated, dead) only then, and at most once a second
# (PGSTAT_MIN_INTERVAL); autovacuum and autoanalyze act on nothing else. A chain that
# never ends hides every row it changes: the tables bloat, their dead index entries and
# row versions are walked by every statement, and order entry slows down by the minute.
CHAIN_S = 1.0
STATEMENT_CACHE_SIZE = 2048
_CHANNEL = re.compile(r"[a-z_][a-z0-9_]*")
_PAYLOAD = re.compile(r"[0-9:-]{1,64}")
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


class ChainedTransactions:
    """PostgreSQL write transactions of one sequential writer (a loop that commits
    batch after batch), begun and ended by hand so that each COMMIT also begins the
    next batch's transaction: one round trip fewer per batch.

    `run(work, keep=True)` runs a batch's statements and commits them. The kept
    connection waits, its transaction begun (no statement yet, so it holds no snapshot
    and no lock), for the next `run`; call `end()` when the writer goes idle or stops,
    so no transaction stays open. After `CHAIN_S` of chaining, one COMMIT begins
    nothing: the connection goes back to the pool, idle, and the server reports the
    chain's table statistics, which autovacuum needs. SQLAlchemy sees the connection in
    autocommit mode, so it sends no BEGIN of its own and none of its resets ends a
    transaction begun here: a connection that failed is invalidated (closed; the server
    rolls back).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._kept: AsyncConnection | None = None
        self._chain_began = 0.0

    @property
    def kept(self) -> bool:
        """Whether a connection waits with the next transaction begun."""
        return self._kept is not None

    async def run(
        self,
        work: Callable[[AsyncConnection], Awaitable[T]],
        *,
        keep: bool,
        notify: tuple[str, str] | None = None,
    ) -> T:
        """`work` in a transaction, then committed (with `keep`, beginning the next).
        With `notify` (channel, payload: a lowercase identifier and digits, colons or
        minus signs), the transaction also sends that NOTIFY, in the round trip of its
        COMMIT.

        If `work` fails on the kept connection, which the server may have closed while
        it waited (a restart, an idle-session timeout), it runs once more on a new one:
        nothing of it was committed."""
        prefix = ""
        if notify is not None:
            channel, payload = notify
            # Written into the SQL text (a simple query: no parameters), so only these
            # characters, which need no quoting, are allowed.
            if not _CHANNEL.fullmatch(channel) or not _PAYLOAD.fullmatch(payload):
                raise ValueError(f"refusing to NOTIFY {channel!r} with {payload!r}")
            prefix = f"NOTIFY {channel}, '{payload}'; "
        retry = self._kept is not None
        while True:
            conn = await self._begin()
            try:
                result = await work(conn)
            except Exception:
                await self._discard(conn)
                if not retry:
                    raise
                retry = False
                log.warning("a batch failed on a kept connection; running it on a new one")
                continue
            except BaseException:
                await self._discard(conn)
                raise
            try:
                await self._commit(conn, keep=keep, prefix=prefix)
            except BaseException:
                await self._discard(conn)
                raise
            return result

    async def get(self, queue: asyncio.Queue[T]) -> T:
        """The writer's next item from `queue`; the kept transaction is ended if none
        comes within `BEGUN_IDLE_S`, so an idle writer holds no open transaction."""
        if self._kept is None or not queue.empty():
            return await queue.get()
        try:
            return await asyncio.wait_for(queue.get(), BEGUN_IDLE_S)
        except TimeoutError:
            await self.end()
            return await queue.get()

    async def _begin(self) -> AsyncConnection:
        """A connection in a begun transaction: the kept one, or a new one."""
        conn, self._kept = self._kept, None
        if conn is not None:
            return conn
        conn = await self.engine.connect()
        try:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await _driver(conn).execute("BEGIN")
        except BaseException:
            await self._discard(conn)
            raise
        self._chain_began = time.monotonic()
        return conn

    async def _commit(self, conn: AsyncConnection, *, keep: bool, prefix: str = "") -> None:
        """Commit; with `keep` (and none kept yet, and the chain younger than
        `CHAIN_S`), begin the next transaction in the same round trip and keep the
        connection, else return it to the pool."""
        if keep and self._kept is None and time.monotonic() - self._chain_began < CHAIN_S:
            await _driver(conn).execute(prefix + "COMMIT; BEGIN")
            if self._kept is None:
                self._kept = conn
                return
            await _driver(conn).execute("ROLLBACK")
        else:
            await _driver(conn).execute(prefix + "COMMIT")
        await conn.close()

    async def _discard(self, conn: AsyncConnection) -> None:
        """Close a connection whose transaction failed or is in doubt."""
        if conn is self._kept:
            self._kept = None
        with contextlib.suppress(Exception):
            await conn.invalidate()
        with contextlib.suppress(Exception):
            await conn.close()

    async def end(self) -> None:
        """End the kept connection's begun transaction and return it to the pool."""
        conn, self._kept = self._kept, None
        if conn is None:
            return
        try:
            await _driver(conn).execute("ROLLBACK")
            await conn.close()
        except Exception:
            # The server may have closed it meanwhile.
            await self._discard(conn)


def _driver(conn: AsyncConnection) -> Any:
    """The DB-API driver's own connection under a checked-out `conn` (asyncpg's)."""
    sync = conn.sync_connection
    assert sync is not None
    return sync.connection.driver_connection


__all__ = [
    "BEGUN_IDLE_S",
    "ChainedTransactions",
    "Database",
    "create_engine",
    "lock_account",
    "make_sessionmaker",
    "write_transaction",
]
