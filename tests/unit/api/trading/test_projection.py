"""Waiting for the projection: each commit releases exactly the callers it satisfies."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from hft.api.trading.projection import FeeSchedule, Projection


def _projection() -> Projection:
    def no_sessions() -> None:
        raise AssertionError("no database in this test")

    return Projection(no_sessions, lambda _seq: None, FeeSchedule(Decimal(0), Decimal(0), 2))  # type: ignore[arg-type]


async def test_waiters_are_released_by_the_commit_that_covers_them() -> None:
    p = _projection()
    tasks = {seq: asyncio.create_task(p.wait_applied(seq, 5.0)) for seq in (3, 1, 7, 5)}
    await asyncio.sleep(0)
    p._advance(4)
    await asyncio.sleep(0)
    assert {s for s, t in tasks.items() if t.done()} == {1, 3}
    p._advance(2)  # an older commit never moves the mark back
    assert p.applied_through == 4
    p._advance(7)
    assert await asyncio.gather(*tasks.values()) == [True] * 4
    assert await p.wait_applied(6, 0.0)


async def test_a_timeout_is_false_and_leaves_later_waiters_alone() -> None:
    p = _projection()
    late = asyncio.create_task(p.wait_applied(10, 5.0))
    assert not await p.wait_applied(9, 0.01)
    cancelled = asyncio.create_task(p.wait_applied(8, 5.0))
    await asyncio.sleep(0)
    cancelled.cancel()
    p._advance(10)
    assert await late
    assert cancelled.cancelled()
    assert p._waiters == []
