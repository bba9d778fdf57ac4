"""The audit log: who did what, from where, in which request. Append-only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hft.db.base import utcnow
from hft.db.models.auth import AuditEntry


def record(
    session: AsyncSession,
    action: str,
    *,
    user_id: int | None = None,
    target: str | None = None,
    details: dict[str, Any] | None = None,
    ip: str | None = None,
    request_id: str | None = None,
) -> AuditEntry:
    """Add an audit entry to `session`'s transaction (it commits with the change it
    describes, or not at all). `action` is dotted, e.g. `auth.login`, `order.cancel`;
    `details` must be JSON-serializable (decimals as strings)."""
    entry = AuditEntry(
        **audit_values(
            utcnow(),
            action,
            user_id=user_id,
            target=target,
            details=details,
            ip=ip,
            request_id=request_id,
        )
    )
    session.add(entry)
    return entry


def audit_values(
    ts: datetime,
    action: str,
    *,
    user_id: int | None = None,
    target: str | None = None,
    details: dict[str, Any] | None = None,
    ip: str | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """The column values of an audit entry, for bulk inserts (same rules as `record`)."""
    return {
        "ts": ts,
        "user_id": user_id,
        "action": action[:64],
        "target": None if target is None else target[:128],
        "details": dict(details or {}),
        "ip": None if ip is None else ip[:64],
        "request_id": None if request_id is None else request_id[:64],
    }


__all__ = ["audit_values", "record"]
