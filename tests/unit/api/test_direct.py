"""DirectRoute refuses, when the route is built, any endpoint it could not resolve
exactly as FastAPI would."""

from __future__ import annotations

from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import REGISTRY
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from hft.api.deps import CurrentUser
from hft.api.direct import DirectRoute, ExactRoutes, direct_route, exact_routes
from hft.api.errors import ApiError, install_error_handlers
from hft.api.middleware import RequestContextMiddleware
from hft.api.ratelimit import RateLimiter
from hft.api.settings import RateLimitSettings


async def _with_query(user: CurrentUser, limit: Annotated[int, Query()] = 10) -> Response:
    return Response()


async def _int_path(thing_id: int, user: CurrentUser) -> Response:
    return Response()


async def _needs_two(request: Request, other: str) -> str:
    return other


async def _nested(user: CurrentUser, x: Annotated[str, Depends(_needs_two)]) -> Response:
    return Response()


async def _returns_dict(user: CurrentUser) -> dict[str, int]:
    return {}


@pytest.mark.parametrize(
    ("path", "endpoint", "why"),
    [
        ("/q", _with_query, "query"),
        ("/p/{thing_id}", _int_path, "must be str"),
        ("/n", _nested, "not resolvable"),
        ("/r", _returns_dict, "return a Response"),
    ],
)
def test_unresolvable_endpoints_are_refused(path: str, endpoint: object, why: str) -> None:
    router = APIRouter()
    with pytest.raises(TypeError, match=why):
        router.add_api_route(path, endpoint, methods=["GET"], route_class_override=DirectRoute)  # type: ignore[arg-type]


def test_direct_route_registers_a_direct_route() -> None:
    router = APIRouter()

    @direct_route(router, "/ok/{thing_id}", methods=["POST"], status_code=201)
    async def ok(thing_id: str, user: CurrentUser) -> Response:
        return Response(thing_id)

    (route,) = router.routes
    assert isinstance(route, DirectRoute)
    assert route.methods == {"POST"}
    assert route.status_code == 201


# -- ExactRoutes: the fixed-path fast path answers exactly as the routed path does --------


class _Reached:
    """Innermost middleware: records the paths that reach the generic routing stack."""

    def __init__(self, app: ASGIApp, seen: list[str]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append(scope["path"])
        await self.app(scope, receive, send)


async def _thing(request: Request) -> Response:
    what = request.query_params.get("do")
    if what == "api-error":
        raise ApiError(403, "kill_switch", "trading is disabled", headers={"Retry-After": "3"})
    if what == "http-error":
        raise StarletteHTTPException(409, "taken")
    if what == "crash":
        raise RuntimeError("boom")
    body = await request.body()
    return Response(b'{"got":' + body + b"}", status_code=201, media_type="application/json")


def _exact_app(seen: list[str]) -> FastAPI:
    """The backend's middleware around one endpoint mounted twice: at a path the fast
    path serves and at one only the router serves."""
    app = FastAPI()
    install_error_handlers(app)
    fast, routed = APIRouter(), APIRouter()
    fast.add_api_route("/thing", _thing, methods=["POST"], route_class_override=DirectRoute)
    routed.add_api_route("/routed", _thing, methods=["POST"], route_class_override=DirectRoute)
    app.include_router(fast, prefix="/api/v1")
    app.include_router(routed, prefix="/api/v1")
    app.add_middleware(_Reached, seen=seen)
    app.add_middleware(ExactRoutes, routes=exact_routes([("/api/v1", fast)]))
    app.add_middleware(
        RequestContextMiddleware,
        limiter=RateLimiter(RateLimitSettings(enabled=False)),
        access_log=False,
    )
    app.add_middleware(CORSMiddleware, allow_origins=["http://ui.example"])
    return app


def test_exact_routes_lists_fixed_path_direct_routes_only() -> None:
    router = APIRouter()
    router.add_api_route("/a", _thing, methods=["POST"], route_class_override=DirectRoute)
    router.add_api_route("/a/{x}", _with_path, methods=["GET"], route_class_override=DirectRoute)
    router.add_api_route("/b", _thing, methods=["GET"])
    routes = exact_routes([("/api/v1", router)])
    assert set(routes) == {("POST", "/api/v1/a")}


async def _with_path(x: str, request: Request) -> Response:
    return Response(x)


@pytest.mark.parametrize("do", ["ok", "api-error", "http-error", "crash"])
async def test_the_fast_path_answers_as_the_router_does(do: str) -> None:
    seen: list[str] = []
    app = _exact_app(seen)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    answers = {}
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for path in ("/api/v1/thing", "/api/v1/routed"):
            answers[path] = await client.post(
                path,
                params={"do": do},
                content=b'{"a":1}',
                headers={"Origin": "http://ui.example", "X-Request-ID": f"rid-{do}"},
            )
    fast, routed = answers["/api/v1/thing"], answers["/api/v1/routed"]
    assert seen == ["/api/v1/routed"]  # the fast path never reached the router
    assert fast.status_code == routed.status_code
    assert fast.content == routed.content
    for header in (
        "content-type",
        "retry-after",
        "x-request-id",
        "cache-control",
        "access-control-allow-origin",
    ):
        assert fast.headers.get(header) == routed.headers.get(header), header
    assert fast.headers["x-request-id"] == f"rid-{do}"
    expected = {"ok": 201, "api-error": 403, "http-error": 409, "crash": 500}[do]
    assert fast.status_code == expected


async def test_a_status_code_handler_is_used_as_the_router_would() -> None:
    seen: list[str] = []
    app = _exact_app(seen)

    async def teapot(request: Request, exc: Exception) -> Response:
        return Response(b"by status", status_code=418)

    app.add_exception_handler(409, teapot)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for path in ("/api/v1/thing", "/api/v1/routed"):
            answer = await client.post(path, params={"do": "http-error"})
            assert (answer.status_code, answer.content) == (418, b"by status")


async def test_the_fast_path_labels_metrics_with_the_route_template() -> None:
    app = _exact_app([])
    labels = {"method": "POST", "route": "/api/v1/thing", "status": "201"}
    before = REGISTRY.get_sample_value("hft_http_requests_total", labels) or 0.0
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.post("/api/v1/thing", content=b"1")).status_code == 201
        # Another method on the same path is not a fast-path route: the router answers.
        assert (await client.get("/api/v1/thing")).status_code == 405
    assert REGISTRY.get_sample_value("hft_http_requests_total", labels) == before + 1
