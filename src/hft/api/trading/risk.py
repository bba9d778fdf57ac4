"""Risk limits (read: everyone for themselves; write: admin) and the kill switch."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hft.api.audit import record
from hft.api.deps import AdminUser, ClientIp, CurrentUser, RequestId, SessionDep
from hft.api.errors import ApiError
from hft.api.trading.body import JsonNumber, check_fields, int_field, read_object
from hft.api.trading.common import (
    FastJSON,
    RuntimeDep,
    body_doc,
    engine_unavailable,
    errors,
    parse_id,
)
from hft.api.trading.repo import (
    account_of_user,
    effective_limits,
    limit_rows,
    lock_account_fresh,
)
from hft.api.trading.schemas import (
    KillSwitch,
    KillSwitchResult,
    RiskLimitsUpdate,
    RiskLimitsView,
)
from hft.db.models.auth import Account, User
from hft.db.models.trading import RiskLimitRow
from hft.db.session import write_transaction
from hft.engine.client import EngineUnavailable
from hft.services.decimals import fmt, parse_decimal
from hft.services.errors import InvalidInputError
from hft.services.risk import RiskLimits

router = APIRouter(tags=["risk"])

_DECIMAL_LIMITS = ("max_order_quantity", "max_order_notional", "max_position", "short_limit")
_LIMIT_FIELDS: dict[str, tuple[type, ...]] = {
    "user_id": (str, JsonNumber),
    "max_order_quantity": (str, JsonNumber),
    "max_order_notional": (str, JsonNumber),
    "max_position": (str, JsonNumber),
    "max_open_orders": (str, JsonNumber),
    "short_limit": (str, JsonNumber),
    "global_halt": (bool,),
}


def _limits_doc(
    user_id: int | None, limits: RiskLimits | RiskLimitRow | None, **extra: Any
) -> dict[str, Any] | None:
    if limits is None:
        return None
    doc: dict[str, Any] = {"user_id": None if user_id is None else str(user_id)}
    for name in _DECIMAL_LIMITS:
        value = getattr(limits, name)
        doc[name] = fmt(value) if value is not None else None
    doc["max_open_orders"] = limits.max_open_orders
    doc.update(extra)
    return doc


async def _target_account(session: AsyncSession, raw_user_id: object) -> tuple[int, Account]:
    uid = parse_id(str(raw_user_id)) if raw_user_id is not None else None
    user = None if uid is None else await session.get(User, uid)
    account = None if user is None else await account_of_user(session, user.id)
    if user is None or account is None:
        raise ApiError(404, "user_not_found", "no such user", "user_id")
    return user.id, account


async def _view(
    rt: RuntimeDep, session: AsyncSession, user_id: int, account: Account
) -> dict[str, Any]:
    defaults, own = await limit_rows(session, account.id)
    effective, halted = effective_limits(rt.settings, defaults, own)
    base, _ = effective_limits(rt.settings, defaults, None)
    return {
        "effective": _limits_doc(
            user_id, effective, trading_enabled=account.trading_enabled, global_halt=halted
        ),
        "account": _limits_doc(user_id, own),
        "defaults": _limits_doc(None, base, global_halt=halted),
    }


@router.get(
    "/risk/limits",
    response_model=RiskLimitsView,
    summary="Risk limits in force for the caller (admins: any user with user_id)",
    responses=errors(403, 404),
)
async def get_limits(
    user: CurrentUser,
    session: SessionDep,
    rt: RuntimeDep,
    user_id: Annotated[str | None, Query(max_length=20)] = None,
) -> FastJSON:
    if user_id is not None and user_id != str(user.id):
        if user.role != "admin":
            raise ApiError(404, "user_not_found", "no such user", "user_id")
        target_id, account = await _target_account(session, user_id)
    else:
        target_id = user.id
        found = await account_of_user(session, user.id)
        if found is None:
            raise ApiError(404, "account_not_found", "this user has no trading account")
        account = found
    return FastJSON(await _view(rt, session, target_id, account))


@router.put(
    "/risk/limits",
    response_model=RiskLimitsView,
    summary="Set the default limits, or one user's (admin)",
    openapi_extra=body_doc(RiskLimitsUpdate),
    responses=errors(400, 403, 404, 413, 422),
)
async def put_limits(
    request: Request,
    admin: AdminUser,
    session: SessionDep,
    rt: RuntimeDep,
    ip: ClientIp,
    request_id: RequestId,
) -> FastJSON:
    """Fields left out keep their value; null means unlimited on the defaults and "use
    the default" on a user's limits."""
    body = await read_object(request)
    check_fields(body, _LIMIT_FIELDS)
    changes: dict[str, Any] = {}
    try:
        for name in _DECIMAL_LIMITS:
            if name in body:
                value = body[name]
                if value is None:
                    changes[name] = None
                    continue
                dec = parse_decimal(value, name)
                if dec < 0 or (dec == 0 and name != "short_limit"):
                    raise InvalidInputError(f"invalid_{name}", f"{name} must be positive", name)
                changes[name] = dec
    except InvalidInputError as exc:
        raise ApiError(422, exc.code, exc.message, exc.field) from None
    if "max_open_orders" in body:
        raw = body["max_open_orders"]
        changes["max_open_orders"] = (
            None if raw is None else int_field(raw, "max_open_orders", minimum=1, maximum=10**6)
        )
    target_user: int | None = None
    account_id: int | None = None
    if body.get("user_id") is not None:
        target_user, account = await _target_account(session, body["user_id"])
        account_id = account.id
        if "global_halt" in body:
            raise ApiError(
                422, "invalid_global_halt", "global_halt is set on the defaults", "global_halt"
            )
    async with write_transaction(session):
        row = (
            await session.execute(
                select(RiskLimitRow).where(
                    RiskLimitRow.account_id.is_(None)
                    if account_id is None
                    else RiskLimitRow.account_id == account_id
                )
            )
        ).scalar_one_or_none()
        if row is None:
            row = RiskLimitRow(account_id=account_id, trading_halted=False)
            if account_id is None:
                # The first defaults row starts from the configured defaults.
                base, _ = effective_limits(rt.settings, None, None)
                for name in (*_DECIMAL_LIMITS, "max_open_orders"):
                    setattr(row, name, getattr(base, name))
            session.add(row)
        for name, value in changes.items():
            setattr(row, name, value)
        if account_id is None and body.get("global_halt") is not None:
            row.trading_halted = bool(body["global_halt"])
        record(
            session,
            "risk.limits",
            user_id=admin.id,
            target="defaults" if target_user is None else f"user:{target_user}",
            details={k: (None if v is None else str(v)) for k, v in changes.items()}
            | ({"global_halt": body["global_halt"]} if "global_halt" in body else {}),
            ip=ip,
            request_id=request_id,
        )
    rt.limits_changed()
    if target_user is None:
        account_own = await account_of_user(session, admin.id)
        if account_own is None:
            return FastJSON(
                {"effective": None, "account": None, "defaults": _limits_doc(None, row)}
            )
        return FastJSON(await _view(rt, session, admin.id, account_own))
    _, account = await _target_account(session, target_user)
    return FastJSON(await _view(rt, session, target_user, account))


_KILL_FIELDS: dict[str, tuple[type, ...]] = {"user_id": (str, JsonNumber), "enabled": (bool,)}


@router.post(
    "/risk/kill-switch",
    response_model=KillSwitchResult,
    summary="Halt (or resume) an account's trading; halting cancels its open orders",
    openapi_extra=body_doc(KillSwitch),
    responses=errors(400, 403, 404, 413, 422, 503),
)
async def kill_switch(
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    rt: RuntimeDep,
    ip: ClientIp,
    request_id: RequestId,
) -> FastJSON:
    """A user may halt his own account; lifting a halt, or touching another user's
    account, needs the admin role."""
    body = await read_object(request)
    check_fields(body, _KILL_FIELDS)
    enabled = body.get("enabled")
    if not isinstance(enabled, bool):
        raise ApiError(422, "missing_field", "enabled is required", "enabled")
    raw_uid = body.get("user_id")
    if raw_uid is None or str(raw_uid) == str(user.id):
        target_user = user.id
        found = await account_of_user(session, user.id)
        if found is None:
            raise ApiError(404, "account_not_found", "this user has no trading account")
        account_id = found.id
        if not enabled and user.role != "admin":
            raise ApiError(403, "forbidden", "only an admin can lift a kill switch")
    else:
        if user.role != "admin":
            raise ApiError(403, "forbidden", "admin role required for other users")
        target_user, acc = await _target_account(session, raw_uid)
        account_id = acc.id
    async with write_transaction(session):
        account = await lock_account_fresh(session, account_id)
        assert account is not None
        account.trading_enabled = not enabled
        record(
            session,
            "risk.kill_switch",
            user_id=user.id,
            target=f"user:{target_user}",
            details={"enabled": enabled},
            ip=ip,
            request_id=request_id,
        )
    try:
        resp = await rt.call(
            "set_kill_switch", lambda: rt.client.set_kill_switch(account_id, enabled)
        )
    except EngineUnavailable:
        raise engine_unavailable(
            "the account is marked halted here, but the engine did not answer; open orders "
            "were not canceled yet - retry"
        ) from None
    if resp.events:
        await rt.projection.wait_applied(resp.sequence, rt.settings.response_wait_s)
    return FastJSON(
        {
            "user_id": str(target_user),
            "trading_enabled": not enabled,
            "canceled": int(resp.canceled_count),
        }
    )
