"""DirectRoute refuses, when the route is built, any endpoint it could not resolve
exactly as FastAPI would."""

from __future__ import annotations

from typing import Annotated

import pytest
from fastapi import APIRouter, Depends, Query, Request, Response

from hft.api.deps import CurrentUser
from hft.api.direct import DirectRoute, direct_route


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
