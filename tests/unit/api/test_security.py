"""Passwords, tokens and request signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest

from hft.api.security import (
    AuthError,
    Passwords,
    ReplayCache,
    api_secret_check,
    decode_token,
    derive_api_secret,
    encode_token,
    new_api_key_id,
    parse_timestamp_ms,
    sign_request,
    signature_payload,
    verify_signature,
)

KEY = "k" * 48


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _handmade(header: dict[str, object], claims: dict[str, object], key: bytes = b"") -> str:
    head = _b64(json.dumps(header).encode())
    body = _b64(json.dumps(claims).encode())
    sig = _b64(hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()) if key else ""
    return f"{head}.{body}.{sig}"


def test_passwords_hash_and_verify() -> None:
    pw = Passwords(time_cost=1, memory_kib=8192)
    h = pw.hash_sync("correct horse")
    assert h.startswith("$argon2id$")
    assert pw.verify_sync(h, "correct horse")
    assert not pw.verify_sync(h, "correct horsE")
    assert not pw.verify_sync(None, "anything")
    assert not pw.verify_sync("not-a-hash", "x")
    assert not pw.needs_rehash(h)
    assert Passwords(time_cost=2, memory_kib=8192).needs_rehash(h)


def test_token_round_trip() -> None:
    now = time.time()
    token = encode_token(42, KEY, expires_in=60, now=now)
    claims = decode_token(token, KEY)
    assert claims.user_id == 42
    assert claims.expires_at == int(now) + 60


@pytest.mark.parametrize(
    ("token_fn", "code"),
    [
        (lambda: encode_token(1, KEY, expires_in=60, now=time.time() - 120), "token_expired"),
        (lambda: encode_token(1, "other-key" * 5, expires_in=60), "invalid_token"),
        (lambda: encode_token(1, KEY, expires_in=60, issuer="someone-else"), "invalid_token"),
        (lambda: "abc", "invalid_token"),
        (lambda: "", "invalid_token"),
        (
            lambda: _handmade(
                {"alg": "none", "typ": "JWT"},
                {"sub": "1", "iat": int(time.time()), "exp": int(time.time()) + 60, "iss": "hft"},
            ),
            "invalid_token",
        ),
        (
            lambda: _handmade(
                {"alg": "HS384", "typ": "JWT"},
                {"sub": "1", "iat": int(time.time()), "exp": int(time.time()) + 60, "iss": "hft"},
                KEY.encode(),
            ),
            "invalid_token",
        ),
        (
            lambda: jwt.encode(
                {"sub": "1", "iat": int(time.time()), "iss": "hft", "typ": "access"}, KEY
            ),
            "invalid_token",
        ),
        (
            lambda: jwt.encode(
                {
                    "sub": "-1",
                    "iat": int(time.time()),
                    "exp": int(time.time()) + 60,
                    "iss": "hft",
                    "typ": "access",
                },
                KEY,
            ),
            "invalid_token",
        ),
    ],
    ids=[
        "expired",
        "wrong-key",
        "wrong-issuer",
        "garbage",
        "empty",
        "alg-none",
        "HS384",
        "no-exp",
        "negative-sub",
    ],
)
def test_bad_tokens(token_fn, code: str) -> None:
    with pytest.raises(AuthError) as info:
        decode_token(token_fn(), KEY)
    assert info.value.code == code


def test_alg_none_with_valid_looking_claims_and_hs256_header_but_no_signature() -> None:
    now = int(time.time())
    claims = {"sub": "1", "iat": now, "exp": now + 60, "iss": "hft", "typ": "access"}
    token = _handmade({"alg": "HS256", "typ": "JWT"}, claims)
    with pytest.raises(AuthError):
        decode_token(token, KEY)
    assert decode_token(_handmade({"alg": "HS256", "typ": "JWT"}, claims, KEY.encode()), KEY)


def test_api_secret_derivation_depends_on_master_key_id_and_salt() -> None:
    s = derive_api_secret(b"master", "hk_1", "salt")
    assert len(s) == 64
    assert s == derive_api_secret(b"master", "hk_1", "salt")
    assert s != derive_api_secret(b"master2", "hk_1", "salt")
    assert s != derive_api_secret(b"master", "hk_2", "salt")
    assert s != derive_api_secret(b"master", "hk_1", "salt2")
    assert api_secret_check(s) != s
    assert new_api_key_id() != new_api_key_id()


def test_signature_covers_every_part() -> None:
    secret = "s" * 64
    sig = sign_request(secret, "1700000000000", "post", "/api/v1/orders?x=1", b'{"a":1}')
    assert (
        sig
        == hmac.new(
            secret.encode(), b'1700000000000POST/api/v1/orders?x=1{"a":1}', hashlib.sha256
        ).hexdigest()
    )
    assert signature_payload("1", "get", "/p", b"") == b"1GET/p"
    args = ("1700000000000", "POST", "/api/v1/orders?x=1", b'{"a":1}')
    assert verify_signature(secret, sig, *args)
    assert verify_signature(secret, sig.upper(), *args)
    for changed in (
        ("1700000000001", "POST", "/api/v1/orders?x=1", b'{"a":1}'),
        ("1700000000000", "PUT", "/api/v1/orders?x=1", b'{"a":1}'),
        ("1700000000000", "POST", "/api/v1/orders?x=2", b'{"a":1}'),
        ("1700000000000", "POST", "/api/v1/orders?x=1", b'{"a":2}'),
    ):
        assert not verify_signature(secret, sig, *changed)
    assert not verify_signature("t" * 64, sig, *args)
    assert not verify_signature(secret, "", *args)


def test_timestamp_window() -> None:
    now = 1_700_000_000_000
    assert parse_timestamp_ms(str(now - 4_999), now_ms=now, window_ms=5_000) == now - 4_999
    assert parse_timestamp_ms(str(now + 5_000), now_ms=now, window_ms=5_000) == now + 5_000
    for bad, code in (
        (str(now - 5_001), "stale_timestamp"),
        (str(now + 5_001), "stale_timestamp"),
        ("-5", "invalid_timestamp"),
        ("1.5", "invalid_timestamp"),
        ("", "invalid_timestamp"),
        ("9" * 40, "invalid_timestamp"),
    ):
        with pytest.raises(AuthError) as info:
            parse_timestamp_ms(bad, now_ms=now, window_ms=5_000)
        assert info.value.code == code


def test_replay_cache_rejects_second_use_within_window_and_forgets_later() -> None:
    cache = ReplayCache(window_s=5.0)
    assert cache.check_and_add("a", now=100.0)
    assert not cache.check_and_add("a", now=104.0)
    assert cache.check_and_add("b", now=104.0)
    # Older than twice the window: the timestamp check rejects such a request anyway.
    assert cache.check_and_add("a", now=111.0)


def test_replay_cache_is_bounded() -> None:
    cache = ReplayCache(window_s=5.0, max_entries=3)
    for i in range(10):
        assert cache.check_and_add(str(i), now=1.0)
    assert len(cache._seen) <= 3
