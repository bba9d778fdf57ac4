"""Strict JSON bodies for trading requests.

Prices and quantities must stay exact, so bodies are parsed here rather than by pydantic
(whose JSON parser turns numbers into floats first): a JSON number is kept as its source
text and validated like a decimal string; the literals NaN/Infinity are refused; unknown
fields and wrong types get specific error codes. The pydantic models in `schemas`
document the same bodies in the OpenAPI schema.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NoReturn

from fastapi import Request

from hft.api.errors import ApiError

MAX_BODY_BYTES = 16 * 1024


class JsonNumber(str):
    """A JSON number, kept as the exact text it was written as."""

    __slots__ = ()


def _refuse_constant(name: str) -> NoReturn:
    raise ApiError(422, "invalid_number", f"{name} is not allowed; numbers must be finite")


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Parse a request body that must be one JSON object.

    Raises ApiError: 400 malformed_json, 413 body_too_large, 422 invalid_body /
    invalid_number.
    """
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, "body_too_large", f"request body exceeds {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        raise ApiError(422, "missing_body", "a JSON object body is required")
    try:
        data = json.loads(
            raw,
            parse_float=JsonNumber,
            parse_int=JsonNumber,
            parse_constant=_refuse_constant,
        )
    except ApiError:
        raise
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "malformed_json", f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_body", "request body must be a JSON object")
    return data


async def read_object(request: Request) -> dict[str, Any]:
    """The request's JSON object body (see `parse_json_object`)."""
    return parse_json_object(await request.body())


def check_fields(body: Mapping[str, Any], allowed: Mapping[str, tuple[type, ...]]) -> None:
    """Refuse unknown fields and values of the wrong JSON type (null is allowed: it means
    "not given"). ``allowed`` maps a field to the Python types accepted (JsonNumber for
    numbers, str, bool, ...).

    Raises ApiError 422 unknown_field / invalid_<field>.
    """
    for key, value in body.items():
        types = allowed.get(key)
        if types is None:
            raise ApiError(422, "unknown_field", f"unknown field {key[:40]!r}", key[:40])
        if value is None:
            continue
        if isinstance(value, JsonNumber) and JsonNumber in types:
            continue
        if isinstance(value, bool):
            if bool in types:
                continue
        elif isinstance(value, str) and not isinstance(value, JsonNumber) and str in types:
            continue
        names = " or ".join(
            {"JsonNumber": "number", "str": "string", "bool": "boolean"}.get(t.__name__, "?")
            for t in types
        )
        raise ApiError(422, f"invalid_{key}", f"{key} must be a {names}", key)


def int_field(value: object, field: str, *, minimum: int = 0, maximum: int = 1 << 31) -> int:
    """An integer field given as a JSON number or a digit string.

    Raises ApiError 422 invalid_<field>.
    """
    text = str(value) if isinstance(value, str) else None
    if text is None or not text.isdigit() or len(text) > 12:
        raise ApiError(422, f"invalid_{field}", f"{field} must be a whole number", field)
    number = int(text)
    if not minimum <= number <= maximum:
        raise ApiError(
            422, f"invalid_{field}", f"{field} must be between {minimum} and {maximum}", field
        )
    return number
