"""/health, /metrics, request ids, structured access logs, CORS and the web UI."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from hft.api.logs import JsonFormatter


def _engine(app: FastAPI, state: str | None) -> None:
    async def probe() -> str:
        if state is None:
            raise RuntimeError("engine client exploded")
        return state

    app.state.engine_status = probe


@pytest.mark.parametrize("path", ["/health", "/api/v1/health"])
async def test_health_ok_when_engine_and_database_answer(
    app: FastAPI, client: httpx.AsyncClient, path: str
) -> None:
    _engine(app, "ok")
    r = await client.get(path)
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "engine": "ok", "database": "ok", "version": "0.1.0"}


@pytest.mark.parametrize(("engine", "shown"), [("recovering", "recovering"), (None, "unavailable")])
async def test_health_degraded_when_engine_is_not_ok(
    app: FastAPI, client: httpx.AsyncClient, engine: str | None, shown: str
) -> None:
    _engine(app, engine)
    r = await client.get("/health")
    assert r.status_code == 503
    assert r.json()["status"] == "degraded"
    assert r.json()["engine"] == shown
    assert r.json()["database"] == "ok"


async def test_health_degraded_when_database_is_down(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    _engine(app, "ok")

    async def dead() -> bool:
        return False

    app.state.db.ping = dead
    r = await client.get("/health")
    assert r.status_code == 503
    assert r.json()["database"] == "unavailable"


async def test_metrics_count_requests_by_route_template(
    make_user, client: httpx.AsyncClient
) -> None:
    user = await make_user()
    await user.get("/api/v1/auth/api-keys")
    await user.delete("/api/v1/auth/api-keys/hk_nope")
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert (
        'hft_http_requests_total{method="DELETE",route="/api/v1/auth/api-keys/{key_id}",status="404"}'
        in text
    )
    assert (
        'hft_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/api/v1/auth/me"}'
        in text
    )
    # Unknown paths are folded into one label, so scanners cannot blow up cardinality.
    await client.get("/random/path/123")
    assert 'route="unmatched"' in (await client.get("/metrics")).text
    assert "/random/path/123" not in (await client.get("/metrics")).text


async def test_security_headers(make_user, client: httpx.AsyncClient) -> None:
    user = await make_user()
    r = await user.get("/api/v1/auth/me")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-store"
    r = await client.get("/")
    assert r.headers["x-frame-options"] == "DENY"


async def test_request_id_generated_or_propagated(client: httpx.AsyncClient) -> None:
    r = await client.get("/health")
    generated = r.headers["x-request-id"]
    assert len(generated) == 32
    r = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    # Invalid ids (too long, odd characters: log injection) are replaced.
    r = await client.get("/health", headers={"X-Request-ID": "x" * 65})
    assert r.headers["x-request-id"] != "x" * 65
    r = await client.get("/health", headers={"X-Request-ID": "a b\tc"})
    assert " " not in r.headers["x-request-id"]


class TestAccessLog:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"access_log": True}

    async def test_access_log_is_json_with_request_id(
        self, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        logger = logging.getLogger("hft.access")
        logger.propagate = True
        with caplog.at_level(logging.INFO, logger="hft.access"):
            r = await client.get("/api/v1/auth/me", headers={"X-Request-ID": "req-77"})
        assert r.status_code == 401
        (record,) = [rec for rec in caplog.records if rec.name == "hft.access"]
        line = json.loads(JsonFormatter().format(record))
        assert line["request_id"] == "req-77"
        assert line["status"] == 401
        assert line["route"] == "/api/v1/auth/me"
        assert line["method"] == "GET"
        assert line["duration_ms"] >= 0
        assert line["level"] == "info"


async def test_cors_preflight_for_the_dev_ui(client: httpx.AsyncClient) -> None:
    r = await client.options(
        "/api/v1/auth/token",
        headers={
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization",
        },
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "http://localhost:5173"
    r = await client.options(
        "/api/v1/auth/token",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in r.headers


async def test_root_without_web_ui_describes_the_service(client: httpx.AsyncClient) -> None:
    r = await client.get("/")
    assert r.status_code == 200
    assert r.json()["api"] == "/api/v1"
    assert "not built" in r.json()["web_ui"]


class TestWebUi:
    @pytest.fixture
    def settings_overrides(self, tmp_path: Path) -> dict[str, Any]:
        web = tmp_path / "dist"
        (web / "assets").mkdir(parents=True)
        (web / "index.html").write_text("<!doctype html><title>HFT</title>")
        (web / "assets" / "app-1234.js").write_text("console.log('hi')")
        (tmp_path / "secret.txt").write_text("outside")
        return {"web_dir": web}

    async def test_spa_serving(self, client: httpx.AsyncClient) -> None:
        r = await client.get("/")
        assert r.status_code == 200
        assert "<title>HFT</title>" in r.text
        r = await client.get("/assets/app-1234.js")
        assert r.text == "console.log('hi')"
        assert "immutable" in r.headers["cache-control"]
        # Client-side routes get index.html.
        r = await client.get("/portfolio/positions")
        assert r.status_code == 200
        assert "<title>HFT</title>" in r.text
        # Unknown API paths are JSON 404s, not the SPA.
        r = await client.get("/api/v1/nope")
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "not_found"
        # No escaping the web directory.
        r = await client.get("/..%2Fsecret.txt")
        assert "outside" not in r.text
        r = await client.get("/assets/..%2F..%2Fsecret.txt")
        assert "outside" not in r.text
        # API routes still win over the catch-all.
        assert (await client.get("/health")).headers["content-type"] == "application/json"


async def test_live_server_fixture_serves_over_a_real_socket(live_server: str) -> None:
    async with httpx.AsyncClient(base_url=live_server) as c:
        r = await c.get("/api/v1/health")
        assert r.json()["database"] == "ok"
        assert r.headers["x-request-id"]
