"""Passwords (argon2id), access tokens (JWT, HS256 only) and HMAC-signed API requests.

Signed requests carry three headers:

    X-API-Key:        the key's public id (e.g. `hk_3f9a...`)
    X-API-Timestamp:  Unix time in milliseconds when the request was signed
    X-API-Signature:  hex(HMAC-SHA256(secret, timestamp + METHOD + path_and_query + body))

`path_and_query` is the request path, plus `?` and the raw query string when there is
one; `body` is the exact bytes sent (empty for GET). A signature is accepted once, and
only within `signature_window_seconds` of the server's clock.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

API_KEY_HEADER = "X-API-Key"
API_TIMESTAMP_HEADER = "X-API-Timestamp"
API_SIGNATURE_HEADER = "X-API-Signature"
API_KEY_PREFIX = "hk_"
_KEY_DERIVATION_LABEL = b"hft-api-key-v1"
_CHECK_LABEL = b"hft-api-key-check-v1"


class AuthError(Exception):
    """Credentials were given but are not acceptable; `code` says why (for logs/audit,
    clients only see a generic 401)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Passwords:
    """argon2id hashing; the work runs in a thread so the event loop keeps serving."""

    def __init__(self, time_cost: int = 3, memory_kib: int = 65536) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)
        # Verified against when the user does not exist, so timing does not reveal it.
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    def hash_sync(self, password: str) -> str:
        return self._hasher.hash(password)

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        """True when `password_hash` was made with other parameters than the current ones."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    def verify_sync(self, password_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash or self._dummy, password) and bool(
                password_hash
            )
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when `password` matches; False (never an exception) otherwise, also when
        `password_hash` is None (unknown user: a dummy hash is checked for equal timing)."""
        return await asyncio.to_thread(self.verify_sync, password_hash, password)


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    issued_at: int
    expires_at: int


def encode_token(
    user_id: int, key: str, *, expires_in: int, issuer: str = "hft", now: float | None = None
) -> str:
    """A signed HS256 access token for `user_id`, valid `expires_in` seconds."""
    iat = int(time.time() if now is None else now)
    payload = {
        "sub": str(user_id),
        "iat": iat,
        "nbf": iat,
        "exp": iat + expires_in,
        "iss": issuer,
        "typ": "access",
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(payload, key, algorithm="HS256")


def decode_token(token: str, key: str, *, issuer: str = "hft") -> TokenClaims:
    """Verify an access token and return its claims.

    Only HS256 is accepted, whatever the token's header claims (`alg: none`, RS256 with
    the HMAC key as "public key", ...). `exp`, `iat`, `sub` and the issuer are required.
    Raises AuthError (`invalid_token` or `token_expired`).
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise AuthError("invalid_token", "malformed token") from exc
    if header.get("alg") != "HS256":
        raise AuthError("invalid_token", "token algorithm not accepted")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=["HS256"],
            issuer=issuer,
            options={"require": ["exp", "iat", "sub", "iss"]},
            leeway=0,
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthError("token_expired", "token has expired") from exc
    except jwt.PyJWTError as exc:
        raise AuthError("invalid_token", f"invalid token: {exc}") from exc
    if claims.get("typ") != "access":
        raise AuthError("invalid_token", "not an access token")
    sub = claims["sub"]
    if not isinstance(sub, str) or not sub.isdigit() or len(sub) > 18:
        raise AuthError("invalid_token", "invalid subject")
    return TokenClaims(int(sub), int(claims["iat"]), int(claims["exp"]))


def new_api_key_id() -> str:
    """A fresh public key id (`hk_` + 24 hex digits)."""
    return API_KEY_PREFIX + secrets.token_hex(12)


def new_api_key_salt() -> str:
    return secrets.token_hex(32)


def derive_api_secret(master: bytes, key_id: str, salt: str) -> str:
    """The API key's secret (64 hex digits): HMAC-SHA256(master, label|key_id|salt).

    Deterministic, so the server re-derives it to verify signatures and never stores it.
    """
    msg = b"|".join((_KEY_DERIVATION_LABEL, key_id.encode(), salt.encode()))
    return hmac.new(master, msg, hashlib.sha256).hexdigest()


def api_secret_check(secret: str) -> str:
    """A fingerprint of a secret, stored to detect a changed master key."""
    return hmac.new(secret.encode(), _CHECK_LABEL, hashlib.sha256).hexdigest()


def signature_payload(timestamp: str, method: str, path_and_query: str, body: bytes) -> bytes:
    """The bytes a client signs: timestamp + METHOD + path[?query] + body."""
    return timestamp.encode() + method.upper().encode() + path_and_query.encode() + body


def sign_request(
    secret: str, timestamp: str, method: str, path_and_query: str, body: bytes = b""
) -> str:
    """Hex HMAC-SHA256 signature (what a client sends in X-API-Signature)."""
    payload = signature_payload(timestamp, method, path_and_query, body)
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def parse_timestamp_ms(value: str, *, now_ms: int, window_ms: int) -> int:
    """Validate an X-API-Timestamp (integer milliseconds) against the receive window.

    Raises AuthError (`invalid_timestamp` or `stale_timestamp`).
    """
    if not value.isdigit() or len(value) > 16:
        raise AuthError("invalid_timestamp", "X-API-Timestamp must be Unix milliseconds")
    ts = int(value)
    if abs(now_ms - ts) > window_ms:
        raise AuthError("stale_timestamp", "request timestamp outside the receive window")
    return ts


def verify_signature(
    secret: str,
    signature: str,
    timestamp: str,
    method: str,
    path_and_query: str,
    body: bytes,
) -> bool:
    """Constant-time comparison of `signature` against the expected one."""
    expected = sign_request(secret, timestamp, method, path_and_query, body)
    return hmac.compare_digest(expected.encode(), signature.strip().lower().encode())


class ReplayCache:
    """Signatures seen within the receive window; a second use is a replay.

    Per process: with several workers a replay could reach another worker, but only
    within the (short) window; the timestamp check bounds it.
    """

    def __init__(self, window_s: float, max_entries: int = 1_000_000) -> None:
        self._window = window_s
        self._max = max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()

    def check_and_add(self, signature: str, now: float | None = None) -> bool:
        """True when `signature` is new (and remember it); False when it was seen."""
        t = time.monotonic() if now is None else now
        # Twice the window: a timestamp may lie up to one window in the past or future.
        horizon = t - 2 * self._window
        while self._seen:
            oldest_sig, oldest_t = next(iter(self._seen.items()))
            if oldest_t >= horizon and len(self._seen) < self._max:
                break
            del self._seen[oldest_sig]
        if signature in self._seen:
            return False
        self._seen[signature] = t
        return True


__all__ = [
    "API_KEY_HEADER",
    "API_SIGNATURE_HEADER",
    "API_TIMESTAMP_HEADER",
    "AuthError",
    "Passwords",
    "ReplayCache",
    "TokenClaims",
    "api_secret_check",
    "decode_token",
    "derive_api_secret",
    "encode_token",
    "new_api_key_id",
    "new_api_key_salt",
    "parse_timestamp_ms",
    "sign_request",
    "signature_payload",
    "verify_signature",
]
