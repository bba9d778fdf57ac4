"""API keys: lifecycle, HMAC-signed requests, and every way a signature can be wrong."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from sqlalchemy import select

from hft.api.security import sign_request
from hft.db.models.auth import ApiKey
from hft.db.session import Database


def signed_headers(
    key_id: str,
    secret: str,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    ts_ms: int | None = None,
) -> dict[str, str]:
    ts = str(int(time.time() * 1000) if ts_ms is None else ts_ms)
    return {
        "X-API-Key": key_id,
        "X-API-Timestamp": ts,
        "X-API-Signature": sign_request(secret, ts, method, path, body),
    }


async def _new_key(user, name: str = "bot") -> dict[str, str]:
    r = await user.post("/api/v1/auth/api-keys", json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()


async def test_create_list_revoke(make_user, client: httpx.AsyncClient, db: Database) -> None:
    user = await make_user()
    created = await _new_key(user, "market maker")
    assert created["id"].startswith("hk_")
    assert len(created["secret"]) == 64
    listed = (await user.get("/api/v1/auth/api-keys")).json()
    assert [k["id"] for k in listed] == [created["id"]]
    assert "secret" not in listed[0]
    async with db.session() as session:
        row = (
            await session.execute(select(ApiKey).where(ApiKey.key_id == created["id"]))
        ).scalar_one()
    # The database holds no copy of the secret, not even a plain hash of it.
    stored = json.dumps([str(getattr(row, c.key)) for c in ApiKey.__table__.columns])
    assert created["secret"] not in stored

    h = signed_headers(created["id"], created["secret"], "GET", "/api/v1/auth/me")
    me = await client.get("/api/v1/auth/me", headers=h)
    assert me.status_code == 200, me.text
    assert me.json()["auth_method"] == "api_key"
    assert me.json()["id"] == user.user_id

    r = await user.delete(f"/api/v1/auth/api-keys/{created['id']}")
    assert r.status_code == 200
    assert r.json()["revoked_at"] is not None
    again = await user.delete(f"/api/v1/auth/api-keys/{created['id']}")
    assert again.status_code == 200
    assert again.json()["revoked_at"] == r.json()["revoked_at"]

    h = signed_headers(created["id"], created["secret"], "GET", "/api/v1/auth/me")
    assert (await client.get("/api/v1/auth/me", headers=h)).status_code == 401


async def test_other_users_key_is_not_found(make_user) -> None:
    alice = await make_user()
    bob = await make_user()
    key = await _new_key(alice)
    r = await bob.delete(f"/api/v1/auth/api-keys/{key['id']}")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "api_key_not_found"
    assert (await bob.get("/api/v1/auth/api-keys")).json() == []


async def test_signed_post_with_body_and_query(make_user, client: httpx.AsyncClient) -> None:
    user = await make_user()
    key = await _new_key(user)
    body = json.dumps({"name": "second"}).encode()
    h = signed_headers(key["id"], key["secret"], "POST", "/api/v1/auth/api-keys", body)
    # Keys cannot manage keys, but the signature itself must have been accepted (403, not 401).
    r = await client.post(
        "/api/v1/auth/api-keys", content=body, headers={**h, "Content-Type": "application/json"}
    )
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden"
    path = "/api/v1/auth/me?x=1&y=two"
    h = signed_headers(key["id"], key["secret"], "GET", path)
    assert (await client.get(path, headers=h)).status_code == 200


@pytest.mark.parametrize(
    "attack",
    [
        "tampered_body",
        "tampered_path",
        "tampered_query",
        "tampered_method",
        "wrong_secret",
        "replayed",
        "stale",
        "future",
        "bad_timestamp",
        "unknown_key",
        "missing_signature",
        "uppercase_signature_replay",
    ],
)
async def test_bad_signatures_are_401(make_user, client: httpx.AsyncClient, attack: str) -> None:
    user = await make_user()
    key = await _new_key(user)
    kid, secret = key["id"], key["secret"]
    path = "/api/v1/auth/me"
    now = int(time.time() * 1000)
    h = signed_headers(kid, secret, "GET", path)
    target, method, content = path, "GET", b""
    if attack == "tampered_body":
        h = signed_headers(kid, secret, "GET", path, b'{"a":1}')
    elif attack == "tampered_path":
        target = "/api/v1/auth/api-keys"
    elif attack == "tampered_query":
        h = signed_headers(kid, secret, "GET", path + "?a=1")
        target = path + "?a=2"
    elif attack == "tampered_method":
        h = signed_headers(kid, secret, "POST", path)
    elif attack == "wrong_secret":
        h = signed_headers(kid, "0" * 64, "GET", path)
    elif attack in ("replayed", "uppercase_signature_replay"):
        first = await client.get(path, headers=h)
        assert first.status_code == 200
        if attack == "uppercase_signature_replay":
            h = {**h, "X-API-Signature": h["X-API-Signature"].upper()}
    elif attack == "stale":
        h = signed_headers(kid, secret, "GET", path, ts_ms=now - 6_000)
    elif attack == "future":
        h = signed_headers(kid, secret, "GET", path, ts_ms=now + 6_000)
    elif attack == "bad_timestamp":
        h = {**h, "X-API-Timestamp": "12.5"}
    elif attack == "unknown_key":
        h = signed_headers("hk_" + "0" * 24, secret, "GET", path)
    elif attack == "missing_signature":
        del h["X-API-Signature"]
    r = await client.request(method, target, headers=h, content=content)
    assert r.status_code == 401, (attack, r.text)
    assert r.json()["error"]["code"] == "not_authenticated"


async def test_key_management_needs_a_login_token(make_user, client: httpx.AsyncClient) -> None:
    user = await make_user()
    key = await _new_key(user)
    path = f"/api/v1/auth/api-keys/{key['id']}"
    h = signed_headers(key["id"], key["secret"], "DELETE", path)
    r = await client.delete(path, headers=h)
    assert r.status_code == 403
    assert (await user.get("/api/v1/auth/api-keys")).json()[0]["revoked_at"] is None


async def test_api_key_name_is_validated(make_user) -> None:
    user = await make_user()
    for body, code in (
        ({"name": ""}, "invalid_name"),
        ({"name": "x" * 65}, "invalid_name"),
        ({"name": "   "}, "invalid_name"),
        ({}, "missing_field"),
        ({"name": "ok", "scope": "all"}, "unknown_field"),
    ):
        r = await user.post("/api/v1/auth/api-keys", json=body)
        assert r.status_code == 422, body
        assert r.json()["error"]["code"] == code, body
    assert (await user.get("/api/v1/auth/api-keys")).json() == []


async def test_active_key_limit(make_user) -> None:
    user = await make_user()
    for i in range(20):
        await _new_key(user, f"k{i}")
    r = await user.post("/api/v1/auth/api-keys", json={"name": "one too many"})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "too_many_api_keys"


async def test_changed_master_key_invalidates_keys(
    make_user, client: httpx.AsyncClient, app
) -> None:
    user = await make_user()
    key = await _new_key(user)
    app.state.settings._api_key_master = b"a-different-master-key"
    h = signed_headers(key["id"], key["secret"], "GET", "/api/v1/auth/me")
    assert (await client.get("/api/v1/auth/me", headers=h)).status_code == 401
