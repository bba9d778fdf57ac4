"""Token buckets."""

from __future__ import annotations

import pytest

from hft.api.errors import ApiError
from hft.api.ratelimit import RateLimiter, TokenBucketLimiter, too_many_requests
from hft.api.settings import RateLimitSettings, TokenBucket


def test_burst_then_refill_at_rate() -> None:
    b = TokenBucketLimiter(rate=2.0, burst=3)
    assert [b.hit("k", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.hit("k", now=0.0) == pytest.approx(0.5)
    assert b.hit("k", now=0.25) == pytest.approx(0.25)
    assert b.hit("k", now=0.5) == 0.0
    assert b.hit("k", now=0.5) == pytest.approx(0.5)
    # Never more than the burst, however long idle.
    assert [b.hit("k", now=1000.0) for _ in range(4)][-1] > 0
    assert b.hit("other", now=0.0) == 0.0


def test_refused_hits_take_nothing() -> None:
    b = TokenBucketLimiter(rate=1.0, burst=1)
    assert b.hit("k", now=0.0) == 0.0
    for t in (0.1, 0.2, 0.3):
        assert b.hit("k", now=t) > 0
    assert b.hit("k", now=1.0) == 0.0


def test_many_keys_are_pruned() -> None:
    b = TokenBucketLimiter(rate=1.0, burst=1, max_keys=100)
    for i in range(1000):
        b.hit(i, now=float(i))
    assert len(b._buckets) <= 100


def test_429_error_has_retry_after_in_whole_seconds() -> None:
    err = too_many_requests(0.01, "requests")
    assert err.status == 429
    assert err.headers == {"Retry-After": "1"}
    assert too_many_requests(2.2, "x").headers == {"Retry-After": "3"}


def test_rate_limiter_scopes() -> None:
    cfg = RateLimitSettings(
        rest_per_user=TokenBucket(rate=0.001, burst=2),
        rest_per_ip=TokenBucket(rate=0.001, burst=1),
        auth_per_ip=TokenBucket(rate=0.001, burst=1),
        ws_messages_per_user=TokenBucket(rate=0.001, burst=1),
        ws_messages_per_ip=TokenBucket(rate=0.001, burst=5),
        exempt_ips=["10.0.0.1"],
    )
    rl = RateLimiter(cfg)
    rl.check_rest_user(1)
    rl.check_rest_user(1)
    with pytest.raises(ApiError) as info:
        rl.check_rest_user(1)
    assert info.value.code == "rate_limited"
    rl.check_rest_user(2)
    assert rl.rest_ip_wait("1.2.3.4") == 0.0
    assert rl.rest_ip_wait("1.2.3.4") > 0
    assert rl.rest_ip_wait("10.0.0.1") == 0.0
    assert rl.rest_ip_wait("10.0.0.1") == 0.0
    rl.check_auth_ip("5.5.5.5")
    with pytest.raises(ApiError):
        rl.check_auth_ip("5.5.5.5")
    assert rl.ws_message_wait(None, "6.6.6.6") == 0.0
    assert rl.ws_message_wait(7, "6.6.6.6") == 0.0
    assert rl.ws_message_wait(7, "6.6.6.6") > 0
    off = RateLimiter(cfg.model_copy(update={"enabled": False}))
    for _ in range(5):
        off.check_rest_user(1)
        assert off.rest_ip_wait("1.2.3.4") == 0.0


def test_wait_peeks_without_taking() -> None:
    b = TokenBucketLimiter(rate=1.0, burst=2)
    assert b.wait("k", now=0.0) == 0.0
    assert "k" not in b._buckets
    b.hit("k", now=0.0)
    b.hit("k", now=0.0)
    assert b.wait("k", now=0.0) == pytest.approx(1.0)
    assert b.wait("k", now=0.5) == pytest.approx(0.5)
    assert b.wait("k", now=1.0) == 0.0
    assert b.wait("k", now=1.0) == 0.0


def test_login_failure_budget_per_username() -> None:
    rl = RateLimiter(
        RateLimitSettings(login_failures_per_username=TokenBucket(rate=0.001, burst=2))
    )
    rl.check_login_allowed("alice")
    rl.record_login_failure("alice")
    rl.check_login_allowed("alice")
    rl.record_login_failure("alice")
    with pytest.raises(ApiError):
        rl.check_login_allowed("alice")
    rl.check_login_allowed("bob")
