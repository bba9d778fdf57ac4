"""Serialized write transactions: concurrent read-modify-write never loses an update."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from sqlalchemy import select, text

import hft.db.session as session_module
from hft.db.migrate import upgrade
from hft.db.models.auth import Account, User
from hft.db.session import Database, lock_account, write_transaction
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
