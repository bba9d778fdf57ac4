"""deploy/healthcheck.py against a real gRPC health service and a real HTTP server."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from .conftest import DEPLOY, free_port

SCRIPT = DEPLOY / "healthcheck.py"


def _probe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
        env={"HFT_HEALTHCHECK_TIMEOUT": "2", **(env or {})},
    )


@pytest.fixture
def health_server() -> Iterator[tuple[str, health.HealthServicer]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        server.stop(None)


def test_grpc_serving_is_healthy(health_server: tuple[str, health.HealthServicer]) -> None:
    address, servicer = health_server
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    result = _probe("grpc", address)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SERVING" in result.stdout


def test_grpc_not_serving_is_unhealthy(health_server: tuple[str, health.HealthServicer]) -> None:
    # The engine reports NOT_SERVING while it replays its journal.
    address, servicer = health_server
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    result = _probe("grpc", address)
    assert result.returncode == 1
    assert "NOT_SERVING" in result.stdout


def test_grpc_default_address_uses_the_engine_port(
    health_server: tuple[str, health.HealthServicer],
) -> None:
    address, servicer = health_server
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    result = _probe("grpc", env={"HFT_ENGINE_PORT": address.rsplit(":", 1)[1]})
    assert result.returncode == 0, result.stdout + result.stderr


def test_grpc_nothing_listening_is_unhealthy() -> None:
    result = _probe("grpc", f"127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "UNAVAILABLE" in result.stdout


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = type(self).status if self.path == "/health" else 404
        body = b'{"status": "ok"}' if code == 200 else b'{"status": "degraded"}'
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def http_server() -> Iterator[tuple[int, type[_Health]]]:
    handler = type("Handler", (_Health,), {"status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


def test_http_ok_and_degraded(http_server: tuple[int, type[_Health]]) -> None:
    port, handler = http_server
    assert _probe("http", env={"HFT_API_PORT": str(port)}).returncode == 0
    handler.status = 503
    result = _probe("http", f"http://127.0.0.1:{port}/health")
    assert result.returncode == 1
    assert "HTTP 503" in result.stdout


def test_http_down_and_bad_usage() -> None:
    assert _probe("http", f"http://127.0.0.1:{free_port()}/health").returncode == 1
    assert _probe("http", "file:///etc/passwd").returncode == 1
    assert _probe().returncode == 2
    assert _probe("tcp", "x").returncode == 2
