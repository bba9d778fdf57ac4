"""Token-bucket rate limits per user and per client IP (REST and WebSocket).

Buckets live in the process: with several workers each enforces its own share, so the
effective limit is the configured one times the number of workers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable

from hft.api.errors import ApiError
from hft.api.settings import RateLimitSettings, TokenBucket


class TokenBucketLimiter:
    """One token bucket per key: `rate` tokens/s refill up to `burst`; each hit costs one."""

    def __init__(self, rate: float, burst: int, *, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._max_keys = max_keys
        self._buckets: dict[Hashable, tuple[float, float]] = {}

    @classmethod
    def from_config(cls, bucket: TokenBucket) -> TokenBucketLimiter:
        return cls(bucket.rate, bucket.burst)

    def hit(self, key: Hashable, cost: float = 1.0, now: float | None = None) -> float:
        """Take `cost` tokens from `key`'s bucket. Returns 0.0 when allowed, otherwise the
        seconds until enough tokens will be there (nothing is taken then)."""
        t = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(key, (self.burst, t))
        tokens = min(self.burst, tokens + (t - last) * self.rate)
        if tokens >= cost:
            if key not in self._buckets and len(self._buckets) >= self._max_keys:
                self._prune(t)
            self._buckets[key] = (tokens - cost, t)
            return 0.0
        self._buckets[key] = (tokens, t)
        return (cost - tokens) / self.rate

    def wait(self, key: Hashable, now: float | None = None) -> float:
        """Seconds until `key` has a whole token again (0.0 if it has one); takes nothing."""
        entry = self._buckets.get(key)
        if entry is None:
            return 0.0
        t = time.monotonic() if now is None else now
        tokens = min(self.burst, entry[0] + (t - entry[1]) * self.rate)
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        # A bucket that has refilled completely is indistinguishable from a new one.
        full_after = self.burst / self.rate
        stale = [k for k, (_, last) in self._buckets.items() if now - last >= full_after]
        for key in stale:
            del self._buckets[key]
        if len(self._buckets) >= self._max_keys:
            # Under a flood of distinct keys, forget the oldest half rather than grow.
            by_age = sorted(self._buckets.items(), key=lambda kv: kv[1][1])
            for key, _ in by_age[: len(by_age) // 2]:
                del self._buckets[key]


def too_many_requests(retry_after: float, what: str) -> ApiError:
    """The 429 error with a Retry-After header (whole seconds, at least 1)."""
    seconds = max(1, math.ceil(retry_after))
    return ApiError(
        429,
        "rate_limited",
        f"too many {what}; retry in {seconds} s",
        headers={"Retry-After": str(seconds)},
    )


class RateLimiter:
    """The backend's limiters. `check_*` raise ApiError(429); `ws_*` return the seconds to
    wait (0.0 when allowed), for the WebSocket, which cannot answer with HTTP status."""

    def __init__(self, config: RateLimitSettings) -> None:
        self.config = config
        self.enabled = config.enabled
        self._exempt = frozenset(config.exempt_ips)
        self.rest_user = TokenBucketLimiter.from_config(config.rest_per_user)
        self.rest_ip = TokenBucketLimiter.from_config(config.rest_per_ip)
        self.auth_ip = TokenBucketLimiter.from_config(config.auth_per_ip)
        self.login_failures = TokenBucketLimiter.from_config(config.login_failures_per_username)
        self.ws_user = TokenBucketLimiter.from_config(config.ws_messages_per_user)
        self.ws_ip = TokenBucketLimiter.from_config(config.ws_messages_per_ip)
        self.ws_connect_ip = TokenBucketLimiter.from_config(config.ws_connections_per_ip)

    def _ip_limited(self, ip: str | None) -> bool:
        return self.enabled and ip is not None and ip not in self._exempt

    def rest_ip_wait(self, ip: str | None) -> float:
        """Seconds to wait before this IP may make another REST request (0.0: go)."""
        return self.rest_ip.hit(ip) if self._ip_limited(ip) else 0.0

    def check_rest_user(self, user_id: int) -> None:
        """Raises ApiError(429) when the user is over the REST limit."""
        if self.enabled and (wait := self.rest_user.hit(user_id)):
            raise too_many_requests(wait, "requests")

    def check_auth_ip(self, ip: str | None) -> None:
        """Raises ApiError(429) when this IP is over the login/registration limit."""
        if self._ip_limited(ip) and (wait := self.auth_ip.hit(ip)):
            raise too_many_requests(wait, "login or registration attempts")

    def check_login_allowed(self, username_key: str) -> None:
        """Raises ApiError(429) while `username_key` has used up its failed-login budget."""
        if self.enabled and (wait := self.login_failures.wait(username_key)):
            raise too_many_requests(wait, "failed logins for this user")

    def record_login_failure(self, username_key: str) -> None:
        """Charge one failed login to `username_key` (takes nothing when already empty)."""
        if self.enabled:
            self.login_failures.hit(username_key)

    def ws_connect_wait(self, ip: str | None) -> float:
        return self.ws_connect_ip.hit(ip) if self._ip_limited(ip) else 0.0

    def ws_message_wait(self, user_id: int | None, ip: str | None) -> float:
        """For each client WebSocket message: the per-IP and (once authenticated)
        per-user buckets. Returns seconds to wait; 0.0 when the message may proceed."""
        if not self.enabled:
            return 0.0
        if self._ip_limited(ip) and (wait := self.ws_ip.hit(ip)):
            return wait
        if user_id is not None:
            return self.ws_user.hit(user_id)
        return 0.0


__all__ = ["RateLimiter", "TokenBucketLimiter", "too_many_requests"]
