"""Request and response bodies of the platform endpoints (auth, API keys, health)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hft.api.errors import InputError

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,31}$")
PASSWORD_MAX = 256


def check_password_chars(value: str) -> str:
    """Raises InputError for an overlong password or one containing NUL."""
    if len(value) > PASSWORD_MAX:
        raise InputError("password_too_long", f"password longer than {PASSWORD_MAX}")
    if "\x00" in value:
        raise InputError("invalid_password", "password contains a NUL character")
    return value


class StrictBody(BaseModel):
    """Input bodies refuse unknown fields (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid")


class UserCreate(StrictBody):
    username: str = Field(
        description="3-32 characters: letters, digits, `_`, `.`, `-`; starts with a letter "
        "or digit; unique ignoring case",
        examples=["alice"],
    )
    password: str = Field(description="at least the configured minimum length (8)")

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        if not USERNAME_RE.match(value):
            raise InputError(
                "invalid_username",
                "username must be 3-32 letters, digits, '_', '.' or '-', "
                "starting with a letter or digit",
            )
        return value

    @field_validator("password")
    @classmethod
    def _password(cls, value: str) -> str:
        return check_password_chars(value)


class PasswordChange(StrictBody):
    current_password: str = Field(max_length=PASSWORD_MAX)
    new_password: str = Field(description="at least the configured minimum length (8)")

    @field_validator("new_password")
    @classmethod
    def _new_password(cls, value: str) -> str:
        return check_password_chars(value)


class UserPublic(BaseModel):
    id: str
    username: str
    role: Literal["trader", "admin"]
    created_at: datetime


class Me(UserPublic):
    account_id: str | None = Field(description="the engine account id of the user's account")
    auth_method: Literal["token", "api_key"]


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (the OAuth2 token type)
    expires_in: int = Field(description="seconds until the token expires")


class ApiKeyCreate(StrictBody):
    name: str = Field(min_length=1, max_length=64, description="a label for the key")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = value.strip()
        if not value or any(ord(c) < 32 for c in value):
            raise InputError("invalid_name", "name must be 1-64 printable characters")
        return value


class ApiKeyPublic(BaseModel):
    id: str = Field(description="the public key id, sent as X-API-Key")
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    secret: str = Field(description="the signing secret; shown only in this response")


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    engine: str = Field(description="ok, unavailable or recovering")
    database: Literal["ok", "unavailable"]
    version: str


class AuditEntryPublic(BaseModel):
    id: str
    ts: datetime
    user_id: str | None
    action: str
    target: str | None
    details: dict[str, object]
    ip: str | None
    request_id: str | None
