"""The trading layer of the backend: orders, portfolio, market data, risk, WebSocket.

The platform layer (app factory, auth, database) mounts ``ROUTERS`` under ``/api/v1``,
enters ``lifespan(app)`` around the application's life and reports ``engine_status()``
in ``/health``. The routers are imported on first access: the platform's settings
import ``hft.api.trading.config`` from this package, and the routers import the
platform's dependencies, so an eager import here would be circular.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import APIRouter

    ROUTERS: list[APIRouter]


def _routers() -> list[APIRouter]:
    from hft.api.trading import market, orders, portfolio, risk, ws

    return [orders.router, portfolio.router, market.router, risk.router, ws.router]


def __getattr__(name: str) -> Any:
    if name == "ROUTERS":
        return _routers()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """Start the engine client and the background tasks; stop them on exit."""
    from hft.api.trading.runtime import start_runtime, stop_runtime

    runtime = await start_runtime(app)
    try:
        yield
    finally:
        await stop_runtime(runtime)


async def engine_status() -> str:
    """``"ok"``, ``"unavailable"`` or ``"recovering"``: the engine as this backend sees it."""
    from hft.api.trading.runtime import current_runtime

    runtime = current_runtime()
    if runtime is None:
        return "unavailable"
    return runtime.engine_status()


__all__ = ["ROUTERS", "engine_status", "lifespan"]
