"""Administration: users and the audit log (admin role only)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sqlalchemy import select

from hft.api import audit
from hft.api.deps import AdminUser, ClientIp, RequestId, SessionDep
from hft.api.errors import ApiError, error_responses
from hft.api.schemas import AuditEntryPublic, StrictBody
from hft.db.models.auth import AuditEntry, User
from hft.db.session import write_transaction
from hft.db.users import list_users

router = APIRouter(prefix="/admin", tags=["admin"])


class UserAdminView(BaseModel):
    id: str
    username: str
    role: Literal["trader", "admin"]
    is_active: bool
    account_id: str | None
    trading_enabled: bool | None


class UserUpdate(StrictBody):
    role: Literal["trader", "admin"] | None = None
    is_active: bool | None = None


def _view(user: User, account_id: int | None, trading_enabled: bool | None) -> UserAdminView:
    return UserAdminView(
        id=str(user.id),
        username=user.username,
        role="admin" if user.role == "admin" else "trader",
        is_active=user.is_active,
        account_id=None if account_id is None else str(account_id),
        trading_enabled=trading_enabled,
    )


@router.get(
    "/users",
    response_model=list[UserAdminView],
    responses=error_responses(401, 403, 429),
    summary="All users with their accounts",
)
async def admin_list_users(_admin: AdminUser, session: SessionDep) -> list[UserAdminView]:
    rows = await list_users(session)
    return [_view(u, a.id if a else None, a.trading_enabled if a else None) for u, a in rows]


@router.patch(
    "/users/{user_id}",
    response_model=UserAdminView,
    responses=error_responses(401, 403, 404, 409, 422, 429),
    summary="Change a user's role or deactivate/reactivate a user",
)
async def admin_update_user(
    user_id: int,
    body: UserUpdate,
    admin: AdminUser,
    session: SessionDep,
    request: Request,
    ip: ClientIp,
    request_id: RequestId,
) -> UserAdminView:
    """A deactivated user's tokens and API keys stop working at once. An admin cannot
    demote or deactivate himself (409 `cannot_change_self`), so one admin always remains."""
    if user_id == admin.id and (body.role == "trader" or body.is_active is False):
        raise ApiError(409, "cannot_change_self", "an admin cannot demote or deactivate himself")
    async with write_transaction(session):
        user = await session.get(User, user_id)
        if user is None:
            raise ApiError(404, "user_not_found", "no such user")
        changes: dict[str, object] = {}
        if body.role is not None and body.role != user.role:
            changes["role"] = {"from": user.role, "to": body.role}
            user.role = body.role
        if body.is_active is not None and body.is_active != user.is_active:
            changes["is_active"] = {"from": user.is_active, "to": body.is_active}
            user.is_active = body.is_active
        request.app.state.user_cache.forget(user.id)
        if changes:
            audit.record(
                session,
                "user.update",
                user_id=admin.id,
                target=f"user:{user.id}",
                details=changes,
                ip=ip,
                request_id=request_id,
            )
    for u, a in await list_users(session):
        if u.id == user_id:
            return _view(u, a.id if a else None, a.trading_enabled if a else None)
    raise ApiError(404, "user_not_found", "no such user")


@router.get(
    "/audit",
    response_model=list[AuditEntryPublic],
    responses=error_responses(401, 403, 422, 429),
    summary="The audit log, newest first",
)
async def admin_audit_log(
    _admin: AdminUser,
    session: SessionDep,
    user_id: Annotated[int | None, Query(ge=1)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    before_id: Annotated[int | None, Query(ge=1, description="page: entries older than")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditEntryPublic]:
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if user_id is not None:
        query = query.where(AuditEntry.user_id == user_id)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    entries = (await session.execute(query)).scalars()
    return [
        AuditEntryPublic(
            id=str(e.id),
            ts=e.ts,
            user_id=None if e.user_id is None else str(e.user_id),
            action=e.action,
            target=e.target,
            details=e.details,
            ip=e.ip,
            request_id=e.request_id,
        )
        for e in entries
    ]
