"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from hft import __version__
from hft.api.deps import UserCache
from hft.api.direct import ExactRoutes, exact_routes
from hft.api.errors import ErrorResponse, install_error_handlers
from hft.api.middleware import RequestContextMiddleware
from hft.api.ratelimit import RateLimiter
from hft.api.routers import admin, auth, ops, web
from hft.api.security import Passwords, ReplayCache
from hft.api.settings import Settings, get_settings
from hft.db.migrate import upgrade
from hft.db.session import Database
from hft.heap import API_YOUNG_THRESHOLD, freeze_heap

API_PREFIX = "/api/v1"

TradingLifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def _trading_layer() -> tuple[list[APIRouter], TradingLifespan, Any]:
    """The trading layer's routers, lifespan and engine probe (imported here, not at
    module level, so that `with_trading=False` never loads it)."""
    from hft.api.trading import ROUTERS, engine_status
    from hft.api.trading import lifespan as trading_lifespan

    return list(ROUTERS), trading_lifespan, engine_status


def _operation_id(route: APIRoute) -> str:
    return route.name


def _openapi_factory(app: FastAPI) -> Callable[[], dict[str, Any]]:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
        if "ErrorResponse" not in components:
            components["ErrorResponse"] = ErrorResponse.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            for name, sub in components["ErrorResponse"].pop("$defs", {}).items():
                components.setdefault(name, sub)
        # FastAPI's own validation shape never reaches clients (see errors.py); every
        # operation documents the envelope for 429 and 500, for 422 when it takes input,
        # 400 and 413 when it takes a body, and 401 when it needs credentials.
        for path_item in schema.get("paths", {}).values():
            for op in path_item.values():
                if not isinstance(op, dict) or "responses" not in op:
                    continue
                responses = op["responses"]
                for status, description in (
                    ("400", "Malformed body (not valid JSON or form data)"),
                    ("401", "Not authenticated: missing, invalid or expired credentials"),
                    ("413", "Request body too large"),
                    ("422", "Invalid input; `field` names the offending field"),
                    ("429", "Rate limited; retry after `Retry-After` seconds"),
                    ("500", "Unexpected server error (reported with the request id)"),
                ):
                    entry = responses.get(status)
                    if entry is None:
                        if (
                            status == "422"
                            and not op.get("parameters")
                            and not op.get("requestBody")
                        ):
                            continue
                        if status == "401" and not op.get("security"):
                            continue
                        if status in ("400", "413") and not op.get("requestBody"):
                            continue
                        entry = responses[status] = {"description": description}
                    entry["content"] = {"application/json": {"schema": error_ref}}
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        app.openapi_schema = schema
        return schema

    return openapi


def create_app(
    settings: Settings | None = None, *, with_trading: bool = True, server: bool = False
) -> FastAPI:
    """Build the backend application. Nothing touches the database or the engine until
    the app starts (its lifespan): then secrets are created if missing, migrations run
    (when `settings.run_migrations`), and the trading layer starts.

    `with_trading=False` leaves the trading layer out entirely (platform-only tests and
    tools); the engine then reports `unavailable` in /health. `server=True` (the
    `hft api` process, never tests) also freezes the heap once the app has started.
    """
    settings = settings or get_settings()
    trading_routers, trading_lifespan, engine_status = (
        _trading_layer() if with_trading else ([], None, None)
    )
    limiter = RateLimiter(settings.rate_limits)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.ensure_secrets()
        db = Database(settings.database_url, pool_size=settings.database_pool_size)
        try:
            if settings.run_migrations:
                await upgrade(db.engine)
            app.state.db = db
            if trading_lifespan is not None:
                async with trading_lifespan(app):
                    if server:
                        freeze_heap(API_YOUNG_THRESHOLD)
                    yield
            else:
                yield
        finally:
            await db.dispose()

    otel = settings.opentelemetry
    app = FastAPI(
        telemetry={"tracing": otel, "metrics": otel, "logs": otel},
        title="HFT broker API",
        version=__version__,
        description=(
            "The broker in front of the matching engine: accounts, orders, risk, "
            "portfolio and market data. Prices, quantities and money are decimal strings. "
            'Errors are `{"error": {"code", "message", "field"}}`.'
        ),
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
        openapi_tags=[
            {"name": "auth", "description": "Users, login tokens and API keys"},
            {"name": "admin", "description": "Administration (admin role)"},
            {"name": "operations", "description": "Health and metrics"},
        ],
    )
    app.state.settings = settings
    app.state.passwords = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib)
    app.state.rate_limiter = limiter
    app.state.replay_cache = ReplayCache(settings.signature_window_seconds)
    app.state.user_cache = UserCache(settings.auth_cache_ttl_s)
    app.state.engine_status = engine_status
    install_error_handlers(app)

    # Added first = innermost: CORS wraps the request context, so even a 429 sent by
    # the rate limiter carries CORS headers the browser can read. Innermost of all, the
    # fixed-path hot routes (order entry) skip the generic routing machinery; not with
    # OpenTelemetry on, whose request spans that machinery makes.
    if not otel:
        app.add_middleware(
            ExactRoutes,
            routes=exact_routes([(API_PREFIX, router) for router in trading_routers]),
        )
    app.add_middleware(
        RequestContextMiddleware,
        limiter=limiter,
        access_log=settings.access_log,
        max_body_bytes=settings.max_body_bytes,
    )
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_credentials=False,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=[
            "Authorization",
            "Content-Type",
            "X-Request-ID",
            "X-API-Key",
            "X-API-Timestamp",
            "X-API-Signature",
        ],
        expose_headers=["X-Request-ID", "Retry-After"],
    )

    # Trading first: a request is matched against the routes in order, at a few
    # microseconds each, and order entry is the hot path (no two paths overlap).
    for router in trading_routers:
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(ops.router)
    app.include_router(auth.router, prefix=API_PREFIX)
    app.include_router(admin.router, prefix=API_PREFIX)
    app.openapi = _openapi_factory(app)  # type: ignore[method-assign]
    # Last: its catch-all route must not shadow any API route.
    web.install_web(app, settings.web_dir)
    return app
