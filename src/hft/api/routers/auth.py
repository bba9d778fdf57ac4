"""Registration, login (OAuth2 password flow), the current user, and API keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import func, select, update

from hft.api import audit
from hft.api.deps import (
    ClientIp,
    CurrentUser,
    PasswordsDep,
    RateLimiterDep,
    RequestId,
    SessionDep,
    SettingsDep,
)
from hft.api.errors import ApiError, error_responses
from hft.api.metrics import AUTH_FAILURES
from hft.api.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPublic,
    Me,
    PasswordChange,
    Token,
    UserCreate,
    UserPublic,
)
from hft.api.security import (
    api_secret_check,
    derive_api_secret,
    encode_token,
    new_api_key_id,
    new_api_key_salt,
)
from hft.db.base import utcnow
from hft.db.models.auth import ApiKey, User
from hft.db.session import write_transaction
from hft.db.users import (
    UsernameTakenError,
    account_id_of,
    create_user,
    get_user_by_username,
    username_key,
)

router = APIRouter(prefix="/auth", tags=["auth"])

MAX_ACTIVE_API_KEYS = 20


def _user_public(user: User) -> UserPublic:
    return UserPublic(
        id=str(user.id),
        username=user.username,
        role="admin" if user.role == "admin" else "trader",
        created_at=user.created_at,
    )


def _key_public(key: ApiKey) -> ApiKeyPublic:
    return ApiKeyPublic(
        id=key.key_id,
        name=key.name,
        created_at=key.created_at,
        last_used_at=key.last_used_at,
        revoked_at=key.revoked_at,
    )


def check_password_policy(username: str, password: str, min_length: int) -> None:
    """Raises ApiError 422 with a specific code when `password` is too weak."""
    if len(password) < min_length:
        raise ApiError(
            422,
            "password_too_short",
            f"password must have at least {min_length} characters",
            "password",
        )
    if not password.strip():
        raise ApiError(422, "invalid_password", "password cannot be only spaces", "password")
    if username.casefold() in password.casefold():
        raise ApiError(
            422, "password_contains_username", "password must not contain the username", "password"
        )
    if len(set(password)) < 4:
        raise ApiError(
            422,
            "password_too_simple",
            "password needs at least 4 different characters",
            "password",
        )


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    responses=error_responses(409, 422, 429),
    summary="Create a user and its trading account",
)
async def register(
    body: UserCreate,
    session: SessionDep,
    settings: SettingsDep,
    passwords: PasswordsDep,
    limiter: RateLimiterDep,
    ip: ClientIp,
    request_id: RequestId,
) -> UserPublic:
    """Creates the user (role trader) and an account holding the configured starting cash,
    in one transaction. 409 `username_taken` when the name exists in any letter case."""
    limiter.check_auth_ip(ip)
    check_password_policy(body.username, body.password, settings.password_min_length)
    if await get_user_by_username(session, body.username) is not None:
        raise ApiError(409, "username_taken", "this username is taken", "username")
    password_hash = await passwords.hash(body.password)
    try:
        async with write_transaction(session):
            user, account = await create_user(
                session, body.username, password_hash, starting_cash=settings.starting_cash
            )
            audit.record(
                session,
                "auth.register",
                user_id=user.id,
                target=f"account:{account.id}",
                details={"username": user.username, "starting_cash": str(account.cash)},
                ip=ip,
                request_id=request_id,
            )
    except UsernameTakenError as exc:
        raise ApiError(409, "username_taken", "this username is taken", "username") from exc
    return _user_public(user)


@router.post(
    "/token",
    response_model=Token,
    responses=error_responses(401, 422, 429),
    summary="Log in (OAuth2 password flow) and get an access token",
)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    settings: SettingsDep,
    passwords: PasswordsDep,
    limiter: RateLimiterDep,
    ip: ClientIp,
    request_id: RequestId,
) -> Token:
    """Form fields `username` and `password`. 401 `invalid_credentials` for an unknown
    user, a wrong password or a deactivated user (indistinguishable on purpose); 429
    after too many failures from one address or for one username."""
    limiter.check_auth_ip(ip)
    name_key = username_key(form.username[:64])
    limiter.check_login_allowed(name_key)
    user = None
    if len(form.username) <= 64 and len(form.password) <= 256:
        user = await get_user_by_username(session, form.username)
    ok = await passwords.verify(user.password_hash if user else None, form.password[:256])
    if user is None or not ok or not user.is_active:
        reason = "unknown_user" if user is None else ("bad_password" if not ok else "inactive")
        AUTH_FAILURES.labels(reason).inc()
        limiter.record_login_failure(name_key)
        async with write_transaction(session):
            audit.record(
                session,
                "auth.login_failed",
                user_id=user.id if user else None,
                details={"username": form.username[:64], "reason": reason},
                ip=ip,
                request_id=request_id,
            )
        raise ApiError(
            401,
            "invalid_credentials",
            "wrong username or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    # Hashes made with older (cheaper) parameters are upgraded on the next good login.
    new_hash = (
        await passwords.hash(form.password) if passwords.needs_rehash(user.password_hash) else None
    )
    async with write_transaction(session):
        if new_hash is not None:
            await session.execute(
                update(User).where(User.id == user.id).values(password_hash=new_hash)
            )
        audit.record(session, "auth.login", user_id=user.id, ip=ip, request_id=request_id)
    token = encode_token(
        user.id,
        settings.jwt_key(),
        expires_in=settings.access_token_expire_seconds,
        issuer=settings.jwt_issuer,
    )
    return Token(access_token=token, expires_in=settings.access_token_expire_seconds)


@router.get(
    "/me",
    response_model=Me,
    responses=error_responses(401, 429),
    summary="The authenticated user",
)
async def me(user: CurrentUser, session: SessionDep, request: Request) -> Me:
    account_id = await account_id_of(session, user.id)
    return Me(
        **_user_public(user).model_dump(),
        account_id=None if account_id is None else str(account_id),
        auth_method=getattr(request.state, "auth_method", "token"),
    )


def _require_token_auth(request: Request) -> None:
    # A leaked API key must not be able to mint more keys or revoke the owner's.
    if getattr(request.state, "auth_method", None) != "token":
        raise ApiError(403, "forbidden", "API keys are managed with a login token, not a key")


@router.post(
    "/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 422, 429),
    summary="Change the current user's password",
)
async def change_password(
    body: PasswordChange,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    passwords: PasswordsDep,
    request: Request,
    ip: ClientIp,
    request_id: RequestId,
) -> Response:
    """Needs the current password (403 `wrong_password` otherwise) and a login token,
    not an API key. The new password follows the registration policy (422 codes)."""
    _require_token_auth(request)
    # The hash as stored now, not as remembered by the user cache.
    stored = await session.get(User, user.id)
    if stored is None or not await passwords.verify(stored.password_hash, body.current_password):
        AUTH_FAILURES.labels("bad_password").inc()
        raise ApiError(403, "wrong_password", "the current password is wrong", "current_password")
    check_password_policy(user.username, body.new_password, settings.password_min_length)
    new_hash = await passwords.hash(body.new_password)
    async with write_transaction(session):
        await session.execute(update(User).where(User.id == user.id).values(password_hash=new_hash))
        request.app.state.user_cache.forget(user.id)
        audit.record(session, "auth.password_change", user_id=user.id, ip=ip, request_id=request_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/api-keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=error_responses(401, 403, 409, 422, 429),
    summary="Create an API key (the secret is shown once)",
)
async def create_api_key(
    body: ApiKeyCreate,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
    ip: ClientIp,
    request_id: RequestId,
) -> ApiKeyCreated:
    """The response's `secret` signs requests (see the API docs); it cannot be shown
    again. 409 `too_many_api_keys` past 20 active keys."""
    _require_token_auth(request)
    key_id = new_api_key_id()
    salt = new_api_key_salt()
    secret = derive_api_secret(settings.api_key_master(), key_id, salt)
    async with write_transaction(session):
        active = (
            await session.execute(
                select(func.count())
                .select_from(ApiKey)
                .where(ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))
            )
        ).scalar_one()
        if active >= MAX_ACTIVE_API_KEYS:
            raise ApiError(
                409,
                "too_many_api_keys",
                f"at most {MAX_ACTIVE_API_KEYS} active API keys; revoke one first",
            )
        key = ApiKey(
            user_id=user.id,
            key_id=key_id,
            secret_salt=salt,
            secret_check=api_secret_check(secret),
            name=body.name,
            created_at=utcnow(),
        )
        session.add(key)
        audit.record(
            session,
            "api_key.create",
            user_id=user.id,
            target=f"api_key:{key_id}",
            details={"name": body.name},
            ip=ip,
            request_id=request_id,
        )
    return ApiKeyCreated(**_key_public(key).model_dump(), secret=secret)


@router.get(
    "/api-keys",
    response_model=list[ApiKeyPublic],
    responses=error_responses(401, 429),
    summary="The user's API keys (without secrets), newest first",
)
async def list_api_keys(user: CurrentUser, session: SessionDep) -> list[ApiKeyPublic]:
    keys = (
        await session.execute(
            select(ApiKey).where(ApiKey.user_id == user.id).order_by(ApiKey.id.desc())
        )
    ).scalars()
    return [_key_public(k) for k in keys]


@router.delete(
    "/api-keys/{key_id}",
    response_model=ApiKeyPublic,
    responses=error_responses(401, 403, 404, 429),
    summary="Revoke an API key",
)
async def revoke_api_key(
    key_id: str,
    user: CurrentUser,
    session: SessionDep,
    request: Request,
    ip: ClientIp,
    request_id: RequestId,
) -> ApiKeyPublic:
    """Revoking is immediate and permanent; revoking a revoked key returns it unchanged.
    404 `api_key_not_found` when the key is not the caller's."""
    _require_token_auth(request)
    async with write_transaction(session):
        key = (
            await session.execute(
                select(ApiKey).where(ApiKey.key_id == key_id[:40], ApiKey.user_id == user.id)
            )
        ).scalar_one_or_none()
        if key is None:
            raise ApiError(404, "api_key_not_found", "no such API key")
        if key.revoked_at is None:
            key.revoked_at = utcnow()
            audit.record(
                session,
                "api_key.revoke",
                user_id=user.id,
                target=f"api_key:{key.key_id}",
                details={"name": key.name},
                ip=ip,
                request_id=request_id,
            )
    return _key_public(key)
