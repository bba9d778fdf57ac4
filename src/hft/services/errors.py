"""Errors raised by the domain logic; the web layer maps each kind to an HTTP status."""

from __future__ import annotations


class ServiceError(Exception):
    """A request the domain refuses, with a stable machine-readable ``code``."""

    kind = "invalid"

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class InvalidInputError(ServiceError):
    """Malformed or out-of-range input (HTTP 422)."""

    kind = "invalid"


class RiskRejectedError(ServiceError):
    """Well-formed, but refused by pre-trade risk (HTTP 403)."""

    kind = "forbidden"


class ConflictError(ServiceError):
    """The request conflicts with the current state (HTTP 409)."""

    kind = "conflict"


class NotFoundError(ServiceError):
    """No such object visible to the caller (HTTP 404)."""

    kind = "not_found"
