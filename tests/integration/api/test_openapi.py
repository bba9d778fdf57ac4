"""The OpenAPI schema documents every error, and fuzzing the platform endpoints from it
never produces a server error or a response outside the error envelope."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings

from hft.api.app import create_app
from hft.api.settings import Settings

ERROR_REF = "#/components/schemas/ErrorResponse"


async def test_every_operation_documents_its_errors(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert "HTTPValidationError" not in str(schema)
    op_ids: list[str] = []
    for path, item in schema["paths"].items():
        for method, op in item.items():
            op_ids.append(op["operationId"])
            assert op.get("tags"), (method, path)
            responses = op["responses"]
            assert "500" in responses, (method, path)
            for status, response in responses.items():
                if status.startswith(("4", "5")) and not path.endswith("/health"):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref == ERROR_REF, (method, path, status)
            if op.get("parameters") or op.get("requestBody"):
                assert "422" in responses, (method, path)
            if op.get("requestBody"):
                assert {"400", "413"} <= set(responses), (method, path)
            if path.startswith("/api/v1/") and "security" in op:
                assert "401" in responses, (method, path)
    assert len(op_ids) == len(set(op_ids))
    security = schema["components"]["securitySchemes"]
    assert {"OAuth2PasswordBearer", "APIKeyHeader"} <= set(security)


def _free_socket() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, settings_factory: Callable[..., Settings]
) -> Iterator[dict[str, Any]]:
    """The platform app (SQLite) served by uvicorn in a thread, plus a logged-in user."""
    data = tmp_path_factory.mktemp("fuzz")
    cfg = settings_factory(f"sqlite+aiosqlite:///{data / 'hft.db'}", Path(data) / "data")
    cfg.rate_limits.enabled = False
    app = create_app(cfg, with_trading=False)
    sock = _free_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])))
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive()
            threading.Event().wait(0.02)
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        creds = {"username": "fuzzer", "password": "pw-fuzz-12345"}
        httpx.post(f"{base}/api/v1/auth/register", json=creds).raise_for_status()
        token = httpx.post(f"{base}/api/v1/auth/token", data=creds).json()["access_token"]
        yield {"base": base, "token": token}
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@pytest.fixture(scope="module")
def api_schema(served: dict[str, Any]) -> Any:
    return schemathesis.openapi.from_url(f"{served['base']}/openapi.json")


def _check(case: Any, served: dict[str, Any]) -> None:
    response = case.call(
        base_url=served["base"], headers={"Authorization": f"Bearer {served['token']}"}
    )
    path = case.operation.path
    assert response.status_code < 500 or path.endswith("/health"), (
        case.method,
        path,
        response.status_code,
        response.text[:300],
    )
    if response.status_code >= 400 and not path.endswith("/health"):
        body = response.json()
        assert set(body) == {"error"}, body
        assert isinstance(body["error"]["code"], str)
        assert isinstance(body["error"]["message"], str)


@pytest.mark.timeout(300)
def test_fuzz_platform_endpoints(api_schema: Any, served: dict[str, Any]) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def fuzz(case: Any) -> None:
            _check(case, served)

        fuzz()
