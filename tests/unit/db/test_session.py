"""Serialized write transactions: concurrent read-modify-write never loses an update."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

import hft.db.session as session_module
from hft.db.migrate import upgrade
from hft.db.models.auth import Account, User
from hft.db.session import ChainedTransactions, Database, lock_account, write_transaction
from hft.db.users import UsernameTakenError, create_user


async def _setup(url: str) -> tuple[Database, int]:
    db = Database(url, pool_size=8)
    await upgrade(db.engine)
    async with db.session() as session, write_transaction(session):
        _, account = await create_user(session, "racer", "x", starting_cash=Decimal("100"))
    return db, account.id


async def test_concurrent_spends_never_exceed_cash(empty_db_url: str) -> None:
    """Twenty concurrent "orders" each try to spend 10 out of 100: exactly ten succeed."""
    db, account_id = await _setup(empty_db_url)
    try:

        async def spend() -> bool:
            async with db.session() as session, write_transaction(session):
                account = await lock_account(session, account_id)
                assert account is not None
                available = account.cash - account.reserved_cash
                # Yield to the loop between the check and the write, where a race would be.
                await asyncio.sleep(0.001)
                if available < 10:
                    return False
                account.reserved_cash += Decimal(10)
                return True

        results = await asyncio.gather(*(spend() for _ in range(20)))
        assert sum(results) == 10
        async with db.session() as session:
            account = await session.get(Account, account_id)
            assert account is not None
            assert account.reserved_cash == Decimal(100)
    finally:
        await db.dispose()


async def test_write_transaction_rolls_back_on_error(empty_db_url: str) -> None:
    db, account_id = await _setup(empty_db_url)
    try:

        async def zero_cash_then_fail() -> None:
            async with db.session() as session, write_transaction(session):
                account = await lock_account(session, account_id)
                assert account is not None
                account.cash = Decimal(0)
                await session.flush()
                raise ZeroDivisionError

        with pytest.raises(ZeroDivisionError):
            await zero_cash_then_fail()
        async with db.session() as session:
            account = await session.get(Account, account_id)
            assert account is not None
            assert account.cash == Decimal(100)
    finally:
        await db.dispose()


async def test_write_transaction_refuses_pending_outside_changes(empty_db_url: str) -> None:
    db, account_id = await _setup(empty_db_url)
    try:
        async with db.session() as session:
            account = await session.get(Account, account_id)
            assert account is not None
            account.cash = Decimal(1)
            with pytest.raises(RuntimeError, match="pending changes"):
                async with write_transaction(session):
                    pass
        # A read-only transaction before is fine: it is ended first.
        async with db.session() as session:
            await session.execute(select(User))
            async with write_transaction(session):
                assert await lock_account(session, account_id) is not None
            assert await lock_account(session, 999) is None
    finally:
        await db.dispose()


async def test_duplicate_username_in_any_case(empty_db_url: str) -> None:
    db, _ = await _setup(empty_db_url)
    try:
        with pytest.raises(UsernameTakenError):
            async with db.session() as session, write_transaction(session):
                await create_user(session, "RACER", "x", starting_cash=Decimal(1))
        with pytest.raises(ValueError, match="role"):
            async with db.session() as session, write_transaction(session):
                await create_user(session, "new", "x", role="root", starting_cash=Decimal(1))
    finally:
        await db.dispose()


async def test_sqlite_pragmas(tmp_path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'sub' / 'dir' / 'x.db'}")
    try:
        async with db.engine.connect() as conn:
            pragmas = {
                name: (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
        assert pragmas == {
            "journal_mode": "wal",
            "synchronous": 2,
            "foreign_keys": 1,
            "busy_timeout": 30000,
        }
        assert await db.ping()
    finally:
        await db.dispose()


async def _backend_pid(db: Database) -> int:
    async with db.session() as session:
        return int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_idle_connection_killed_by_the_server_is_replaced(
    postgres_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pooled PostgreSQL connection idle past IDLE_PING_S is pinged before use, so one
    the server dropped meanwhile (restart, idle timeout) is replaced, not handed out."""
    db, killer = Database(postgres_db_url, pool_size=1), Database(postgres_db_url, pool_size=1)
    try:
        pid = await _backend_pid(db)
        async with killer.session() as session:
            await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        monkeypatch.setattr(session_module, "IDLE_PING_S", 0.0)
        assert await _backend_pid(db) != pid
    finally:
        await db.dispose()
        await killer.dispose()


async def test_busy_connections_are_not_pinged(
    postgres_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(postgres_db_url, pool_size=1)
    pings: list[object] = []
    dialect = db.engine.sync_engine.dialect
    real_ping = dialect.do_ping

    def counting_ping(conn: object) -> bool:
        pings.append(conn)
        return bool(real_ping(conn))  # type: ignore[arg-type]

    monkeypatch.setattr(dialect, "do_ping", counting_ping)
    try:
        first = await _backend_pid(db)
        assert await _backend_pid(db) == first
        assert pings == []
        monkeypatch.setattr(session_module, "IDLE_PING_S", 0.0)
        assert await _backend_pid(db) == first
        assert len(pings) == 1
    finally:
        await db.dispose()


async def _idle_in_transaction(db: Database) -> int:
    async with db.session() as session:
        rows = await session.execute(
            text(
                "SELECT pid FROM pg_stat_activity WHERE state = 'idle in transaction' "
                "AND datname = current_database()"
            )
        )
        return len(rows.all())


async def _count(db: Database) -> int:
    async with db.session() as session:
        return int((await session.execute(text("SELECT count(*) FROM chained"))).scalar_one())


async def test_chained_transactions_commit_each_batch_and_begin_the_next(
    postgres_db_url: str,
) -> None:
    db = Database(postgres_db_url, pool_size=2)
    chain = ChainedTransactions(db.engine)
    pids: list[int] = []

    async def insert(conn: AsyncConnection) -> None:
        await conn.execute(text("INSERT INTO chained VALUES (1)"))
        pids.append(int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()))

    try:
        async with db.engine.begin() as conn:
            await conn.execute(text("CREATE TABLE chained (n int)"))
        await chain.run(insert, keep=True)
        # Committed (seen from another connection), and the next transaction is begun.
        assert await _count(db) == 1
        assert chain.kept
        assert await _idle_in_transaction(db) == 1
        await chain.run(insert, keep=True)
        assert pids[0] == pids[1]  # the same connection, no BEGIN of its own
        assert await _count(db) == 2
        await chain.end()
        assert not chain.kept
        assert await _idle_in_transaction(db) == 0

        # A failed batch commits nothing and leaves no transaction open in the pool.
        async def fail(conn: AsyncConnection) -> None:
            await insert(conn)
            raise RuntimeError("half way")

        with pytest.raises(RuntimeError, match="half way"):
            await chain.run(fail, keep=True)
        assert await _count(db) == 2
        assert not chain.kept
        assert await _idle_in_transaction(db) == 0
    finally:
        await chain.end()
        await db.dispose()


async def test_a_batch_failing_on_the_kept_connection_runs_again_on_a_new_one(
    postgres_db_url: str,
) -> None:
    """The server may close the kept connection while it waits (a restart, an idle
    session timeout): the batch runs again on a new connection, once; a batch that
    fails on a new connection is not retried."""
    db = Database(postgres_db_url, pool_size=2)
    chain = ChainedTransactions(db.engine)
    runs = 0

    async def insert(conn: AsyncConnection) -> None:
        nonlocal runs
        runs += 1
        await conn.execute(text("INSERT INTO chained VALUES (1)"))

    try:
        async with db.engine.begin() as conn:
            await conn.execute(text("CREATE TABLE chained (n int)"))
        await chain.run(insert, keep=True)
        async with db.session() as session:
            await session.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE state = "
                    "'idle in transaction' AND datname = current_database()"
                )
            )
        await chain.run(insert, keep=True)
        assert runs == 3
        assert await _count(db) == 2
        await chain.end()

        async def broken(conn: AsyncConnection) -> None:
            nonlocal runs
            runs += 1
            await conn.execute(text("INSERT INTO missing VALUES (1)"))

        with pytest.raises(DBAPIError):
            await chain.run(broken, keep=True)
        assert runs == 4
    finally:
        await chain.end()
        await db.dispose()


async def _inserts_reported(db: Database) -> int:
    """Rows inserted into `chained` as PostgreSQL's statistics (what autovacuum reads)
    know them, from a new connection so no cached snapshot of them is read."""
    async with db.engine.connect() as conn:
        await conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        count = await conn.execute(
            text("SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'chained'")
        )
        return int(count.scalar_one())


async def test_a_long_chain_lets_the_server_report_its_statistics(
    postgres_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backend reports what its transactions changed only while idle outside a
    transaction; a writer that chains batch after batch forever would hide every row
    from autovacuum. After CHAIN_S the chain ends once, and the counts arrive while
    the writer goes on."""
    monkeypatch.setattr(session_module, "CHAIN_S", 0.3)
    db = Database(postgres_db_url, pool_size=2)
    chain = ChainedTransactions(db.engine)

    async def insert(conn: AsyncConnection) -> None:
        await conn.execute(text("INSERT INTO chained VALUES (1)"))

    try:
        async with db.engine.begin() as conn:
            await conn.execute(text("CREATE TABLE chained (n int)"))
        inserted = 0
        loop = asyncio.get_running_loop()
        start = loop.time()
        # Long enough for a break a second after the backend's first report, the
        # shortest interval PostgreSQL reports at.
        while loop.time() - start < 2.5:
            await chain.run(insert, keep=True)
            inserted += 1
            await asyncio.sleep(0.01)
        assert chain.kept
        reported = await _inserts_reported(db)
        assert 0 < reported <= inserted
    finally:
        await chain.end()
        await db.dispose()
