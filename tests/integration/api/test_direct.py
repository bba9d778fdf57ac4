"""DirectRoute against FastAPI's own dependency solver: one endpoint, mounted both ways,
must answer every kind of request identically."""

from __future__ import annotations

import json
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI, Request, Response
from sqlalchemy import text, update
from tests.integration.api.test_api_keys import signed_headers

from hft.api.deps import ClientIp, CurrentUser, RequestId, SessionDep, SettingsDep
from hft.api.direct import DirectRoute
from hft.db.models.auth import User
from hft.db.session import Database, write_transaction


async def _probe(
    request: Request,
    thing_id: str,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    ip: ClientIp,
    request_id: RequestId,
) -> Response:
    one = (await session.execute(text("SELECT 1"))).scalar_one()
    body = await request.body()
    out = {
        "thing": thing_id,
        "user": user.id,
        "role": user.role,
        "db": one,
        "issuer": settings.jwt_issuer,
        "ip": ip,
        "has_request_id": bool(request_id),
        "auth": getattr(request.state, "auth_method", None),
        "body": body.decode(),
    }
    return Response(orjson.dumps(out), media_type="application/json")


@pytest.fixture
def probe_app(app: FastAPI) -> FastAPI:
    for path, route_class in (
        ("/api/v1/probe/solver", None),
        ("/api/v1/probe/direct", DirectRoute),
    ):
        app.router.add_api_route(
            path + "/{thing_id}", _probe, methods=["POST"], route_class_override=route_class
        )
    return app


def _same(a: httpx.Response, b: httpx.Response) -> None:
    assert a.status_code == b.status_code, (a.text, b.text)
    assert a.json() == b.json()
    for header in ("www-authenticate", "retry-after", "content-type"):
        assert a.headers.get(header) == b.headers.get(header)


async def _both(client: httpx.AsyncClient, **kw: Any) -> tuple[httpx.Response, httpx.Response]:
    headers = kw.pop("headers", {})
    sign = kw.pop("sign", None)
    out = []
    for kind in ("solver", "direct"):
        path = f"/api/v1/probe/{kind}/x7"
        h = dict(headers)
        if sign is not None:
            h |= signed_headers(sign["id"], sign["secret"], "POST", path, b'{"a":1}')
        out.append(await client.post(path, headers=h, content=b'{"a":1}', **kw))
    return out[0], out[1]


async def test_authenticated_requests_get_the_same_arguments(
    probe_app: FastAPI, client: httpx.AsyncClient, make_user
) -> None:
    alice = await make_user()
    solver, direct = await _both(client, headers=alice.headers_auth)
    _same(solver, direct)
    assert direct.json()["user"] == int(alice.user_id)
    assert direct.json()["thing"] == "x7"
    assert direct.json()["auth"] == "token"
    assert direct.json()["body"] == '{"a":1}'
    # A signed request (API key): the signature covers the body the endpoint reads again.
    key = (await alice.post("/api/v1/auth/api-keys", json={"name": "bot"})).json()
    solver, direct = await _both(client, sign=key)
    _same(solver, direct)
    assert direct.json()["auth"] == "api_key"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer not-a-token"},
        {"X-API-Key": "k_unknown"},
    ],
)
async def test_refusals_are_identical(
    probe_app: FastAPI, client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    solver, direct = await _both(client, headers=headers)
    assert direct.status_code == 401
    _same(solver, direct)


async def test_a_deactivated_user_is_refused_once_the_cache_forgets_them(
    probe_app: FastAPI, client: httpx.AsyncClient, make_user, db: Database
) -> None:
    bob = await make_user()
    assert (await _both(client, headers=bob.headers_auth))[1].status_code == 200
    async with db.session() as session, write_transaction(session):
        await session.execute(
            update(User).where(User.id == int(bob.user_id)).values(is_active=False)
        )
    probe_app.state.user_cache.clear()
    solver, direct = await _both(client, headers=bob.headers_auth)
    assert direct.status_code == 401
    _same(solver, direct)


async def test_the_per_user_rate_limit_applies(
    probe_app: FastAPI, client: httpx.AsyncClient, make_user, monkeypatch: pytest.MonkeyPatch
) -> None:
    carol = await make_user()
    monkeypatch.setattr(probe_app.state.rate_limiter, "check_rest_user", _always_limited)
    solver, direct = await _both(client, headers=carol.headers_auth)
    assert direct.status_code == 429
    _same(solver, direct)
    assert json.loads(direct.text)["error"]["code"] == "rate_limited"


def _always_limited(user_id: int) -> None:
    from hft.api.ratelimit import too_many_requests

    raise too_many_requests(3.0, f"requests of user {user_id}")
