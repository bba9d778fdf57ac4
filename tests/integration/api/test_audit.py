"""The audit log: what is recorded, and that it cannot be changed afterwards."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError

from hft.api import audit
from hft.db.models.auth import AuditEntry
from hft.db.session import Database, write_transaction


async def _entries(db: Database) -> list[AuditEntry]:
    async with db.session() as session:
        return list((await session.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars())


async def test_logins_registrations_and_key_changes_are_audited(
    make_user, client: httpx.AsyncClient, db: Database
) -> None:
    user = await make_user()
    await client.post("/api/v1/auth/token", data={"username": user.username, "password": "bad"})
    await client.post("/api/v1/auth/token", data={"username": "ghost", "password": "bad"})
    key = (await user.post("/api/v1/auth/api-keys", json={"name": "k"})).json()
    await user.delete(f"/api/v1/auth/api-keys/{key['id']}")
    rows = await _entries(db)
    actions = [(e.action, e.user_id) for e in rows]
    uid = int(user.user_id)
    assert actions == [
        ("auth.register", uid),
        ("auth.login", uid),
        ("auth.login_failed", uid),
        ("auth.login_failed", None),
        ("api_key.create", uid),
        ("api_key.revoke", uid),
    ]
    assert rows[2].details == {"username": user.username, "reason": "bad_password"}
    assert rows[3].details == {"username": "ghost", "reason": "unknown_user"}
    assert rows[4].target == f"api_key:{key['id']}"
    assert all(e.ip == "127.0.0.1" for e in rows)
    assert all(e.request_id for e in rows)
    assert len({e.request_id for e in rows}) == len(rows)
    assert key["secret"] not in repr([e.details for e in rows])


async def test_request_id_links_audit_entry_to_response(
    client: httpx.AsyncClient, db: Database
) -> None:
    r = await client.post(
        "/api/v1/auth/register",
        json={"username": "traced", "password": "pw-1234567"},
        headers={"X-Request-ID": "trace-me-42"},
    )
    assert r.headers["x-request-id"] == "trace-me-42"
    (entry,) = await _entries(db)
    assert entry.request_id == "trace-me-42"


async def test_audit_log_is_append_only_in_the_database(db: Database) -> None:
    async with db.session() as session, write_transaction(session):
        audit.record(session, "test.event", details={"n": 1})
    for statement in (
        update(AuditEntry).values(action="rewritten"),
        delete(AuditEntry),
    ):
        async with db.session() as session:
            with pytest.raises(DBAPIError, match="append-only"):
                async with write_transaction(session):
                    await session.execute(statement)
    if db.engine.dialect.name == "postgresql":
        async with db.session() as session:
            with pytest.raises(DBAPIError, match="append-only"):
                async with write_transaction(session):
                    await session.execute(text("TRUNCATE audit_log"))
    (entry,) = await _entries(db)
    assert entry.action == "test.event"


class AbortError(Exception):
    pass


async def _audit_then_fail(db: Database) -> None:
    async with db.session() as session, write_transaction(session):
        audit.record(session, "test.event")
        await session.flush()
        raise AbortError


async def test_failed_transaction_leaves_no_audit_entry(db: Database) -> None:
    with pytest.raises(AbortError):
        await _audit_then_fail(db)
    assert await _entries(db) == []


async def test_admin_can_read_audit_log_and_traders_cannot(make_user) -> None:
    trader = await make_user()
    admin = await make_user(admin=True)
    r = await trader.get("/api/v1/admin/audit")
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden"
    r = await admin.get("/api/v1/admin/audit", params={"user_id": trader.user_id})
    assert r.status_code == 200
    assert [e["action"] for e in r.json()] == ["auth.login", "auth.register"]
    r = await admin.get("/api/v1/admin/audit", params={"action": "auth.register", "limit": 1})
    assert len(r.json()) == 1
    r = await admin.get("/api/v1/admin/audit", params={"limit": 0})
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "limit"


async def test_admin_user_management(make_user) -> None:
    trader = await make_user()
    admin = await make_user(admin=True)
    users = (await admin.get("/api/v1/admin/users")).json()
    assert {u["username"] for u in users} == {trader.username, admin.username}
    # The trader is remembered by the user cache; deactivating him drops that at once.
    assert (await trader.get("/api/v1/auth/me")).status_code == 200
    r = await admin.patch(f"/api/v1/admin/users/{trader.user_id}", json={"is_active": False})
    assert r.status_code == 200
    assert r.json()["is_active"] is False
    assert (await trader.get("/api/v1/auth/me")).status_code == 401
    r = await admin.patch(f"/api/v1/admin/users/{admin.user_id}", json={"role": "trader"})
    assert r.status_code == 409
    r = await admin.patch("/api/v1/admin/users/999999", json={"role": "admin"})
    assert r.status_code == 404
    r = await admin.patch(f"/api/v1/admin/users/{trader.user_id}", json={"role": "root"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_role"
    r = await trader.patch(f"/api/v1/admin/users/{trader.user_id}", json={"is_active": True})
    assert r.status_code == 401
    audit_rows = (await admin.get("/api/v1/admin/audit", params={"action": "user.update"})).json()
    assert audit_rows[0]["target"] == f"user:{trader.user_id}"


async def test_audit_writer_shares_commits_and_reports_failures(make_user, db: Database) -> None:
    user = await make_user()
    uid = int(user.user_id)
    writer = audit.AuditWriter(db)
    try:
        await asyncio.gather(
            *(writer.write("order.cancel", user_id=uid, target=f"order:{i}") for i in range(20))
        )
        # All twenty were waiting before the first commit began: fewer commits than entries.
        assert 1 <= writer.batches < 20
        rows = [e for e in await _entries(db) if e.action == "order.cancel"]
        assert sorted(e.target for e in rows) == sorted(f"order:{i}" for i in range(20))
        # An entry the database refuses (no such user) fails its writers and persists none
        # of its batch; the writer goes on.
        results = await asyncio.gather(
            writer.write("order.cancel", user_id=999_999_999, target="order:x"),
            writer.write("order.cancel", user_id=uid, target="order:y"),
            return_exceptions=True,
        )
        assert all(isinstance(r, Exception) for r in results), results
        targets = {e.target for e in await _entries(db)}
        assert "order:x" not in targets
        assert "order:y" not in targets
        await writer.write("order.cancel", user_id=uid, target="order:z")
        assert "order:z" in {e.target for e in await _entries(db)}
    finally:
        await writer.close()
