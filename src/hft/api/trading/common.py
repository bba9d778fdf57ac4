"""Dependencies and helpers shared by the trading routers."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import Depends, Request, Response
from pydantic import BaseModel

from hft.api.errors import ApiError, error_responses
from hft.api.trading.runtime import TradingRuntime
from hft.services.errors import ServiceError

_KIND_STATUS = {"invalid": 422, "forbidden": 403, "conflict": 409, "not_found": 404}


async def get_runtime(request: Request) -> TradingRuntime:
    runtime: TradingRuntime | None = getattr(request.app.state, "trading", None)
    if runtime is None:
        raise ApiError(503, "engine_unavailable", "the trading layer is not running")
    return runtime


RuntimeDep = Annotated[TradingRuntime, Depends(get_runtime)]


def api_error(exc: ServiceError) -> ApiError:
    """The HTTP form of a domain error."""
    return ApiError(_KIND_STATUS.get(exc.kind, 422), exc.code, exc.message, exc.field)


def engine_unavailable(message: str = "the matching engine is unavailable") -> ApiError:
    return ApiError(503, "engine_unavailable", message, headers={"Retry-After": "1"})


def body_doc(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` documenting a JSON body parsed by hand (see trading.body)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return error_responses(401, 429, *statuses)


def parse_id(value: str) -> int | None:
    """A numeric object id from the path, or None (treated as not found)."""
    if not value.isdigit() or len(value) > 19:
        return None
    number = int(value)
    return number if 0 < number < (1 << 63) else None


class FastJSON(Response):
    """A JSON response serialized with orjson (the handlers build plain dicts)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
