"""The application's routing: every documented operation is reached by its own route (no
earlier route shadows it), whatever order the routers are included in."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.responses import PlainTextResponse

from hft.api.app import create_app
from hft.api.direct import DirectRoute, ExactRoutes
from hft.api.settings import Settings


def _leaf_routes(routes: list[Any]) -> list[Any]:
    out: list[Any] = []
    for r in routes:
        inner = getattr(r, "original_router", None)
        out += _leaf_routes(inner.routes) if inner is not None else [r]
    return out


def _answer_with_name(route: APIRoute, monkeypatch: pytest.MonkeyPatch) -> None:
    async def handle(scope: Any, receive: Any, send: Any) -> None:
        await PlainTextResponse(route.name)(scope, receive, send)

    # The routers are module-level objects every app shares: restored after the test.
    monkeypatch.setattr(route, "handle", handle)
    if isinstance(route, DirectRoute):
        # Fixed-path direct routes are served ahead of the router (ExactRoutes).
        async def direct(request: Any) -> PlainTextResponse:
            return PlainTextResponse(route.name)

        monkeypatch.setattr(route, "direct_handler", direct)


async def test_every_operation_is_reached_by_its_own_route(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=tmp_path, access_log=False)
    settings.rate_limits.enabled = False
    app = create_app(settings)
    for route in _leaf_routes(app.routes):
        if isinstance(route, APIRoute):
            _answer_with_name(route, monkeypatch)
    operations = [
        (method, path, op["operationId"])
        for path, item in app.openapi()["paths"].items()
        for method, op in item.items()
    ]
    assert len(operations) > 30
    # No lifespan: the routes answer without a database.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for method, path, operation_id in operations:
            sample = re.sub(r"\{[^}]+\}", "x1", path)
            resp = await client.request(method.upper(), sample)
            assert (resp.status_code, resp.text) == (200, operation_id), (method, path)


@pytest.mark.parametrize("telemetry", [False, True])
def test_order_entry_skips_the_router_unless_telemetry_is_on(
    tmp_path: Path, telemetry: bool
) -> None:
    # The router makes OpenTelemetry's request spans: with telemetry on, order entry
    # goes through it like every other route.
    app = create_app(Settings(data_dir=tmp_path, opentelemetry=telemetry))
    classes = [m.cls for m in app.user_middleware]
    assert (ExactRoutes in classes) is (not telemetry)
