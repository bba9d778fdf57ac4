"""Reconciliation of orders whose fate the backend does not know.

An order is written `pending_new` before it is sent; when the engine did not answer
(down, deadline) the order may or may not exist there. Unknown is not failed: the order
stays pending until this task proves the engine never sequenced it. The proof: the
projection has applied everything up to the engine's last sequence, taken *after* the
order's grace period (longer than any request deadline) ran out, and the order has
still seen no event. Such orders are rejected with reason `engine_unavailable` and their
reservation released. Amends are settled by the same proof: an amend the engine did not
answer stays in flight (its hold and reservation counted) until the projection has
applied everything up to a sequence taken after the grace period of the order's latest
amend; what is still in flight then was never sequenced, and is released. It runs at
start and then periodically.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING

from sqlalchemy import select

from hft.api.trading import metrics
from hft.api.trading.repo import lock_order_and_account
from hft.db.base import utcnow
from hft.db.models.trading import OrderRow
from hft.db.session import write_transaction
from hft.engine.client import EngineError
from hft.services.orders import OPEN_STATUSES
from hft.services.risk import reservation

if TYPE_CHECKING:
    from hft.api.trading.runtime import TradingRuntime


log = logging.getLogger("hft.api.trading.reconcile")


async def release_amends(
    rt: TradingRuntime, order_id: int, *, sent_before: datetime | None
) -> bool:
    """Take amends the engine never sequenced off `order_id`: one (an amend it refused),
    or, with `sent_before`, all of them if none was sent since (reconciliation proved
    that every amend sent before then was answered or never sequenced). With none left
    in flight the hold ends and the reservation is again what the order's price and
    leaves need. False if there was nothing to release."""
    async with rt.db.session() as session, write_transaction(session):
        account, order = await lock_order_and_account(session, order_id)
        if order is None or account is None or order.amends_in_flight == 0:
            return False
        if sent_before is None:
            order.amends_in_flight -= 1
        elif order.amend_sent_at is None or order.amend_sent_at < sent_before:
            order.amends_in_flight = 0
        else:
            return False
        if order.amends_in_flight > 0:
            return True
        order.amend_leaves_lots = None
        inst = rt.instruments.get(order.symbol)
        if order.status in OPEN_STATUSES and inst is not None:
            exact = reservation(
                order.side,
                order.price_ticks,
                order.leaves_lots,
                inst,
                rt.settings.taker_fee_bps,
                rt.settings.money_decimals,
            )
            account.reserved_cash = account.reserved_cash + exact - order.reserved
            order.reserved = exact
    return True


async def reject_unsequenced(rt: TradingRuntime, order_id: int, reason: str) -> bool:
    """Reject a `pending_new` order the engine never sequenced and release its
    reservation; counted and announced like any other change of an order. False if it
    was no longer such an order (the engine's answer got there first)."""
    async with rt.db.session() as session, write_transaction(session):
        account, order = await lock_order_and_account(session, order_id)
        if order is None or order.status != "pending_new" or order.last_sequence != 0:
            return False
        if account is not None:
            account.reserved_cash = account.reserved_cash - order.reserved
        order.reserved = Decimal(0)
        order.status, order.reason, order.leaves_lots = "rejected", reason, 0
        order.updated_at = utcnow()
    metrics.ORDERS_BY("rejected").inc()
    if rt.hub is not None:
        rt.hub.order_changed(order)
    return True


class Reconciler:
    def __init__(self, runtime: TradingRuntime) -> None:
        self.runtime = runtime
        self.resolved = 0
        self.released_amends = 0

    async def run(self) -> None:
        interval = self.runtime.settings.reconcile_interval_s
        while True:
            try:
                await self.reconcile_once()
            except asyncio.CancelledError:
                raise
            except EngineError:
                pass
            except Exception:
                log.exception("reconciliation failed")
            await asyncio.sleep(interval)

    async def reconcile_once(self) -> int:
        """Resolve stale pending orders the engine never saw, and release the amends it
        never saw; returns how many orders were resolved."""
        rt = self.runtime
        cutoff = datetime.now(UTC) - timedelta(seconds=rt.settings.reconcile_grace_s)
        async with rt.db.session() as session:
            stale = (
                (
                    await session.execute(
                        select(OrderRow.id).where(
                            OrderRow.status == "pending_new",
                            OrderRow.created_at < cutoff,
                            OrderRow.last_sequence == 0,
                        )
                    )
                )
                .scalars()
                .all()
            )
            amended = (
                (
                    await session.execute(
                        select(OrderRow.id).where(
                            OrderRow.amends_in_flight > 0, OrderRow.amend_sent_at < cutoff
                        )
                    )
                )
                .scalars()
                .all()
            )
        if not stale and not amended:
            return 0
        # Everything the engine sequenced up to now must be in the database first.
        health = await rt.call("health", rt.client.health)
        target = int(health.last_sequence)
        # The last command may have had no execution events, so "applied through the
        # target" can stay false; an idle, connected stream after the wait is as good.
        caught_up = await rt.projection.wait_applied(target, 2.0)
        if not caught_up and not rt.projection.idle():
            return 0
        released = 0
        for order_id in amended:
            if await release_amends(rt, order_id, sent_before=cutoff):
                released += 1
        self.released_amends += released
        if released:
            log.warning(
                "reconciliation released the amends of %d order(s) the engine never saw",
                released,
            )
        resolved = 0
        for order_id in stale:
            live = await rt.call("get_order", partial(rt.client.get_order, order_id))
            if live.found:
                continue
            if await reject_unsequenced(rt, order_id, "engine_unavailable"):
                resolved += 1
        self.resolved += resolved
        if resolved:
            log.warning("reconciliation rejected %d order(s) the engine never saw", resolved)
        return resolved
