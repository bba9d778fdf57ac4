"""Operations endpoints: /health (engine + database) and /metrics (Prometheus)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from hft import __version__
from hft.api.errors import error_responses
from hft.api.metrics import render_metrics
from hft.api.schemas import Health
from hft.db.session import Database

log = logging.getLogger("hft.api")

router = APIRouter(tags=["operations"])

# How long a health probe may wait for a dependency before calling it unavailable.
_PROBE_TIMEOUT_S = 2.0


async def _engine_state(request: Request) -> str:
    probe: Callable[[], Awaitable[str]] | None = getattr(request.app.state, "engine_status", None)
    if probe is None:
        return "unavailable"
    try:
        return str(await asyncio.wait_for(probe(), _PROBE_TIMEOUT_S))
    except Exception:
        log.warning("engine status probe failed", exc_info=True)
        return "unavailable"


async def _health(request: Request) -> JSONResponse:
    db: Database | None = getattr(request.app.state, "db", None)
    try:
        db_ok = db is not None and await asyncio.wait_for(db.ping(), _PROBE_TIMEOUT_S)
    except TimeoutError:
        db_ok = False
    engine = await _engine_state(request)
    ok = db_ok and engine == "ok"
    body = Health(
        status="ok" if ok else "degraded",
        engine=engine,
        database="ok" if db_ok else "unavailable",
        version=__version__,
    )
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


_HEALTH_DOC = {
    "response_model": Health,
    "responses": {
        503: {"model": Health, "description": "degraded: the engine or the database is down"}
    },
}


@router.get("/health", summary="Liveness and dependencies", **_HEALTH_DOC)  # type: ignore[arg-type]
async def health(request: Request) -> JSONResponse:
    """`status` is `ok` when the engine and the database answer; otherwise `degraded`
    with HTTP 503 (reads may still work)."""
    return await _health(request)


@router.get(
    "/api/v1/health",
    summary="Liveness and dependencies (same as /health)",
    **_HEALTH_DOC,  # type: ignore[arg-type]
)
async def health_v1(request: Request) -> JSONResponse:
    return await _health(request)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
        **error_responses(500),
    },
)
async def metrics() -> Response:
    body, content_type = render_metrics()
    return Response(body, media_type=content_type)
