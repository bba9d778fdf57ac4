"""The audit log: who did what, from where, in which request. Append-only."""

from __future__ import annotations

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
        ts=utcnow(),
        user_id=user_id,
        action=action[:64],
        target=None if target is None else target[:128],
        details=dict(details or {}),
        ip=None if ip is None else ip[:64],
        request_id=None if request_id is None else request_id[:64],
    )
    session.add(entry)
    return entry


__all__ = ["record"]
