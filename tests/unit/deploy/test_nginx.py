"""deploy/nginx: the frontend's config, rendered as the image renders it and run by a real nginx."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from .conftest import DEPLOY, free_port

TEMPLATE = DEPLOY / "nginx" / "default.conf.template"


def test_template_substitutes_only_the_upstream() -> None:
    # The image runs envsubst with every defined environment variable: an upper-case
    # $NAME would be replaced by the container's environment, a lower-case one is nginx's.
    names = set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", TEMPLATE.read_text()))
    upper = {n for n in names if not n.islower()}
    assert upper == {"HFT_BACKEND_UPSTREAM"}


def _render(port: int, upstream: str, html: Path) -> str:
    text = TEMPLATE.read_text().replace("${HFT_BACKEND_UPSTREAM}", upstream)
    text = text.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    text = text.replace("listen [::]:8080;", "")
    return text.replace("root /usr/share/nginx/html;", f"root {html};")


class _Backend(BaseHTTPRequestHandler):
    """Echoes what nginx forwarded; answers a WebSocket upgrade with 101."""

    def do_GET(self) -> None:
        if self.headers.get("Upgrade", "").lower() == "websocket":
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("X-Seen-Connection", self.headers.get("Connection", ""))
            self.end_headers()
            return
        body = json.dumps({"path": self.path, "headers": dict(self.headers)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def frontend(tmp_path: Path) -> Iterator[int]:
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if nginx is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light to run this test)")
    backend = ThreadingHTTPServer(("127.0.0.1", 0), _Backend)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    html = tmp_path / "html"
    (html / "assets").mkdir(parents=True)
    (html / "index.html").write_text("<!doctype html><title>hft</title>")
    (html / "assets" / "app-1234.js").write_text("console.log(1)")
    port = free_port()
    (tmp_path / "site.conf").write_text(
        _render(port, f"127.0.0.1:{backend.server_address[1]}", html)
    )
    temp = "".join(
        f"{kind}_temp_path {tmp_path}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = "user root;\n" if os.geteuid() == 0 else ""
    (tmp_path / "nginx.conf").write_text(
        f"{user}worker_processes 1;\ndaemon off;\npid {tmp_path}/nginx.pid;\n"
        f"error_log stderr;\nevents {{}}\nhttp {{\naccess_log off;\n{temp}"
        f"include {tmp_path}/site.conf;\n}}\n"
    )
    args = [nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", "stderr"]
    check = subprocess.run([*args, "-t"], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(200):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            time.sleep(0.02)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
        backend.shutdown()
        backend.server_close()


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def _json(port: int, path: str) -> dict[str, object]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"X-Forwarded-For": "203.0.113.9"})
    response = conn.getresponse()
    assert response.status == 200
    data: dict[str, object] = json.loads(response.read())
    conn.close()
    return data


def test_proxies_the_api_and_health(frontend: int) -> None:
    seen = _json(frontend, "/api/v1/instruments?x=1")
    assert seen["path"] == "/api/v1/instruments?x=1"
    headers = seen["headers"]
    assert isinstance(headers, dict)
    assert headers["X-Forwarded-Proto"] == "http"
    assert headers["X-Forwarded-For"].startswith("203.0.113.9, 127.0.0.1")
    assert _json(frontend, "/health")["path"] == "/health"
    assert _json(frontend, "/openapi.json")["path"] == "/openapi.json"


def test_websocket_upgrade_reaches_the_backend(frontend: int) -> None:
    with socket.create_connection(("127.0.0.1", frontend), timeout=10) as sock:
        sock.sendall(
            b"GET /api/v1/ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        reply = sock.recv(4096).decode()
    assert reply.startswith("HTTP/1.1 101"), reply
    assert "x-seen-connection: upgrade" in reply.lower()


def test_serves_the_app_and_hides_metrics(frontend: int) -> None:
    index = _get(frontend, "/")
    assert index.status == 200
    assert index.getheader("X-Frame-Options") == "DENY"
    # Client-side routes fall back to index.html; a missing asset is a real 404.
    assert _get(frontend, "/portfolio").status == 200
    assert _get(frontend, "/assets/app-1234.js").getheader("Cache-Control") == "max-age=31536000"
    assert _get(frontend, "/assets/missing.js").status == 404
    assert _get(frontend, "/metrics").status == 404
    assert _get(frontend, "/healthz").status == 200
