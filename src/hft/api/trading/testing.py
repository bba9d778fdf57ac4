"""Pytest fixtures and helpers for the trading layer's integration tests.

Import the fixtures into a test module that uses the platform's fixtures
(tests/integration/api/conftest.py):

    from hft.api.trading.testing import (
        engine_fixture, settings_overrides_fixture, trading_overrides_fixture,
        with_trading_fixture,
    )

`engine` is a real `hft engine` subprocess per test (its own data directory and port),
so every test starts from an empty book and an empty execution stream.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hft.engine.testing import EngineProcess


def free_port() -> int:
    """A currently free loopback TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


TRADING_TEST_SETTINGS: dict[str, Any] = {
    "reconcile_grace_s": 2.0,
    "reconcile_interval_s": 0.5,
    "engine_timeout_s": 2.0,
    "ws_heartbeat_s": 1.0,
}


@pytest.fixture(name="with_trading")
def with_trading_fixture() -> bool:
    return True


@pytest.fixture(name="trading_overrides")
def trading_overrides_fixture() -> dict[str, Any]:
    """Extra `settings.trading` values for a test module (override to change)."""
    return {}


@pytest.fixture(name="engine")
def engine_fixture(tmp_path: Path) -> Iterator[EngineProcess]:
    # A fixed port, so a restarted engine (fault tests) is found at the same address.
    with EngineProcess(tmp_path / "engine", fsync="none", port=free_port()) as proc:
        yield proc


@pytest.fixture(name="settings_overrides")
def settings_overrides_fixture(
    engine: EngineProcess, trading_overrides: dict[str, Any]
) -> dict[str, Any]:
    return {
        "engine_address": engine.address,
        "trading": {**TRADING_TEST_SETTINGS, **trading_overrides},
    }


async def place(
    client: httpx.AsyncClient,
    symbol: str = "AAPL",
    side: str = "buy",
    quantity: str = "1",
    price: str | None = "190.00",
    *,
    type: str = "limit",
    expect: int | None = 201,
    **extra: Any,
) -> dict[str, Any]:
    """POST /orders and return the body (asserting the status when `expect` is set)."""
    body: dict[str, Any] = {"symbol": symbol, "side": side, "type": type, "quantity": quantity}
    if price is not None and type == "limit":
        body["price"] = price
    body.update(extra)
    r = await client.post("/api/v1/orders", json=body)
    if expect is not None:
        assert r.status_code == expect, r.text
    data: dict[str, Any] = r.json()
    return data


async def trader_with_max_position(
    make_user: Callable[..., Awaitable[Any]], max_position: str
) -> Any:
    """A new trader (its client, from the `make_user` fixture) whose position limit an
    admin set to `max_position`."""
    admin, trader = await make_user(admin=True), await make_user()
    r = await admin.put(
        "/api/v1/risk/limits", json={"user_id": trader.user_id, "max_position": max_position}
    )
    assert r.status_code == 200, r.text
    return trader


__all__ = [
    "TRADING_TEST_SETTINGS",
    "engine_fixture",
    "free_port",
    "place",
    "settings_overrides_fixture",
    "trader_with_max_position",
    "trading_overrides_fixture",
    "with_trading_fixture",
]
