"""Routes whose arguments are resolved by a fixed plan instead of FastAPI's solver.

FastAPI's generic dependency solver costs about as much CPU per request as placing an
order does (it walks the dependency tree, builds a session for every request, checks
scopes, and collects errors). The hot trading routes only take the request, the user,
the runtime, the client address, the request id, the session and string path
parameters; `DirectRoute` works out once, when the route is built, which of those the
endpoint wants and then supplies them directly:

* `CurrentUser` through `deps.authenticate`: the same checks, errors and rate limit; a
  bearer token of a cached user needs no database session;
* `SessionDep` as one session for the request (shared with authentication);
* any dependency that takes nothing but the request (`RuntimeDep`, `ClientIp`,
  `RequestId`, ...) by calling it with the request.

The route is declared exactly like any other (its OpenAPI entry, security schemes and
error responses are FastAPI's), and exceptions go through the app's exception handlers
as usual. An endpoint with anything else in its signature (query, header or body
parameters, other dependencies) is refused when the route is built, so no parameter can
silently go unvalidated.

`ExactRoutes` goes one step further for the fixed-path ones (order entry): it serves
them ahead of the routing stack, by a dictionary lookup.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from hft.api.deps import authenticate, get_current_user, get_session
from hft.db.session import Database

# (name, kind, payload): "path" -> path parameter name; "user", "session"; "call" ->
# a dependency called with the request.
_Step = tuple[str, str, Any]
_Endpoint = TypeVar("_Endpoint", bound=Callable[..., Any])


def _plan(dependant: Dependant, endpoint: Callable[..., Any]) -> tuple[list[_Step], bool]:
    name = getattr(endpoint, "__name__", repr(endpoint))
    unsupported = (
        dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or dependant.body_params
    )
    if unsupported:
        raise TypeError(f"DirectRoute: {name} takes query, header, cookie or body parameters")
    steps: list[_Step] = []
    if dependant.request_param_name:
        steps.append((dependant.request_param_name, "request", None))
    for param in dependant.path_params:
        if param.field_info.annotation is not str:
            raise TypeError(f"DirectRoute: path parameter {param.name} of {name} must be str")
        steps.append((param.name, "path", param.alias or param.name))
    needs_session = False
    for dep in dependant.dependencies:
        if dep.name is None:
            raise TypeError(f"DirectRoute: {name} has an unnamed dependency")
        if dep.call is get_current_user:
            steps.append((dep.name, "user", None))
        elif dep.call is get_session:
            steps.append((dep.name, "session", None))
            needs_session = True
        elif _request_only(dep):
            steps.append((dep.name, "call", dep.call))
        else:
            raise TypeError(f"DirectRoute: {name} depends on {dep.call!r}, not resolvable here")
    hints = typing.get_type_hints(endpoint)
    returned = hints.get("return")
    if not (isinstance(returned, type) and issubclass(returned, Response)):
        raise TypeError(f"DirectRoute: {name} must be annotated to return a Response")
    return steps, needs_session


def _request_only(dep: Dependant) -> bool:
    return (
        dep.call is not None
        and dep.request_param_name is not None
        and not dep.dependencies
        and not (
            dep.path_params
            or dep.query_params
            or dep.header_params
            or dep.cookie_params
            or dep.body_params
        )
    )


class DirectRoute(APIRoute):
    """An APIRoute whose endpoint arguments are resolved by a plan made at build time.

    `direct_handler` is the request handler `ExactRoutes` calls (made once here: FastAPI
    builds further handlers, through `get_route_handler`, for each router inclusion).
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.direct_handler = self.get_route_handler()

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint: Callable[..., Awaitable[Response]] = self.endpoint
        steps, needs_session = _plan(self.dependant, endpoint)

        async def call(request: Request, session: AsyncSession | None) -> Response:
            kwargs: dict[str, Any] = {}
            for name, kind, payload in steps:
                if kind == "request":
                    kwargs[name] = request
                elif kind == "path":
                    kwargs[name] = request.path_params[payload]
                elif kind == "user":
                    kwargs[name] = await authenticate(request, session)
                elif kind == "session":
                    kwargs[name] = session
                else:
                    kwargs[name] = await payload(request)
            return await endpoint(**kwargs)

        async def handler(request: Request) -> Response:
            if not needs_session:
                return await call(request, None)
            db: Database = request.app.state.db
            async with db.session() as session:
                return await call(request, session)

        return handler


def direct_route(
    router: APIRouter, path: str, *, methods: list[str], **options: Any
) -> Callable[[_Endpoint], _Endpoint]:
    """Decorator like `router.post(path, ...)`, for a `DirectRoute`."""

    def decorator(endpoint: _Endpoint) -> _Endpoint:
        router.add_api_route(
            path, endpoint, methods=methods, route_class_override=DirectRoute, **options
        )
        return endpoint

    return decorator


ExceptionHandler = Callable[[Request, Any], Response | Awaitable[Response]]


class ExactRoutes:
    """ASGI middleware answering the requests of fixed-path `DirectRoute`s itself.

    Such a request otherwise crosses about ten layers of generic machinery between the
    application's middleware and the route (exception middleware, exit stack, body
    limit, telemetry, the router's and the included routers' matching, the route's
    request/response wrapper), each a coroutine call on the way in and on the way out:
    on the order entry path, more CPU than the order's own checks. Here one dictionary
    lookup on (method, path) finds the route; the route runs exactly as the router
    would run it (`scope["route"]` set for metrics and logs), and an exception is
    answered by the application's own exception handlers, looked up by class as
    Starlette does. Anything else, and any exception without a handler, goes on as
    before. Placed innermost, so the application's middleware (request context, CORS)
    wraps both paths alike.
    """

    def __init__(self, app: ASGIApp, routes: dict[tuple[str, str], DirectRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = (
            self.routes.get((scope["method"], scope["path"])) if scope["type"] == "http" else None
        )
        if route is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = route
        scope["path_params"] = {}
        scope["endpoint"] = route.endpoint
        request = Request(scope, receive, send)
        try:
            response = await route.direct_handler(request)
        except Exception as exc:
            handler = _exception_handler(scope["app"], exc)
            if handler is None:
                raise
            answer = handler(request, exc)
            response = await answer if inspect.isawaitable(answer) else answer
        await response(scope, receive, send)


def _exception_handler(app: FastAPI, exc: Exception) -> ExceptionHandler | None:
    """The handler Starlette's exception middleware would pick: by status code for an
    HTTPException, else by the nearest class."""
    handlers = app.exception_handlers
    if isinstance(exc, StarletteHTTPException) and exc.status_code in handlers:
        return handlers[exc.status_code]
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None


def exact_routes(routers: list[tuple[str, APIRouter]]) -> dict[tuple[str, str], DirectRoute]:
    """The `DirectRoute`s without path parameters of (prefix, router) pairs, by (method,
    full path). Each runs as declared on its router: for routers included with a prefix
    and nothing else (no include-time dependencies), as the trading routers are."""
    out: dict[tuple[str, str], DirectRoute] = {}
    for prefix, router in routers:
        for route in router.routes:
            if isinstance(route, DirectRoute) and not route.param_convertors:
                for method in route.methods or ():
                    out[(method, prefix + route.path)] = route
    return out


__all__ = ["DirectRoute", "ExactRoutes", "direct_route", "exact_routes"]
