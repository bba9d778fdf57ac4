"""Fixtures for the backend's integration tests (shared by the platform and trading tests).

* `db_url`: a fresh database per test, parametrized over SQLite (a temporary file) and
  PostgreSQL (on the server of HFT_TEST_POSTGRES_URL: a migrated database with empty
  tables, recycled between tests by TRUNCATE; the postgres variant is skipped when the
  variable is not set). Every database this session creates is dropped at its end.
* `settings`: backend settings for the test (data dir under tmp_path, cheap argon2,
  generous rate limits). Override `settings_overrides` in a test module to change them.
* `with_trading`: whether the app includes the trading layer (default False here; the
  trading tests override it with a fixture returning True, and provide the engine).
* `app`: the started application (its lifespan runs around the test).
* `client`: an httpx.AsyncClient talking to `app` in-process over ASGI (no network; fast).
* `live_server`: the same app served by a real uvicorn on a free loopback port in the
  test's event loop (for WebSocket clients and anything that needs real sockets); yields
  the base URL, e.g. "http://127.0.0.1:43127".
* `make_user(...)`: registers a user (admin on request) and returns a `UserClient`, an
  authenticated AsyncClient carrying `user_id`, `account_id`, `username`, `password`,
  `token` and `headers`.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import update

from hft.api.app import create_app
from hft.api.settings import Settings, load_settings
from hft.db.models.auth import User
from hft.db.session import Database, write_transaction
from hft.db.testing import TemporaryPostgres, postgres_test_url

REPO = Path(__file__).resolve().parents[3]
CONFIG = REPO / "config" / "default.yaml"
PASSWORD = "correct-horse-battery"

_names = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[TemporaryPostgres | None]:
    """This session's database factory on the PostgreSQL test server (None: no server)."""
    url = postgres_test_url()
    if url is None:
        yield None
        return
    pg = TemporaryPostgres(url, prefix="hft_api_test")
    try:
        yield pg
    finally:
        pg.close_sync()


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_server: TemporaryPostgres | None
) -> AsyncIterator[str]:
    """A fresh, empty database URL (the app migrates it when it starts)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'hft.db'}"
        return
    if postgres_server is None:
        pytest.skip("HFT_TEST_POSTGRES_URL is not set")
    url = await postgres_server.acquire()
    try:
        yield url
    finally:
        await postgres_server.release(url)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Extra keyword arguments for `settings` (override this fixture to change them)."""
    return {}


@pytest.fixture
def with_trading() -> bool:
    return False


def build_test_settings(db_url: str, data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a test: cheap password hashing and rate limits out of the way."""
    base: dict[str, Any] = {
        "database_url": db_url,
        "data_dir": data_dir,
        "web_dir": data_dir / "no-web-ui",
        "argon2_time_cost": 1,
        "argon2_memory_kib": 8192,
        "access_log": False,
        "rate_limits": {
            "rest_per_user": {"rate": 10_000, "burst": 10_000},
            "rest_per_ip": {"rate": 10_000, "burst": 10_000},
            "auth_per_ip": {"rate": 10_000, "burst": 10_000},
        },
    }
    base.update(overrides)
    return load_settings(CONFIG, **base)


@pytest.fixture(scope="session")
def settings_factory() -> Callable[..., Settings]:
    """`build_test_settings` as a fixture, for fixtures of wider scope than `settings`."""
    return build_test_settings


@pytest.fixture
def settings(db_url: str, tmp_path: Path, settings_overrides: dict[str, Any]) -> Settings:
    return build_test_settings(db_url, tmp_path / "data", **settings_overrides)


@pytest.fixture
async def app(settings: Settings, with_trading: bool) -> AsyncIterator[FastAPI]:
    application = create_app(settings, with_trading=with_trading)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def db(app: FastAPI) -> Database:
    """The started app's database (for checking what an endpoint stored)."""
    database: Database = app.state.db
    return database


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def live_server(app: FastAPI) -> AsyncIterator[str]:
    """Serve the (already started) app with uvicorn on a free port; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


class UserClient(httpx.AsyncClient):
    """An AsyncClient authenticated as one user (bearer token in every request)."""

    user_id: str
    account_id: str
    username: str
    password: str
    token: str

    @property
    def headers_auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


MakeUser = Callable[..., Awaitable[UserClient]]


async def register_and_login(
    client: httpx.AsyncClient, username: str, password: str
) -> tuple[dict[str, Any], str]:
    """POST /auth/register then /auth/token; returns (registered user, access token)."""
    r = await client.post(
        "/api/v1/auth/register", json={"username": username, "password": password}
    )
    assert r.status_code == 201, r.text
    r2 = await client.post("/api/v1/auth/token", data={"username": username, "password": password})
    assert r2.status_code == 200, r2.text
    return r.json(), r2.json()["access_token"]


@pytest.fixture
async def make_user(app: FastAPI, client: httpx.AsyncClient) -> AsyncIterator[MakeUser]:
    made: list[UserClient] = []

    async def make(
        username: str | None = None, password: str = PASSWORD, *, admin: bool = False
    ) -> UserClient:
        name = username or f"user{next(_names)}_{secrets.token_hex(3)}"
        registered, token = await register_and_login(client, name, password)
        if admin:
            db: Database = app.state.db
            async with db.session() as session, write_transaction(session):
                await session.execute(
                    update(User).where(User.id == int(registered["id"])).values(role="admin")
                )
        uc = UserClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://testserver",
            headers={"Authorization": f"Bearer {token}"},
        )
        me = (await uc.get("/api/v1/auth/me")).json()
        uc.user_id = registered["id"]
        uc.account_id = me["account_id"]
        uc.username = name
        uc.password = password
        uc.token = token
        made.append(uc)
        return uc

    yield make
    for uc in made:
        await uc.aclose()
