"""A fresh empty database per test, on SQLite and (with HFT_TEST_POSTGRES_URL) PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from hft.db.testing import TemporaryPostgres, postgres_test_url


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[TemporaryPostgres | None]:
    url = postgres_test_url()
    if url is None:
        yield None
        return
    pg = TemporaryPostgres(url, prefix="hft_db_test")
    try:
        yield pg
    finally:
        pg.close_sync()


@asynccontextmanager
async def _postgres_database(server: TemporaryPostgres | None) -> AsyncIterator[str]:
    """A new empty PostgreSQL database, dropped afterwards; skips without a server."""
    if server is None:
        pytest.skip("HFT_TEST_POSTGRES_URL is not set")
    url = await server.create()
    try:
        yield url
    finally:
        await server.drop(url)


@pytest.fixture(params=["sqlite", "postgres"])
async def empty_db_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_server: TemporaryPostgres | None
) -> AsyncIterator[str]:
    """An empty database (no tables); dropped after the test on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        return
    async with _postgres_database(postgres_server) as url:
        yield url


@pytest.fixture
async def postgres_db_url(postgres_server: TemporaryPostgres | None) -> AsyncIterator[str]:
    """An empty PostgreSQL database, for behaviour only PostgreSQL has (its pool pings,
    server-side connection kills); the test is skipped without HFT_TEST_POSTGRES_URL."""
    async with _postgres_database(postgres_server) as url:
        yield url
