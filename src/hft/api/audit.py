"""The audit log: who did what, from where, in which request. Append-only."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from typing import Any, TypedDict, Unpack, cast

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession

from hft.db.base import utcnow
from hft.db.models.auth import AuditEntry
from hft.db.session import Database, write_transaction


class AuditFields(TypedDict, total=False):
    """Who did it, to what, from where (all optional)."""

    user_id: int | None
    target: str | None
    details: dict[str, Any] | None
    ip: str | None
    request_id: str | None


def record(session: AsyncSession, action: str, **fields: Unpack[AuditFields]) -> AuditEntry:
    """Add an audit entry to `session`'s transaction (it commits with the change it
    describes, or not at all). `action` is dotted, e.g. `auth.login`, `order.cancel`;
    `details` must be JSON-serializable (decimals as strings)."""
    entry = AuditEntry(**audit_values(utcnow(), action, **fields))
    session.add(entry)
    return entry


def audit_values(ts: datetime, action: str, **fields: Unpack[AuditFields]) -> dict[str, Any]:
    """The column values of an audit entry, for bulk inserts (same rules as `record`)."""
    target, ip, rid = fields.get("target"), fields.get("ip"), fields.get("request_id")
    return {
        "ts": ts,
        "user_id": fields.get("user_id"),
        "action": action[:64],
        "target": None if target is None else target[:128],
        "details": dict(fields.get("details") or {}),
        "ip": None if ip is None else ip[:64],
        "request_id": None if rid is None else rid[:64],
    }


class AuditWriter:
    """Group commit for audit entries that stand alone (not part of another change, such
    as the intent to cancel an order): whatever is waiting is written in one serialized
    write transaction, so concurrent requests share the commit and its fsync.

    `write` returns once the entry is committed and raises what the commit raised.
    """

    def __init__(self, db: Database, max_batch: int = 512) -> None:
        self.db = db
        self.max_batch = max_batch
        self._waiting: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0

    async def write(self, action: str, **fields: Unpack[AuditFields]) -> None:
        values = audit_values(utcnow(), action, **fields)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((values, fut))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="audit-writer")
        self._wakeup.set()
        await fut

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        waiting, self._waiting = self._waiting, []
        for _, fut in waiting:
            if not fut.done():
                fut.set_exception(RuntimeError("the backend is stopping"))

    async def _loop(self) -> None:
        while True:
            if not self._waiting:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = self._waiting[: self.max_batch]
            del self._waiting[: self.max_batch]
            try:
                async with self.db.session() as session, write_transaction(session):
                    await session.execute(insert(_AUDIT), [values for values, _ in batch])
                self.batches += 1
            except Exception as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            except BaseException as exc:  # cancelled while writing: nobody will retry it
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(RuntimeError("the backend is stopping"))
                raise exc
            for _, fut in batch:
                if not fut.done():
                    fut.set_result(None)


_AUDIT = cast(Table, AuditEntry.__table__)

__all__ = ["AuditWriter", "audit_values", "record"]
