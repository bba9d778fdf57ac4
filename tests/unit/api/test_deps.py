"""The user cache behind authentication (hft.api.deps.UserCache)."""

from __future__ import annotations

import time

import pytest

from hft.api.deps import UserCache
from hft.db.models.auth import User


def _user(user_id: int = 7, *, active: bool = True, role: str = "trader") -> User:
    return User(
        id=user_id,
        username="Alice",
        username_key="alice",
        password_hash="h",
        role=role,
        is_active=active,
    )


def test_hit_returns_a_separate_copy() -> None:
    cache = UserCache(ttl=60)
    cache.put(_user())
    first, second = cache.get(7), cache.get(7)
    assert first is not None
    assert second is not None
    assert first is not second
    assert (first.id, first.username, first.role, first.is_active) == (7, "Alice", "trader", True)
    first.role = "admin"
    assert second.role == "trader"
    assert cache.get(7).role == "trader"  # type: ignore[union-attr]


def test_inactive_users_are_never_remembered() -> None:
    cache = UserCache(ttl=60)
    cache.put(_user(active=False))
    assert cache.get(7) is None


def test_entries_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    cache = UserCache(ttl=2)
    cache.put(_user())
    now[0] += 1.9
    assert cache.get(7) is not None
    now[0] += 0.2
    assert cache.get(7) is None


def test_forget_and_zero_ttl() -> None:
    cache = UserCache(ttl=60)
    cache.put(_user())
    cache.forget(7)
    assert cache.get(7) is None
    off = UserCache(ttl=0)
    off.put(_user())
    assert off.get(7) is None


def test_capacity_bounds_memory() -> None:
    cache = UserCache(ttl=60, capacity=3)
    for i in range(10):
        cache.put(_user(i))
    assert sum(cache.get(i) is not None for i in range(10)) <= 3
    assert cache.get(9) is not None


def test_verified_tokens_are_remembered_until_they_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [5000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    cache = UserCache(ttl=2)
    assert cache.token_user("tok") is None
    cache.remember_token("tok", 7, expires=5010)
    assert cache.token_user("tok") == 7
    assert cache.token_user("tok2") is None
    now[0] = 5009.9
    assert cache.token_user("tok") == 7
    now[0] = 5010.0
    assert cache.token_user("tok") is None
    off = UserCache(ttl=0)
    off.remember_token("tok", 7, expires=6000)
    assert off.token_user("tok") is None
