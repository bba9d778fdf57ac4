"""FastAPI dependencies shared by every router.

    async def handler(user: CurrentUser, session: SessionDep, ip: ClientIp): ...

`CurrentUser` accepts either `Authorization: Bearer <JWT>` or an HMAC-signed request
(see hft.api.security), rejects inactive users, and applies the per-user rate limit.
The session is the request's own; one is shared by all dependencies of a request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hft.api.errors import ApiError
from hft.api.metrics import AUTH_FAILURES, RATE_LIMITED
from hft.api.ratelimit import RateLimiter
from hft.api.security import (
    API_KEY_HEADER,
    API_SIGNATURE_HEADER,
    API_TIMESTAMP_HEADER,
    AuthError,
    Passwords,
    ReplayCache,
    api_secret_check,
    decode_token,
    derive_api_secret,
    parse_timestamp_ms,
    verify_signature,
)
from hft.api.settings import Settings
from hft.db.base import utcnow
from hft.db.models.auth import Account, ApiKey, User
from hft.db.session import Database, write_transaction

log = logging.getLogger("hft.api.auth")

# last_used_at is a convenience for the user, not an audit record: refreshing it at most
# once a minute keeps signed requests from each costing a database write.
_LAST_USED_RESOLUTION = timedelta(seconds=60)


class UserCache:
    """Recently authenticated active users by id, so an authenticated request needs no
    database read for its user (with a token, none at all).

    Entries live `ttl` seconds. A change made through this process (deactivation, role,
    password) drops the entry at once; another backend process sees it within `ttl`.
    Each hit returns a new detached `User`, so no request can change another's copy.

    It also remembers tokens whose signature and claims were verified (the exact token
    string, until its `exp`), so a client reusing its token is not re-verified each time.
    """

    def __init__(self, ttl: float = 2.0, capacity: int = 100_000) -> None:
        self.ttl = ttl
        self.capacity = capacity
        self._entries: dict[int, tuple[float, dict[str, object]]] = {}
        self._tokens: dict[str, tuple[int, int]] = {}
        self._reading: dict[int, asyncio.Future[None]] = {}

    def token_user(self, token: str) -> int | None:
        """The user id of a token verified before and not expired since, else None."""
        hit = self._tokens.get(token)
        if hit is None:
            return None
        if time.time() >= hit[1]:
            del self._tokens[token]
            return None
        return hit[0]

    def remember_token(self, token: str, user_id: int, expires: int) -> None:
        if self.ttl <= 0:
            return
        if len(self._tokens) >= self.capacity:
            self._tokens.clear()
        self._tokens[token] = (user_id, expires)

    def get(self, user_id: int) -> User | None:
        entry = self._entries.get(user_id)
        if entry is None:
            return None
        if time.monotonic() >= entry[0]:
            del self._entries[user_id]
            return None
        # A fresh transient instance filled directly: what `User(**values)` builds,
        # without an instrumented attribute set per column.
        user: User = _USER_MANAGER.new_instance()
        user.__dict__.update(entry[1])
        return user

    async def load(self, user_id: int, read: Callable[[], Awaitable[User | None]]) -> User | None:
        """The user, from the cache or else from `read` (which is then cached if active).

        One read per user at a time: when an entry expires, every request of that user
        in flight misses at once, and without this each would take a pooled connection
        (beyond the pool's size, a new one) to read the same row. The others wait for
        the first read and take its result from the cache; if it failed or found no
        active user, each reads for itself, so errors stay per request.
        """
        user = self.get(user_id)
        if user is not None:
            return user
        if self.ttl > 0:
            pending = self._reading.get(user_id)
            if pending is not None:
                # asyncio.wait, not await: a waiter cancelled (client gone) must not
                # cancel the future the other waiters share.
                await asyncio.wait([pending])
                user = self.get(user_id)
                if user is not None:
                    return user
            else:
                done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._reading[user_id] = done
                try:
                    user = await read()
                    if user is not None:
                        self.put(user)
                    return user
                finally:
                    del self._reading[user_id]
                    done.set_result(None)
        user = await read()
        if user is not None:
            self.put(user)
        return user

    def put(self, user: User) -> None:
        if not user.is_active:
            return
        if self.ttl <= 0:
            return
        if len(self._entries) >= self.capacity:
            self._entries.clear()
        values = {c: getattr(user, c) for c in _USER_COLUMNS}
        self._entries[user.id] = (time.monotonic() + self.ttl, values)

    def forget(self, user_id: int) -> None:
        self._entries.pop(user_id, None)

    def clear(self) -> None:
        self._entries.clear()


_USER_COLUMNS = tuple(c.key for c in User.__table__.columns)
_USER_MANAGER = User.__mapper__.class_manager


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def get_passwords(request: Request) -> Passwords:
    passwords: Passwords = request.app.state.passwords
    return passwords


async def get_rate_limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    db: Database = request.app.state.db
    async with db.session() as session:
        yield session


async def get_client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


async def get_request_id(request: Request) -> str:
    rid = getattr(request.state, "request_id", None)
    return str(rid) if rid else ""


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
DatabaseDep = Annotated[Database, Depends(get_database)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
PasswordsDep = Annotated[Passwords, Depends(get_passwords)]
RateLimiterDep = Annotated[RateLimiter, Depends(get_rate_limiter)]
ClientIp = Annotated[str | None, Depends(get_client_ip)]
RequestId = Annotated[str, Depends(get_request_id)]


def not_authenticated(message: str = "not authenticated") -> ApiError:
    return ApiError(401, "not_authenticated", message, headers={"WWW-Authenticate": "Bearer"})


async def user_from_token(
    token: str, settings: Settings, session: AsyncSession, cache: UserCache | None = None
) -> User:
    """The active user a bearer token belongs to (also for the WebSocket's `auth` op).

    Raises ApiError 401 (`not_authenticated`) for a bad, expired or foreign token.
    """
    user_id = cache.token_user(token) if cache is not None else None
    if user_id is None:
        try:
            claims = decode_token(token, settings.jwt_key(), issuer=settings.jwt_issuer)
        except AuthError as exc:
            AUTH_FAILURES.labels(exc.code).inc()
            raise not_authenticated(
                "token has expired" if exc.code == "token_expired" else "invalid token"
            ) from exc
        user_id = claims.user_id
        if cache is not None:
            cache.remember_token(token, user_id, claims.expires_at)
    if cache is not None:
        user = await cache.load(user_id, lambda: session.get(User, user_id))
    else:
        user = await session.get(User, user_id)
    if user is None or not user.is_active:
        AUTH_FAILURES.labels("inactive_user").inc()
        raise not_authenticated("invalid token")
    return user


async def _user_from_signature(
    request: Request, key_id: str, settings: Settings, session: AsyncSession
) -> User:
    timestamp = request.headers.get(API_TIMESTAMP_HEADER, "")
    signature = request.headers.get(API_SIGNATURE_HEADER, "")
    if not timestamp or not signature:
        raise not_authenticated(f"{API_TIMESTAMP_HEADER} and {API_SIGNATURE_HEADER} required")
    window_ms = int(settings.signature_window_seconds * 1000)
    try:
        parse_timestamp_ms(timestamp, now_ms=int(time.time() * 1000), window_ms=window_ms)
    except AuthError as exc:
        AUTH_FAILURES.labels(exc.code).inc()
        raise not_authenticated(exc.message) from exc
    if len(key_id) > 40 or len(signature) > 128:
        raise not_authenticated("invalid API key or signature")
    key = (
        await session.execute(select(ApiKey).where(ApiKey.key_id == key_id))
    ).scalar_one_or_none()
    if key is None or key.revoked_at is not None:
        AUTH_FAILURES.labels("unknown_api_key").inc()
        raise not_authenticated("invalid API key or signature")
    secret = derive_api_secret(settings.api_key_master(), key.key_id, key.secret_salt)
    if api_secret_check(secret) != key.secret_check:
        log.error(
            "API key %s cannot be verified: the API key master key differs from the one "
            "it was created with",
            key.key_id,
        )
        AUTH_FAILURES.labels("master_key_mismatch").inc()
        raise not_authenticated("invalid API key or signature")
    path = request.url.path
    query = request.scope.get("query_string", b"").decode("latin-1")
    path_and_query = f"{path}?{query}" if query else path
    body = await request.body()
    if not verify_signature(secret, signature, timestamp, request.method, path_and_query, body):
        AUTH_FAILURES.labels("bad_signature").inc()
        raise not_authenticated("invalid API key or signature")
    replay: ReplayCache = request.app.state.replay_cache
    if not replay.check_and_add(signature.strip().lower()):
        AUTH_FAILURES.labels("replayed_signature").inc()
        raise not_authenticated("request already used (replay)")
    cache: UserCache = request.app.state.user_cache
    user = await cache.load(key.user_id, lambda: session.get(User, key.user_id))
    if user is None or not user.is_active:
        raise not_authenticated("invalid API key or signature")
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at >= _LAST_USED_RESOLUTION:
        async with write_transaction(session):
            await session.execute(
                update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now)
            )
    request.state.api_key_id = key.key_id
    return user


# Declared for the OpenAPI schema (Swagger's "Authorize"); the headers are read below.
bearer_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)
api_key_scheme = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="API key id; also send X-API-Timestamp and X-API-Signature (HMAC-SHA256)",
)


async def get_current_user(
    request: Request,
    settings: SettingsDep,
    session: SessionDep,
    limiter: RateLimiterDep,
    _bearer: Annotated[str | None, Depends(bearer_scheme)],
    _api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> User:
    """The authenticated user. Raises ApiError 401 (`not_authenticated`) for missing or
    bad credentials and 429 (`rate_limited`) past the per-user limit."""
    user = await _identify(request, settings, session)
    _admit(request, user, limiter)
    return user


async def authenticate(request: Request, session: AsyncSession | None = None) -> User:
    """`get_current_user` for routes that resolve their own arguments (hft.api.direct):
    the same checks and errors. Without a session, a bearer token whose user is in the
    user cache needs no database at all; otherwise a session is opened for the lookup."""
    state = request.app.state
    if session is not None:
        user = await _identify(request, state.settings, session)
    else:
        cached = _cached_bearer_user(request, state.user_cache)
        if cached is not None:
            user = cached
        else:
            db: Database = state.db
            async with db.session() as own:
                user = await _identify(request, state.settings, own)
    _admit(request, user, state.rate_limiter)
    return user


def _cached_bearer_user(request: Request, cache: UserCache) -> User | None:
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    user_id = cache.token_user(token.strip())
    if user_id is None:
        return None
    user = cache.get(user_id)
    if user is not None:
        request.state.auth_method = "token"
    return user


async def _identify(request: Request, settings: Settings, session: AsyncSession) -> User:
    auth = request.headers.get("authorization")
    key_id = request.headers.get(API_KEY_HEADER)
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise not_authenticated("Authorization must be `Bearer <token>`")
        user = await user_from_token(token.strip(), settings, session, request.app.state.user_cache)
        request.state.auth_method = "token"
    elif key_id:
        user = await _user_from_signature(request, key_id, settings, session)
        request.state.auth_method = "api_key"
    else:
        raise not_authenticated()
    return user


def _admit(request: Request, user: User, limiter: RateLimiter) -> None:
    request.state.user_id = user.id
    try:
        limiter.check_rest_user(user.id)
    except ApiError:
        RATE_LIMITED.labels("user").inc()
        raise


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_admin_user(user: CurrentUser) -> User:
    """The current user if an admin; raises ApiError 403 (`forbidden`) otherwise."""
    if user.role != "admin":
        raise ApiError(403, "forbidden", "admin role required")
    return user


AdminUser = Annotated[User, Depends(get_admin_user)]


async def get_current_account_id(user: CurrentUser, session: SessionDep) -> int:
    """The engine account id of the current user (raises ApiError 404 if none exists)."""
    account_id = (
        await session.execute(select(Account.id).where(Account.user_id == user.id))
    ).scalar_one_or_none()
    if account_id is None:
        raise ApiError(404, "account_not_found", "this user has no trading account")
    return int(account_id)


CurrentAccountId = Annotated[int, Depends(get_current_account_id)]


__all__ = [
    "AdminUser",
    "ClientIp",
    "CurrentAccountId",
    "CurrentUser",
    "DatabaseDep",
    "PasswordsDep",
    "RateLimiterDep",
    "RequestId",
    "SessionDep",
    "SettingsDep",
    "UserCache",
    "authenticate",
    "get_current_user",
    "get_database",
    "get_session",
    "not_authenticated",
    "user_from_token",
]
