"""Bad input always gets the error envelope with a specific code, never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

REGISTER = "/api/v1/auth/register"
TOKEN = "/api/v1/auth/token"


@pytest.mark.parametrize(
    ("content", "status", "code", "field"),
    [
        (b'{"username": "a', 400, "malformed_json", None),
        (b"", 422, "missing_body", None),
        (b"[1, 2]", 422, "invalid_body", None),
        (b'"just a string"', 422, "invalid_body", None),
        (b"null", 422, "invalid_body", None),
        (b'{"username": "abc"}', 422, "missing_field", "password"),
        (
            b'{"username": "abc", "password": "pw-1234567", "role": "admin"}',
            422,
            "unknown_field",
            "role",
        ),
        (b'{"username": 123, "password": "pw-1234567"}', 422, "invalid_username", "username"),
        (b'{"username": ["a"], "password": "pw-1234567"}', 422, "invalid_username", "username"),
        (b'{"username": "abc", "password": NaN}', 422, "invalid_password", "password"),
        (b'{"username": "abc", "password": 1e999}', 422, "invalid_password", "password"),
        (b'{"username": "abc", "password": null}', 422, "invalid_password", "password"),
        (
            b'{"username": "abc\\u0000", "password": "pw-1234567"}',
            422,
            "invalid_username",
            "username",
        ),
        (
            b'{"username": "abc", "password": "pw\\u0000-1234567"}',
            422,
            "invalid_password",
            "password",
        ),
        (b"\xff\xfe\x00", 400, "malformed_body", None),
    ],
)
async def test_malformed_bodies(
    client: httpx.AsyncClient, content: bytes, status: int, code: str, field: str | None
) -> None:
    r = await client.post(REGISTER, content=content, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "field"}
    assert body["error"]["code"] == code
    assert body["error"]["field"] == field
    assert body["error"]["message"]


async def test_wrong_content_type(client: httpx.AsyncClient) -> None:
    r = await client.post(REGISTER, content=b"username=a", headers={"Content-Type": "text/plain"})
    assert r.status_code in (400, 415, 422)
    assert "error" in r.json()


async def test_path_and_query_type_errors(make_user) -> None:
    admin = await make_user(admin=True)
    r = await admin.patch("/api/v1/admin/users/abc", json={"role": "admin"})
    assert r.status_code == 422
    assert r.json()["error"] == {
        "code": "invalid_user_id",
        "message": r.json()["error"]["message"],
        "field": "user_id",
    }
    r = await admin.get("/api/v1/admin/audit", params={"limit": "lots"})
    assert r.json()["error"]["code"] == "invalid_limit"
    r = await admin.get("/api/v1/admin/audit", params={"limit": "99999999999999999999999"})
    assert r.status_code == 422


class TestBodyLimitSetting:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, int]:
        return {"max_body_bytes": 2048}

    async def test_configured_limit(self, client: httpx.AsyncClient) -> None:
        body = b'{"username": "abc", "password": "' + b"x" * 3000 + b'"}'
        r = await client.post(REGISTER, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 413
        assert "2048" in r.json()["error"]["message"]


async def test_oversized_body_is_413(client: httpx.AsyncClient) -> None:
    big = b'{"username": "abc", "password": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    r = await client.post(REGISTER, content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "body_too_large"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b"x" * 65536

    # Without Content-Length (chunked), reading stops at the limit too.
    for path, ctype in (
        (REGISTER, "application/json"),
        (TOKEN, "application/x-www-form-urlencoded"),
    ):
        r = await client.post(path, content=chunks(), headers={"Content-Type": ctype})
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "body_too_large"


async def test_unknown_route_and_method(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/does-not-exist")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    r = await client.put("/api/v1/auth/register", json={})
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "method_not_allowed"


async def test_unexpected_exception_is_a_logged_500_with_request_id(
    app: FastAPI, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    @app.get("/api/v1/test-explode")
    async def explode() -> None:
        raise RuntimeError("kaboom")

    import logging

    logging.getLogger("hft").propagate = True
    with caplog.at_level(logging.ERROR, logger="hft.api"):
        r = await client.get("/api/v1/test-explode", headers={"X-Request-ID": "boom-1"})
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "internal_error"
    assert "boom-1" in r.json()["error"]["message"]
    assert "kaboom" not in r.text
    assert r.headers["x-request-id"] == "boom-1"
    assert any("kaboom" in (rec.exc_text or str(rec.exc_info)) for rec in caplog.records)
