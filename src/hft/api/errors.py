"""The error envelope `{"error": {"code", "message", "field"}}` and its handlers.

Raise `ApiError` anywhere in a request. Request validation errors become a 422 (400 for
a body that is not JSON) naming the offending field; a pydantic validator that raises
`InputError(code, message)` chooses the code itself (e.g. `price_not_on_tick`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("hft.api")


class ErrorBody(BaseModel):
    code: str = Field(description="stable machine-readable code, e.g. `invalid_quantity`")
    message: str = Field(description="human-readable explanation")
    field: str | None = Field(default=None, description="the offending input field, if any")


class ErrorResponse(BaseModel):
    """Every non-2xx response has this body."""

    error: ErrorBody


class ApiError(Exception):
    """An error response: HTTP `status`, a stable `code`, a `message`, optionally the input
    `field` at fault and extra response `headers` (e.g. Retry-After)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = dict(headers or {})


class InputError(ValueError):
    """Raise from a pydantic validator to choose the error code of a bad field."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def error_json(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_json(code, message, field), status_code=status, headers=headers)


_DESCRIPTIONS = {
    400: "Malformed request (e.g. the body is not valid JSON)",
    401: "Not authenticated: missing, invalid or expired credentials",
    403: "Authenticated but not allowed",
    404: "Not found (also for other users' objects)",
    409: "Conflict with the current state",
    422: "Invalid input; `field` names the offending field",
    429: "Rate limited; retry after the `Retry-After` header's seconds",
    503: "A dependency (engine or database) is unavailable",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting the error envelope for `statuses`."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {
            "model": ErrorResponse,
            "description": _DESCRIPTIONS.get(status, HTTPStatus(status).phrase),
        }
        if status == 429:
            entry["headers"] = {
                "Retry-After": {
                    "description": "seconds to wait before retrying",
                    "schema": {"type": "integer"},
                }
            }
        out[status] = entry
    return out


_CODE_SAFE = re.compile(r"[^a-z0-9_]+")


def _field_name(loc: Sequence[int | str]) -> str | None:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:]
    # Pydantic appends the failing member of a union or a function-validator tag; a
    # client wants the field it sent, so keep only the leading run of field names.
    kept: list[str] = []
    for part in parts:
        if "[" in part or "(" in part or part.startswith("function-"):
            break
        kept.append(part)
    return ".".join(kept) or None


def validation_error_body(errors: Iterable[Mapping[str, Any]]) -> tuple[int, dict[str, Any]]:
    """(status, envelope) for the first of pydantic/FastAPI's validation `errors`."""
    err = next(iter(errors), None)
    if err is None:
        return 422, error_json("invalid_request", "invalid request")
    kind = str(err.get("type", ""))
    loc = err.get("loc", ())
    field = _field_name(loc)
    msg = str(err.get("msg", "invalid value"))
    ctx = err.get("ctx") or {}
    cause = ctx.get("error") if isinstance(ctx, Mapping) else None
    if isinstance(cause, InputError):
        return 422, error_json(cause.code, cause.message, field)
    if kind == "json_invalid":
        detail = ctx.get("error") if isinstance(ctx, Mapping) else None
        text = f"request body is not valid JSON: {detail}" if detail else "body is not valid JSON"
        return 400, error_json("malformed_json", text)
    if kind == "missing":
        if field is None:
            return 422, error_json("missing_body", "a request body is required")
        return 422, error_json("missing_field", f"{field} is required", field)
    if kind == "extra_forbidden":
        return 422, error_json("unknown_field", f"unknown field {field!r}", field)
    if field is None:
        return 422, error_json("invalid_body", f"invalid request body: {msg}")
    leaf = _CODE_SAFE.sub("_", field.rsplit(".", 1)[-1].lower()).strip("_") or "value"
    if leaf.isdigit():
        leaf = "value"
    message = msg.removeprefix("Value error, ")
    return 422, error_json(f"invalid_{leaf}", f"{field}: {message}", field)


def _status_code(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


_HTTP_CODES = {
    400: "malformed_body",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


# PostgreSQL SQLSTATEs that mean "not reachable now" rather than "bad request":
# connection exceptions (08), insufficient resources (53), operator intervention such as
# an admin shutdown (57), a database that is gone (3D000) or not accepting connections (55000).
_OUTAGE_SQLSTATE_CLASSES = ("08", "53", "57")
_OUTAGE_SQLSTATES = frozenset({"3D000", "55000"})


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) means the database cannot be reached or is locked.

    Connection refusals, dropped or invalidated connections, pool time-outs and SQLite's
    "database is locked" all count; programming errors (bad SQL, constraint violations)
    do not.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sa_exc.DBAPIError) and (
            current.connection_invalidated
            or isinstance(current, sa_exc.OperationalError | sa_exc.InterfaceError)
        ):
            return True
        if isinstance(current, sa_exc.TimeoutError | ConnectionError):
            return True
        sqlstate = getattr(current, "sqlstate", None)
        if isinstance(sqlstate, str) and (
            sqlstate.startswith(_OUTAGE_SQLSTATE_CLASSES) or sqlstate in _OUTAGE_SQLSTATES
        ):
            return True
        if type(current).__module__.startswith("asyncpg") and type(current).__name__ in {
            "ConnectionDoesNotExistError",
            "InternalClientError",
        }:
            return True
        current = current.__cause__ or current.__context__
    return False


def install_error_handlers(app: FastAPI) -> None:
    """Render ApiError, validation errors and HTTP exceptions as the error envelope.

    Unexpected exceptions are turned into a 500 with the request id by the request-id
    middleware (hft.api.middleware), where the id is known.
    """

    async def on_api_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.code, exc.message, exc.field, exc.headers)

    async def on_validation(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        status, body = validation_error_body(exc.errors())
        return JSONResponse(body, status_code=status)

    async def on_http(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code) or _status_code(exc.status_code)
        detail = exc.detail if isinstance(exc.detail, str) else _status_code(exc.status_code)
        return error_response(exc.status_code, code, detail, None, exc.headers)

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)


__all__ = [
    "ApiError",
    "ErrorBody",
    "ErrorResponse",
    "InputError",
    "database_unavailable",
    "error_json",
    "error_response",
    "error_responses",
    "install_error_handlers",
    "validation_error_body",
]
