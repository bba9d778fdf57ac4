"""Rate limits: per user, per IP and on login attempts; 429 with Retry-After."""

from __future__ import annotations

from typing import Any

import httpx
import pytest


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "rate_limits": {
            "rest_per_user": {"rate": 0.05, "burst": 5},
            "rest_per_ip": {"rate": 10_000, "burst": 10_000},
            "auth_per_ip": {"rate": 0.05, "burst": 4},
        }
    }


def _assert_429(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "rate_limited"
    retry = int(r.headers["retry-after"])
    # At 0.05 tokens/s the next one is at most 20 s away (slow so that a loaded
    # machine cannot refill a bucket between two requests of a test).
    assert 1 <= retry <= 20


async def test_per_user_limit(make_user) -> None:
    alice = await make_user()
    bob = await make_user()
    # make_user already spent one request of each user's budget (GET /auth/me).
    statuses = [(await alice.get("/api/v1/auth/me")).status_code for _ in range(6)]
    assert statuses[:4] == [200] * 4
    _assert_429(await alice.get("/api/v1/auth/me"))
    # Another user (same IP) is unaffected.
    assert (await bob.get("/api/v1/auth/me")).status_code == 200


async def test_login_attempts_are_limited_per_ip(client: httpx.AsyncClient) -> None:
    codes = []
    for i in range(6):
        r = await client.post("/api/v1/auth/token", data={"username": f"x{i}", "password": "nope"})
        codes.append(r.status_code)
    assert codes[:4] == [401] * 4
    assert codes[4] == 429
    r = await client.post(
        "/api/v1/auth/register", json={"username": "late", "password": "pw-9876543"}
    )
    _assert_429(r)


class TestPerIp:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"rate_limits": {"rest_per_ip": {"rate": 0.05, "burst": 3}}}

    async def test_per_ip_limit_covers_unauthenticated_api_requests(
        self, client: httpx.AsyncClient
    ) -> None:
        codes = [(await client.get("/api/v1/auth/me")).status_code for _ in range(3)]
        assert codes == [401, 401, 401]
        r = await client.get("/api/v1/auth/me")
        _assert_429(r)
        assert r.headers["x-request-id"]
        # Health and metrics are outside /api/v1 limits for probes.
        assert (await client.get("/metrics")).status_code == 200

    async def test_other_ip_is_not_limited(self, app, client: httpx.AsyncClient) -> None:
        for _ in range(4):
            await client.get("/api/v1/auth/me")
        other = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("10.1.2.3", 5555)),
            base_url="http://testserver",
        )
        async with other:
            assert (await other.get("/api/v1/auth/me")).status_code == 401


class TestExemptAndDisabled:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {
            "rate_limits": {
                "rest_per_ip": {"rate": 0.1, "burst": 1},
                "exempt_ips": ["127.0.0.1"],
            }
        }

    async def test_exempt_ip(self, client: httpx.AsyncClient) -> None:
        codes = {(await client.get("/api/v1/auth/me")).status_code for _ in range(5)}
        assert codes == {401}


class TestLoginFailuresPerUsername:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"rate_limits": {"login_failures_per_username": {"rate": 0.01, "burst": 3}}}

    async def test_guessing_one_users_password_is_slowed_down(
        self, make_user, app, client: httpx.AsyncClient
    ) -> None:
        victim = await make_user()
        other = await make_user()
        form = {"username": victim.username.upper(), "password": "guess"}
        codes = [(await client.post("/api/v1/auth/token", data=form)).status_code for _ in range(4)]
        assert codes == [401, 401, 401, 429]
        # Even from another address, and even with the right password, until it refills.
        elsewhere = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("10.9.9.9", 1234)),
            base_url="http://testserver",
        )
        async with elsewhere:
            right = {"username": victim.username, "password": victim.password}
            r = await elsewhere.post("/api/v1/auth/token", data=right)
            assert r.status_code == 429
            assert r.json()["error"]["code"] == "rate_limited"
        # Other users are not affected.
        ok = {"username": other.username, "password": other.password}
        assert (await client.post("/api/v1/auth/token", data=ok)).status_code == 200
