"""Mapping of validation errors to the error envelope."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from hft.api.errors import InputError, error_responses, validation_error_body


class Order(BaseModel):
    model_config = ConfigDict(extra="forbid")
    quantity: int
    price: str | None = None

    @field_validator("price")
    @classmethod
    def _price(cls, v: str | None) -> str | None:
        if v == "off":
            raise InputError("price_not_on_tick", "price must be a multiple of 0.01")
        if v == "plain":
            raise ValueError("plain failure")
        return v


def _errors(data: Any) -> list[Any]:
    with pytest.raises(ValidationError) as info:
        Order.model_validate(data)
    return [{**e, "loc": ("body", *e["loc"])} for e in info.value.errors()]


@pytest.mark.parametrize(
    ("data", "code", "field"),
    [
        ({}, "missing_field", "quantity"),
        ({"quantity": "x"}, "invalid_quantity", "quantity"),
        ({"quantity": 1, "extra": 1}, "unknown_field", "extra"),
        ({"quantity": 1, "price": "off"}, "price_not_on_tick", "price"),
        ({"quantity": 1, "price": "plain"}, "invalid_price", "price"),
        ({"quantity": 1, "price": 5}, "invalid_price", "price"),
    ],
)
def test_codes_and_fields(data: dict[str, Any], code: str, field: str) -> None:
    status, body = validation_error_body(_errors(data))
    assert status == 422
    assert body["error"]["code"] == code
    assert body["error"]["field"] == field
    assert body["error"]["message"]


def test_custom_code_message_is_kept() -> None:
    _, body = validation_error_body(_errors({"quantity": 1, "price": "off"}))
    assert body["error"]["message"] == "price must be a multiple of 0.01"
    _, body = validation_error_body(_errors({"quantity": 1, "price": "plain"}))
    assert body["error"]["message"] == "price: plain failure"


def test_nested_and_list_locations() -> None:
    _, body = validation_error_body(
        [{"type": "int_parsing", "loc": ("body", "legs", 0, "quantity"), "msg": "bad"}]
    )
    assert body["error"]["field"] == "legs.0.quantity"
    assert body["error"]["code"] == "invalid_quantity"
    _, body = validation_error_body(
        [{"type": "int_parsing", "loc": ("query", "limit"), "msg": "x"}]
    )
    assert body["error"] == {"code": "invalid_limit", "message": "limit: x", "field": "limit"}


def test_json_and_empty() -> None:
    status, body = validation_error_body(
        [
            {
                "type": "json_invalid",
                "loc": ("body", 7),
                "msg": "JSON decode error",
                "ctx": {"error": "x"},
            }
        ]
    )
    assert status == 400
    assert body["error"]["code"] == "malformed_json"
    assert validation_error_body([])[0] == 422


def test_openapi_error_responses() -> None:
    r = error_responses(401, 429)
    assert set(r) == {401, 429}
    assert "Retry-After" in r[429]["headers"]
