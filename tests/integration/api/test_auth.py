"""Registration, login, /auth/me and bearer-token validation."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import httpx
import jwt
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from hft.api.security import encode_token
from hft.api.settings import Settings
from hft.db.models.auth import Account, User
from hft.db.session import Database


async def test_register_creates_user_and_account_with_starting_cash(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    r = await client.post(
        "/api/v1/auth/register", json={"username": "Alice", "password": "s3cret-pass"}
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["username"] == "Alice"
    assert body["role"] == "trader"
    assert isinstance(body["id"], str)
    async with db.session() as session:
        user = (await session.execute(select(User).where(User.id == int(body["id"])))).scalar_one()
        account = (
            await session.execute(select(Account).where(Account.user_id == user.id))
        ).scalar_one()
    assert user.password_hash.startswith("$argon2id$")
    assert "s3cret-pass" not in user.password_hash
    assert account.cash == settings.starting_cash == Decimal("1000000")
    assert account.reserved_cash == 0
    assert account.trading_enabled is True


async def test_username_is_unique_ignoring_case(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/auth/register", json={"username": "bob", "password": "pw-12345"})
    assert r.status_code == 201
    r = await client.post("/api/v1/auth/register", json={"username": "BOB", "password": "pw-12345"})
    assert r.status_code == 409
    assert r.json() == {
        "error": {
            "code": "username_taken",
            "message": "this username is taken",
            "field": "username",
        }
    }


@pytest.mark.parametrize(
    ("username", "password", "code", "field"),
    [
        ("carol", "short", "password_too_short", "password"),
        ("carol", "xcarolx-long", "password_contains_username", "password"),
        ("carol", "aaaaaaaaaaaa", "password_too_simple", "password"),
        ("carol", "        ", "invalid_password", "password"),
        ("carol", "p" * 300, "password_too_long", "password"),
        ("ab", "pw-123456", "invalid_username", "username"),
        ("bad name", "pw-123456", "invalid_username", "username"),
        ("-dash", "pw-123456", "invalid_username", "username"),
        ("x" * 33, "pw-123456", "invalid_username", "username"),
        ("ünïcode", "pw-123456", "invalid_username", "username"),
    ],
)
async def test_register_rejects_bad_input_with_specific_code(
    client: httpx.AsyncClient, db: Database, username: str, password: str, code: str, field: str
) -> None:
    r = await client.post(
        "/api/v1/auth/register", json={"username": username, "password": password}
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == code
    assert r.json()["error"]["field"] == field
    async with db.session() as session:
        assert (await session.execute(select(User))).first() is None


async def test_login_and_me(client: httpx.AsyncClient, settings: Settings) -> None:
    await client.post("/api/v1/auth/register", json={"username": "dave", "password": "pw-secret-7"})
    r = await client.post(
        "/api/v1/auth/token", data={"username": "DAVE", "password": "pw-secret-7"}
    )
    assert r.status_code == 200, r.text
    token = r.json()
    assert token["token_type"] == "bearer"
    assert token["expires_in"] == settings.access_token_expire_seconds
    me = await client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["username"] == "dave"
    assert me.json()["auth_method"] == "token"
    assert me.json()["account_id"] is not None


@pytest.mark.parametrize(
    ("username", "password"), [("erin", "wrong-password"), ("nobody", "pw-secret-9")]
)
async def test_bad_credentials_are_401(
    client: httpx.AsyncClient, username: str, password: str
) -> None:
    await client.post("/api/v1/auth/register", json={"username": "erin", "password": "pw-secret-9"})
    r = await client.post("/api/v1/auth/token", data={"username": username, "password": password})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_credentials"
    assert r.headers["www-authenticate"] == "Bearer"


async def test_login_form_fields_are_required(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/auth/token", data={"username": "x"})
    assert r.status_code == 422
    assert r.json()["error"] == {
        "code": "missing_field",
        "message": "password is required",
        "field": "password",
    }


async def test_me_requires_authentication(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/auth/me")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "not_authenticated"
    r = await client.get("/api/v1/auth/me", headers={"Authorization": "Basic YTpi"})
    assert r.status_code == 401


def _forge(payload: dict[str, object], key: str, alg: str = "HS256") -> str:
    return jwt.encode(payload, key, algorithm=alg)


async def test_expired_tampered_and_foreign_tokens_are_rejected(
    client: httpx.AsyncClient, make_user, settings: Settings
) -> None:
    user = await make_user()
    key = settings.jwt_key()
    uid = int(user.user_id)
    now = int(time.time())
    valid = {"sub": str(uid), "iat": now, "exp": now + 60, "iss": "hft", "typ": "access"}
    header, payload, signature = user.token.split(".")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    bad_tokens = {
        "expired": encode_token(uid, key, expires_in=30, now=now - 120),
        "tampered signature": f"{header}.{payload}.{flipped}",
        "other key": _forge(valid, "not-the-server-key-0123456789abcdef"),
        "no exp": _forge({k: v for k, v in valid.items() if k != "exp"}, key),
        "wrong issuer": _forge({**valid, "iss": "evil"}, key),
        "not an access token": _forge({**valid, "typ": "refresh"}, key),
        "HS512": _forge(valid, key, "HS512"),
        "garbage": "not.a.token",
        "unknown user": encode_token(999_999, key, expires_in=60),
        "non-numeric sub": _forge({**valid, "sub": "admin"}, key),
    }
    for name, token in bad_tokens.items():
        r = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, name
        assert r.json()["error"]["code"] == "not_authenticated", name
    ok = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {user.token}"})
    assert ok.status_code == 200


async def test_alg_none_token_is_rejected(client: httpx.AsyncClient, make_user) -> None:
    user = await make_user()
    now = int(time.time())
    claims = {"sub": user.user_id, "iat": now, "exp": now + 600, "iss": "hft", "typ": "access"}
    unsigned = jwt.encode(claims, None, algorithm="none")
    for token in (unsigned, unsigned.rstrip(".") + "."):
        r = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401


async def test_deactivated_user_token_stops_working(
    client: httpx.AsyncClient, make_user, db: Database, app: FastAPI
) -> None:
    # Deactivated behind this process's back (as `hft user set-active` does): the
    # remembered user serves until its entry expires, then the token stops working.
    app.state.user_cache.ttl = 0.05
    user = await make_user()
    assert (await user.get("/api/v1/auth/me")).status_code == 200
    async with db.session() as session:
        row = await session.get(User, int(user.user_id))
        assert row is not None
        row.is_active = False
        await session.commit()
    await asyncio.sleep(0.1)
    assert (await user.get("/api/v1/auth/me")).status_code == 401
    r = await client.post(
        "/api/v1/auth/token", data={"username": user.username, "password": user.password}
    )
    assert r.status_code == 401


async def test_jwt_secret_is_generated_privately_and_reused(settings: Settings) -> None:
    path = settings.data_dir / "jwt_secret"
    key = settings.jwt_key()
    assert path.read_text().strip() == key
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(key) >= 40


async def test_change_password(make_user, client: httpx.AsyncClient) -> None:
    user = await make_user()
    url = "/api/v1/auth/password"
    r = await user.post(url, json={"current_password": "nope", "new_password": "pw-new-98765"})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "wrong_password"
    r = await user.post(url, json={"current_password": user.password, "new_password": "short"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "password_too_short"
    r = await user.post(
        url, json={"current_password": user.password, "new_password": "pw-new-98765"}
    )
    assert r.status_code == 204
    old = await client.post(
        "/api/v1/auth/token", data={"username": user.username, "password": user.password}
    )
    assert old.status_code == 401
    new = await client.post(
        "/api/v1/auth/token", data={"username": user.username, "password": "pw-new-98765"}
    )
    assert new.status_code == 200
