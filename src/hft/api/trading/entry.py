"""Order entry with group commit: the risk check, `pending_new` insert, reservation and
audit record of many concurrent orders in one serialized write transaction.

Each order is checked in arrival order against the account as the orders before it in
the same transaction left it (inserts are flushed one by one, so open-order counts and
reservations include them), exactly as if each had its own transaction; only the commit
(and its fsync) is shared. A constraint violation (a raced client_order_id) rolls the
batch back, and its orders are then written one transaction each, so only the offending
request sees the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError

from hft.api.audit import record
from hft.api.trading.repo import open_exposure, position_quantity
from hft.db.models.auth import Account
from hft.db.models.trading import OrderRow
from hft.db.session import lock_account, write_transaction
from hft.services.errors import RiskRejectedError, ServiceError
from hft.services.instruments import InstrumentInfo
from hft.services.risk import AccountSnapshot, check_order

if TYPE_CHECKING:
    from hft.api.trading.runtime import TradingRuntime

log = logging.getLogger("hft.api.trading.entry")

MAX_BATCH = 256


class AccountMissingError(Exception):
    """The user's trading account does not exist."""


@dataclass
class EntryRequest:
    """One order to write: the row's values, what risk needs, and the audit context."""

    values: dict[str, Any]
    inst: InstrumentInfo
    check_risk: bool
    user_id: int
    audit: dict[str, Any]
    ip: str | None
    request_id: str | None
    future: asyncio.Future[OrderRow] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class OrderEntry:
    def __init__(self, runtime: TradingRuntime) -> None:
        self.rt = runtime
        self._queue: asyncio.Queue[EntryRequest] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.orders = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="order-entry")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if not item.future.done():
                item.future.set_exception(RuntimeError("the backend is stopping"))

    async def submit(self, item: EntryRequest) -> OrderRow:
        """Write the order (risk-checked); raises ServiceError (risk), IntegrityError
        (client_order_id taken) or AccountMissingError."""
        if self._task is None or self._task.done():
            await self._write([item])
        else:
            self._queue.put_nowait(item)
        return await item.future

    async def _loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            batch = [b for b in batch if not b.future.done()]
            if not batch:
                continue
            try:
                await self._write(batch)
            except IntegrityError:
                for item in batch:
                    if item.future.done():
                        continue
                    try:
                        await self._write([item])
                    except Exception as exc:
                        if not item.future.done():
                            item.future.set_exception(exc)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("order entry batch of %d failed", len(batch))
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)

    async def _write(self, batch: list[EntryRequest]) -> None:
        rt = self.rt
        results: list[tuple[EntryRequest, OrderRow | BaseException]] = []
        accounts: dict[int, Account] = {}
        async with rt.db.session() as session, write_transaction(session):
            # Row locks in ascending account id, like the projection, so the two can
            # never deadlock on PostgreSQL.
            for account_id in sorted({int(i.values["account_id"]) for i in batch}):
                locked = await lock_account(session, account_id)
                if locked is not None:
                    accounts[account_id] = locked
            for item in batch:
                account = accounts.get(int(item.values["account_id"]))
                if account is None:
                    results.append((item, AccountMissingError()))
                    continue
                order = OrderRow(**item.values)
                if item.check_risk:
                    try:
                        reserve = await self._check(session, account, order, item.inst)
                    except ServiceError as exc:
                        results.append((item, exc))
                        continue
                    order.reserved = reserve
                    account.reserved_cash = account.reserved_cash + reserve
                session.add(order)
                await session.flush()
                record(
                    session,
                    "order.create",
                    user_id=item.user_id,
                    target=f"order:{order.id}",
                    details=item.audit,
                    ip=item.ip,
                    request_id=item.request_id,
                )
                results.append((item, order))
        self.batches += 1
        self.orders += len(batch)
        for item, result in results:
            if item.future.done():
                continue
            if isinstance(result, BaseException):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)

    async def _check(
        self, session: Any, account: Account, order: OrderRow, inst: InstrumentInfo
    ) -> Decimal:
        rt = self.rt
        n_open, open_buy, open_sell = await open_exposure(session, account.id, order.symbol)
        limits, halted = await rt.limits_for(session, account.id)
        snapshot = AccountSnapshot(
            cash=account.cash,
            reserved=account.reserved_cash,
            trading_enabled=account.trading_enabled,
            position=await position_quantity(session, account.id, order.symbol),
            open_buy=inst.quantity(open_buy),
            open_sell=inst.quantity(open_sell),
            open_orders=n_open,
        )
        return check_order(
            side=order.side,
            price_ticks=order.price_ticks,
            quantity_lots=order.quantity_lots,
            inst=inst,
            account=snapshot,
            limits=limits,
            global_halt=halted,
            taker_fee_bps=rt.settings.taker_fee_bps,
            places=rt.settings.money_decimals,
        )


__all__ = ["AccountMissingError", "EntryRequest", "OrderEntry", "RiskRejectedError"]
