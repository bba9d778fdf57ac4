"""The user cache behind authentication (hft.api.deps.UserCache)."""

from __future__ import annotations

import asyncio
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


class _Reader:
    """A `read` callback that blocks until released and counts its calls."""

    def __init__(self, result: User | None = None, error: Exception | None = None) -> None:
        self.calls = 0
        self.release = asyncio.Event()
        self.result, self.error = result, error

    async def __call__(self) -> User | None:
        self.calls += 1
        await self.release.wait()
        if self.error is not None:
            raise self.error
        return self.result


async def test_concurrent_misses_read_the_user_once() -> None:
    cache = UserCache(ttl=60)
    read = _Reader(_user())
    loads = [asyncio.create_task(cache.load(7, read)) for _ in range(20)]
    await asyncio.sleep(0)
    read.release.set()
    users = await asyncio.gather(*loads)
    assert read.calls == 1
    assert {u.id for u in users if u is not None} == {7}
    assert len({id(u) for u in users}) == 20  # each request still gets its own copy


async def test_a_failed_read_lets_each_waiter_read_for_itself() -> None:
    cache = UserCache(ttl=60)
    failing = _Reader(error=ConnectionError("database gone"))
    leader = asyncio.create_task(cache.load(7, failing))
    await asyncio.sleep(0)
    follower_read = _Reader(_user())
    follower_read.release.set()
    follower = asyncio.create_task(cache.load(7, follower_read))
    await asyncio.sleep(0)
    failing.release.set()
    with pytest.raises(ConnectionError):
        await leader
    assert (await follower) is not None
    assert follower_read.calls == 1


async def test_an_inactive_user_is_read_by_every_request_and_never_cached() -> None:
    cache = UserCache(ttl=60)
    read = _Reader(_user(active=False))
    read.release.set()
    assert (await cache.load(7, read)).is_active is False  # type: ignore[union-attr]
    assert (await cache.load(7, read)).is_active is False  # type: ignore[union-attr]
    assert read.calls == 2
    assert cache.get(7) is None


async def test_a_cancelled_waiter_does_not_cancel_the_others() -> None:
    cache = UserCache(ttl=60)
    read = _Reader(_user())
    leader = asyncio.create_task(cache.load(7, read))
    await asyncio.sleep(0)
    gone, staying = (asyncio.create_task(cache.load(7, read)) for _ in range(2))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    read.release.set()
    assert (await leader) is not None
    assert (await staying) is not None
    assert gone.cancelled()
    assert read.calls == 1


async def test_without_a_cache_every_load_reads() -> None:
    cache = UserCache(ttl=0)
    read = _Reader(_user())
    read.release.set()
    await asyncio.gather(*(cache.load(7, read) for _ in range(3)))
    assert read.calls == 3
