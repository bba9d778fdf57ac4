"""Request context (pure ASGI, so it adds no per-request task): a request id on every
request and log line, per-IP rate limiting of /api, metrics, a JSON access log, and the
last-resort 500 with the request id for exceptions nobody handled."""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from typing import Any

import orjson
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hft.api.errors import database_unavailable, error_json
from hft.api.logs import request_id_var
from hft.api.metrics import HTTP_LATENCY_BY, HTTP_REQUESTS_BY, RATE_LIMITED
from hft.api.ratelimit import RateLimiter, too_many_requests

log = logging.getLogger("hft.api")
access_log = logging.getLogger("hft.access")

REQUEST_ID_HEADER = "x-request-id"
# On every response: no MIME sniffing, no framing of the UI by other sites
# (clickjacking a trading screen), no URLs leaking to other origins.
_SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


# Request ids only need to be unique, not secret: a random prefix per process (so the
# workers of one deployment and its restarts never collide) and a counter, instead of
# a getrandom() system call per request.
_ID_PREFIX = os.urandom(8).hex()
_id_counter = itertools.count(1)


def _reseed() -> None:
    global _ID_PREFIX
    _ID_PREFIX = os.urandom(8).hex()


os.register_at_fork(after_in_child=_reseed)


def new_request_id() -> str:
    """A request id unique across processes: 16 random hex digits and a counter."""
    return f"{_ID_PREFIX}{next(_id_counter):016x}"


def client_ip(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _VALID_REQUEST_ID.match(text) else None
    return None


def route_template(scope: Scope) -> str:
    """The matched route's full path template (`/api/v1/orders/{order_id}`), for metric
    labels and logs; "unmatched" when no route matched (keeps label cardinality bounded).

    A route included with a prefix only knows its own path, so the prefix is recovered by
    rendering the route's path with the request's path parameters and taking what the
    concrete path has in front of it.
    """
    route = scope.get("route")
    template = getattr(route, "path", None)
    if not isinstance(template, str):
        return "unmatched"
    path: str = scope.get("path", "")
    params = scope.get("path_params") or {}
    rendered = template
    for name, value in params.items():
        placeholder = re.compile(r"\{" + re.escape(name) + r"(:[^}]*)?\}")
        rendered = placeholder.sub(str(value).replace("\\", "\\\\"), rendered)
    if path.endswith(rendered):
        return path[: len(path) - len(rendered)] + template
    return template


def _too_large(limit: int) -> str:
    return f"request body larger than {limit} bytes"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_json(send: Send, status: int, body: dict[str, Any], headers: list[Any]) -> None:
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: RateLimiter,
        access_log: bool = True,
        max_body_bytes: int = 1024 * 1024,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.access_log = access_log
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        rid = _incoming_request_id(scope) or new_request_id()
        scope.setdefault("state", {})["request_id"] = rid
        token = request_id_var.set(rid)
        try:
            if scope["type"] == "websocket":
                await self.app(scope, receive, send)
            else:
                await self._http(scope, receive, send, rid)
        finally:
            request_id_var.reset(token)

    async def _http(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        start = time.perf_counter()
        rid_header = (REQUEST_ID_HEADER.encode(), rid.encode())
        is_api = scope.get("path", "").startswith("/api/")
        method = scope.get("method", "GET")
        path: str = scope.get("path", "")
        ip = client_ip(scope)
        status = 500
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = int(message["status"])
                headers = [*message.get("headers", ()), rid_header, *_SECURITY_HEADERS]
                if is_api and not any(name == b"cache-control" for name, _ in headers):
                    # Account data must not linger in browser or proxy caches.
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        received = 0
        limit = self.max_body_bytes

        async def receive_limited() -> Message:
            # For bodies without Content-Length (chunked): stop reading past the limit.
            # FastAPI passes an HTTPException raised while reading the body through.
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise StarletteHTTPException(413, _too_large(limit))
            return message

        try:
            wait = self.limiter.rest_ip_wait(ip) if path.startswith("/api/") else 0.0
            length = _content_length(scope)
            if length is not None and length > limit:
                await _send_json(
                    send_wrapper, 413, error_json("body_too_large", _too_large(limit)), []
                )
            elif wait:
                RATE_LIMITED.labels("ip").inc()
                err = too_many_requests(wait, "requests from this address")
                headers = [(k.lower().encode(), v.encode()) for k, v in err.headers.items()]
                await _send_json(send_wrapper, 429, error_json(err.code, err.message), headers)
            else:
                await self.app(scope, receive_limited, send_wrapper)
        except StarletteHTTPException as exc:
            if started or exc.status_code != 413:
                raise
            await _send_json(send_wrapper, 413, error_json("body_too_large", exc.detail), [])
        except Exception as exc:
            if database_unavailable(exc):
                # An outage is not a bug: answer 503 so clients retry, and keep the log short.
                log.warning(
                    "database unavailable in %s %s: %s",
                    method,
                    path,
                    type(exc).__name__,
                    extra={"request_id": rid},
                )
                if not started:
                    await _send_json(
                        send_wrapper,
                        503,
                        error_json(
                            "database_unavailable",
                            f"the database is unavailable; retry shortly (request id {rid})",
                        ),
                        [(b"retry-after", b"1")],
                    )
                return
            log.exception("unhandled error in %s %s", method, path, extra={"request_id": rid})
            if not started:
                await _send_json(
                    send_wrapper,
                    500,
                    error_json("internal_error", f"internal error (request id {rid})"),
                    [],
                )
        finally:
            elapsed = time.perf_counter() - start
            label = route_template(scope)
            HTTP_REQUESTS_BY(method, label, str(status)).inc()
            HTTP_LATENCY_BY(method, label).observe(elapsed)
            if self.access_log:
                access_log.info(
                    "%s %s %d",
                    method,
                    path,
                    status,
                    extra={
                        "request_id": rid,
                        "method": method,
                        "path": path,
                        "route": label,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                        "client": ip,
                    },
                )


__all__ = ["REQUEST_ID_HEADER", "RequestContextMiddleware", "client_ip"]
