"""Container health probe for the engine (gRPC health) and the backend (HTTP /health).

Used by the images' HEALTHCHECK and by Kubernetes exec probes where a native probe does not
fit (an engine that demands client certificates). Exit status 0 = healthy, 1 = not healthy,
2 = bad usage, so Docker and Kubernetes read it directly. It imports only what the image
already ships (grpcio, grpcio-health-checking, the standard library).

    healthcheck.py grpc [HOST:PORT]   default 127.0.0.1:$HFT_ENGINE_PORT (50051)
    healthcheck.py http [URL]         default http://127.0.0.1:$HFT_API_PORT/health (8000)

For an engine serving TLS, set HFT_HEALTHCHECK_CA (PEM of the CA that signed the server
certificate), and for mTLS also HFT_HEALTHCHECK_CERT and HFT_HEALTHCHECK_KEY;
HFT_HEALTHCHECK_SERVER_NAME overrides the name checked against the server certificate.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

TIMEOUT_S = float(os.environ.get("HFT_HEALTHCHECK_TIMEOUT", "3"))


def _read(env: str) -> bytes | None:
    path = os.environ.get(env)
    return Path(path).read_bytes() if path else None


def check_grpc(address: str) -> tuple[bool, str]:
    """Ask the standard grpc.health.v1 service for the server's overall status ("")."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    ca = _read("HFT_HEALTHCHECK_CA")
    if ca is None:
        channel = grpc.insecure_channel(address)
    else:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=ca,
            private_key=_read("HFT_HEALTHCHECK_KEY"),
            certificate_chain=_read("HFT_HEALTHCHECK_CERT"),
        )
        name = os.environ.get("HFT_HEALTHCHECK_SERVER_NAME")
        options = [("grpc.ssl_target_name_override", name)] if name else []
        channel = grpc.secure_channel(address, credentials, options=options)
    try:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT_S)
    except grpc.RpcError as exc:
        return False, f"{address}: {exc.code().name}: {exc.details()}"
    finally:
        channel.close()
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return reply.status == health_pb2.HealthCheckResponse.SERVING, f"{address}: {status}"


def check_http(url: str) -> tuple[bool, str]:
    """GET the URL; healthy only on a 2xx answer (the backend answers 503 when degraded)."""
    if not url.startswith(("http://", "https://")):
        return False, f"{url}: not an http(s) URL"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:  # noqa: S310
            return 200 <= response.status < 300, f"{url}: HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{url}: HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return False, f"{url}: {exc}"


def main(argv: list[str]) -> int:
    """Run one check; print one line saying what was seen; return the exit status."""
    if not argv or argv[0] not in {"grpc", "http"} or len(argv) > 2:
        print("usage: healthcheck.py grpc [HOST:PORT] | http [URL]", file=sys.stderr)
        return 2
    if argv[0] == "grpc":
        port = os.environ.get("HFT_ENGINE_PORT", "50051")
        target = argv[1] if len(argv) > 1 else f"127.0.0.1:{port}"
        ok, text = check_grpc(target)
    else:
        port = os.environ.get("HFT_API_PORT", "8000")
        target = argv[1] if len(argv) > 1 else f"http://127.0.0.1:{port}/health"
        ok, text = check_http(target)
    print(("healthy " if ok else "unhealthy ") + text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
