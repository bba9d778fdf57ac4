"""The projection: applies the engine's execution stream to the database, exactly once.

One reader follows `ExecutionSubscriber` from the stored cursor into a bounded queue; the
applier takes whatever has arrived (up to `projection_batch` events) and applies it in
one write transaction that also advances `engine_cursor`. Events at or below the cursor
are skipped inside that transaction, so a restart of either process, or two backend
processes racing, can never apply an event twice; an event is applied or it is not.

This is the only writer of executions: order status, filled quantity and average price,
fills (maker and taker, with fees), positions, cash, reservation release, the public
trade tape and candles. Request handlers wait for `wait_applied(sequence)` and then read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from hft.api.trading import metrics
from hft.db.models.auth import Account
from hft.db.models.trading import (
    CandleRow,
    EngineCursor,
    FillRow,
    InstrumentRow,
    OrderRow,
    PositionRow,
    TradeRow,
)
from hft.db.session import write_transaction
from hft.engine.pb import engine_pb2 as pb
from hft.services.candles import INTERVALS, bucket_start
from hft.services.decimals import from_units
from hft.services.portfolio import Position, apply_fill
from hft.services.risk import fee as fee_of
from hft.services.risk import reservation

log = logging.getLogger("hft.api.trading.projection")

REJECT_REASONS: dict[int, str] = {
    pb.REJECT_REASON_UNKNOWN_SYMBOL: "unknown_symbol",
    pb.REJECT_REASON_SYMBOL_HALTED: "symbol_halted",
    pb.REJECT_REASON_INVALID_QUANTITY: "invalid_quantity",
    pb.REJECT_REASON_QUANTITY_OUT_OF_RANGE: "quantity_out_of_range",
    pb.REJECT_REASON_PRICE_NOT_POSITIVE: "invalid_price",
    pb.REJECT_REASON_PRICE_OUT_OF_BAND: "price_out_of_band",
    pb.REJECT_REASON_POST_ONLY_WOULD_TAKE: "post_only_would_take",
    pb.REJECT_REASON_FOK_CANNOT_FILL: "fok_unfilled",
    pb.REJECT_REASON_MARKET_NO_LIQUIDITY: "market_no_liquidity",
    pb.REJECT_REASON_DUPLICATE_ORDER_ID: "duplicate_order_id",
    pb.REJECT_REASON_MAX_OPEN_ORDERS: "max_open_orders",
    pb.REJECT_REASON_KILL_SWITCH: "kill_switch",
    pb.REJECT_REASON_UNKNOWN_ORDER: "unknown_order",
    pb.REJECT_REASON_BOOK_FULL: "book_full",
}
CANCEL_REASONS: dict[int, str] = {
    pb.CANCEL_REASON_USER: "user",
    pb.CANCEL_REASON_IOC_REMAINDER: "ioc_remainder",
    pb.CANCEL_REASON_SELF_TRADE: "self_trade",
    pb.CANCEL_REASON_KILL_SWITCH: "kill_switch",
}
OPEN = ("pending_new", "new", "partially_filled")


def reject_reason(code: int) -> str:
    return REJECT_REASONS.get(code, "rejected")


def ns_to_datetime(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC) if ns > 0 else datetime.now(UTC)


@dataclass(slots=True)
class FeeSchedule:
    maker_bps: Decimal
    taker_bps: Decimal
    places: int

    def fee(self, notional: Decimal, liquidity: str) -> Decimal:
        bps = self.maker_bps if liquidity == "maker" else self.taker_bps
        return fee_of(notional, bps, self.places, rounding=ROUND_HALF_EVEN)


@dataclass(slots=True)
class AppliedBatch:
    """What one committed batch changed, for the WebSocket fan-out."""

    orders: dict[int, OrderRow] = field(default_factory=dict)
    fills: list[FillRow] = field(default_factory=list)
    accounts: set[int] = field(default_factory=set)
    account_values: dict[int, tuple[Decimal, Decimal]] = field(default_factory=dict)
    candles: list[CandleRow] = field(default_factory=list)


class _Step:
    def __init__(self, tick: str, lot: str) -> None:
        self.tick_size = Decimal(tick or "1")
        self.lot_size = Decimal(lot or "1")

    def price(self, ticks: int) -> Decimal:
        return from_units(ticks, self.tick_size)

    def quantity(self, lots: int) -> Decimal:
        return from_units(lots, self.lot_size)


def _inst_view(ev: pb.ExecutionEvent) -> Any:
    return _Step(ev.tick_size, ev.lot_size)


async def load_cursor(session: AsyncSession, *, lock: bool) -> EngineCursor:
    """The single cursor row (created on first use)."""
    stmt = select(EngineCursor).where(EngineCursor.id == 1)
    if lock:
        stmt = stmt.with_for_update()
    cursor = (await session.execute(stmt)).scalar_one_or_none()
    if cursor is None:
        cursor = EngineCursor(id=1, sequence=0, idx=-1)
        session.add(cursor)
        await session.flush()
    return cursor


class BatchApplier:
    """Applies a list of execution events inside an open write transaction."""

    def __init__(self, session: AsyncSession, fees: FeeSchedule) -> None:
        self.session = session
        self.fees = fees
        self.out = AppliedBatch()
        self._orders: dict[int, OrderRow] = {}
        self._accounts: dict[int, Account] = {}
        self._positions: dict[tuple[int, str], PositionRow] = {}
        self._candles: dict[tuple[str, str, int], CandleRow] = {}
        self._last_price: dict[str, int] = {}

    async def apply(self, events: list[pb.ExecutionEvent], cursor: EngineCursor) -> int:
        """Apply the events after the cursor; returns how many were applied."""
        todo = [e for e in events if (e.sequence, e.index) > (cursor.sequence, cursor.idx)]
        if not todo:
            return 0
        await self._preload(todo)
        before = {oid: o.status for oid, o in self._orders.items()}
        for ev in todo:
            self._apply_one(ev)
            metrics.PROJECTION_EVENTS.labels(pb.EventType.Name(ev.type)).inc()
        await self._flush_side_tables()
        for oid, order in self.out.orders.items():
            if before.get(oid) != order.status:
                metrics.ORDERS.labels(order.status).inc()
        last = todo[-1]
        cursor.sequence, cursor.idx = last.sequence, last.index
        return len(todo)

    async def _preload(self, events: list[pb.ExecutionEvent]) -> None:
        ids: set[int] = set()
        for ev in events:
            ids.add(ev.order_id)
            if ev.type == pb.EVENT_TYPE_TRADE:
                ids.add(ev.maker_order_id)
        ids.discard(0)
        account_ids: set[int] = set()
        if ids:
            # Only the owners here (an order's account never changes): the rows
            # themselves are read below, under the account locks.
            owners = await self.session.execute(
                select(OrderRow.account_id).where(OrderRow.id.in_(ids)).distinct()
            )
            account_ids = {int(a) for a in owners.scalars()}
        if account_ids:
            # Account rows in id order, then the orders: the lock order of every writer.
            # An order's `reserved` changes only together with its account under that
            # account's lock (an amend raises it before the engine sees the amend), so
            # orders read before the lock could carry a reservation the account no
            # longer matches, and re-reserving from it would double-count the change.
            accounts = await self.session.execute(
                select(Account)
                .where(Account.id.in_(sorted(account_ids)))
                .order_by(Account.id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
            self._accounts = {a.id: a for a in accounts.scalars()}
            rows = await self.session.execute(
                select(OrderRow)
                .where(OrderRow.id.in_(ids))
                .order_by(OrderRow.id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
            self._orders = {o.id: o for o in rows.scalars()}
            symbols = {o.symbol for o in self._orders.values()}
            rows2 = await self.session.execute(
                select(PositionRow).where(
                    PositionRow.account_id.in_(account_ids), PositionRow.symbol.in_(symbols)
                )
            )
            self._positions = {(p.account_id, p.symbol): p for p in rows2.scalars()}
        keys: set[tuple[str, str, int]] = set()
        for ev in events:
            if ev.type == pb.EVENT_TYPE_TRADE:
                for interval in INTERVALS:
                    keys.add((ev.symbol, interval, bucket_start(ev.timestamp_ns, interval)))
        if keys:
            rows3 = await self.session.execute(
                select(CandleRow).where(
                    tuple_(CandleRow.symbol, CandleRow.interval, CandleRow.start).in_(sorted(keys))
                )
            )
            self._candles = {(c.symbol, c.interval, c.start): c for c in rows3.scalars()}

    def _own(self, order_id: int, account_id: int) -> OrderRow | None:
        """Our order row for an engine order, if the account matches (the engine may also
        carry orders of other clients that reuse ids)."""
        order = self._orders.get(order_id)
        if order is None or order.account_id != account_id:
            return None
        return order

    def _apply_one(self, ev: pb.ExecutionEvent) -> None:
        kind = ev.type
        if kind == pb.EVENT_TYPE_TRADE:
            self._trade(ev)
            return
        order = self._own(ev.order_id, ev.account_id)
        if order is None:
            return
        now = ns_to_datetime(ev.timestamp_ns)
        step = _inst_view(ev)
        if kind == pb.EVENT_TYPE_ACCEPTED:
            if order.status in ("pending_new", "rejected"):
                order.status = "new" if order.filled_lots == 0 else "partially_filled"
                order.reason = None
            order.leaves_lots = ev.leaves_quantity
        elif kind == pb.EVENT_TYPE_REJECTED:
            order.status = "rejected"
            order.reason = reject_reason(ev.reject_reason)
            order.leaves_lots = 0
        elif kind == pb.EVENT_TYPE_CANCELED:
            order.status = "canceled"
            reason = CANCEL_REASONS.get(ev.cancel_reason, "canceled")
            if reason == "ioc_remainder" and order.type == "market" and order.filled_lots == 0:
                reason = "market_no_liquidity"
            order.reason = reason
            order.leaves_lots = 0
        elif kind == pb.EVENT_TYPE_EXPIRED:
            order.status = "expired"
            order.reason = "day_expired"
            order.leaves_lots = 0
        elif kind == pb.EVENT_TYPE_AMENDED:
            order.price_ticks = ev.price
            if order.type == "limit":
                order.price = step.price(ev.price)
            order.leaves_lots = ev.quantity
            order.quantity_lots = order.filled_lots + ev.quantity
            order.quantity = step.quantity(order.quantity_lots)
        elif kind not in (pb.EVENT_TYPE_CANCEL_REJECTED, pb.EVENT_TYPE_AMEND_REJECTED):
            return
        order.last_sequence = ev.sequence
        order.updated_at = now
        self._rereserve(order, step)
        self.out.orders[order.id] = order

    def _rereserve(self, order: OrderRow, step: Any) -> None:
        """Reservation = f(side, price, leaves) while open, 0 once final."""
        if order.status in OPEN:
            new = reservation(
                order.side,
                order.price_ticks,
                order.leaves_lots,
                step,
                self.fees.taker_bps,
                self.fees.places,
            )
        else:
            new = Decimal(0)
        delta = new - order.reserved
        if delta != 0:
            account = self._accounts.get(order.account_id)
            if account is not None:
                account.reserved_cash = account.reserved_cash + delta
                self.out.accounts.add(account.id)
            order.reserved = new

    def _trade(self, ev: pb.ExecutionEvent) -> None:
        step = _inst_view(ev)
        price = step.price(ev.price)
        qty = step.quantity(ev.quantity)
        when = ns_to_datetime(ev.timestamp_ns)
        taker_side = "buy" if ev.side == pb.SIDE_BUY else "sell"
        maker_side = "sell" if taker_side == "buy" else "buy"
        self.session.add(
            TradeRow(
                trade_id=ev.trade_id,
                symbol=ev.symbol,
                price=price,
                quantity=qty,
                taker_side=taker_side,
                sequence=ev.sequence,
                time=when,
            )
        )
        self._candle(ev.symbol, ev.timestamp_ns, price, qty)
        self._last_price[ev.symbol] = ev.price
        for order_id, account_id, side, leaves, liquidity in (
            (ev.order_id, ev.account_id, taker_side, ev.leaves_quantity, "taker"),
            (ev.maker_order_id, ev.maker_account_id, maker_side, ev.maker_leaves_quantity, "maker"),
        ):
            order = self._own(order_id, account_id)
            if order is None:
                continue
            self._fill(order, ev, step, side, price, qty, leaves, liquidity, when)

    def _fill(
        self,
        order: OrderRow,
        ev: pb.ExecutionEvent,
        step: Any,
        side: str,
        price: Decimal,
        qty: Decimal,
        leaves: int,
        liquidity: str,
        when: datetime,
    ) -> None:
        notional = price * qty
        fee = self.fees.fee(notional, liquidity)
        order.filled_lots += ev.quantity
        order.leaves_lots = leaves
        order.filled_quantity = step.quantity(order.filled_lots)
        order.filled_notional = order.filled_notional + notional
        order.average_price = (order.filled_notional / order.filled_quantity).quantize(
            Decimal("0.00000001"), rounding=ROUND_HALF_EVEN
        )
        order.fees = order.fees + fee
        if order.status in OPEN or order.status == "rejected":
            order.status = "filled" if leaves == 0 else "partially_filled"
            order.reason = None
        order.last_sequence = ev.sequence
        order.updated_at = when
        fill = FillRow(
            trade_id=ev.trade_id,
            order_id=order.id,
            account_id=order.account_id,
            symbol=order.symbol,
            side=side,
            price=price,
            quantity=qty,
            liquidity=liquidity,
            fee=fee,
            sequence=ev.sequence,
            time=when,
        )
        self.session.add(fill)
        self.out.fills.append(fill)
        key = (order.account_id, order.symbol)
        pos_row = self._positions.get(key)
        if pos_row is None:
            pos_row = PositionRow(
                account_id=order.account_id,
                symbol=order.symbol,
                quantity=Decimal(0),
                cost_basis=Decimal(0),
                realized_pnl=Decimal(0),
                fees=Decimal(0),
            )
            self.session.add(pos_row)
            self._positions[key] = pos_row
        effect = apply_fill(
            Position(pos_row.quantity, pos_row.cost_basis, pos_row.realized_pnl, pos_row.fees),
            side,
            qty,
            price,
            fee,
            self.fees.places,
        )
        pos_row.quantity = effect.position.quantity
        pos_row.cost_basis = effect.position.cost_basis
        pos_row.realized_pnl = effect.position.realized_pnl
        pos_row.fees = effect.position.fees
        account = self._accounts.get(order.account_id)
        if account is not None:
            account.cash = account.cash + effect.cash_delta
            self.out.accounts.add(account.id)
        self._rereserve(order, step)
        self.out.orders[order.id] = order

    def _candle(self, symbol: str, ts_ns: int, price: Decimal, qty: Decimal) -> None:
        for interval in INTERVALS:
            key = (symbol, interval, bucket_start(ts_ns, interval))
            row = self._candles.get(key)
            if row is None:
                row = CandleRow(
                    symbol=symbol,
                    interval=interval,
                    start=key[2],
                    open=price,
                    high=price,
                    low=price,
                    close=price,
                    volume=qty,
                    trades=1,
                )
                self.session.add(row)
                self._candles[key] = row
            else:
                row.high = max(row.high, price)
                row.low = min(row.low, price)
                row.close = price
                row.volume = row.volume + qty
                row.trades = row.trades + 1

    async def _flush_side_tables(self) -> None:
        if self._last_price:
            rows = await self.session.execute(
                select(InstrumentRow).where(InstrumentRow.symbol.in_(self._last_price))
            )
            for inst in rows.scalars():
                inst.last_price = self._last_price[inst.symbol]
                inst.reference_price = self._last_price[inst.symbol]
        self.out.candles = list(self._candles.values())
        for account_id in self.out.accounts:
            account = self._accounts[account_id]
            self.out.account_values[account_id] = (account.cash, account.reserved_cash)


Listener = Callable[[AppliedBatch], None]


class Projection:
    """Follows the engine's executions and applies them; see the module docstring."""

    def __init__(
        self,
        sessionmaker: Callable[[], AsyncSession],
        subscriber_factory: Callable[[int], Any],
        fees: FeeSchedule,
        *,
        batch: int = 500,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._subscriber_factory = subscriber_factory
        self.fees = fees
        self.batch = batch
        # Every event of sequences <= applied_through is in the database.
        self.applied_through = 0
        self.last: tuple[int, int] = (0, -1)
        self.connected = False
        self.listeners: list[Listener] = []
        # Whole commands (all events of one sequence), so a batch never ends half way
        # through a command and a waiter is released after one transaction.
        self._queue: asyncio.Queue[list[pb.ExecutionEvent]] = asyncio.Queue(maxsize=20_000)
        self._cond = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._subscriber: Any = None
        self.lag_samples: list[float] = []
        self._busy = False
        self.record_lag = False

    async def start(self) -> None:
        async with self._sessionmaker() as session, session.begin():
            cursor = await load_cursor(session, lock=False)
            self.last = (cursor.sequence, cursor.idx)
        # A cursor in the middle of a sequence means that sequence is not complete yet.
        self.applied_through = max(0, self.last[0] - 1) if self.last[1] >= 0 else 0
        self._subscriber = self._subscriber_factory(self.last[0])
        self._tasks = [
            asyncio.create_task(self._read(), name="projection-read"),
            asyncio.create_task(self._apply_loop(), name="projection-apply"),
        ]

    async def stop(self) -> None:
        if self._subscriber is not None:
            with contextlib.suppress(Exception):
                await self._subscriber.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _read(self) -> None:
        while True:
            try:
                command: list[pb.ExecutionEvent] = []
                async for ev in self._subscriber:
                    self.connected = True
                    command.append(ev)
                    if ev.last_in_sequence:
                        await self._queue.put(command)
                        command = []
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                self.connected = False
                log.exception("execution stream failed; restarting it")
                await asyncio.sleep(1.0)
                self._subscriber = self._subscriber_factory(self.last[0])

    async def _apply_loop(self) -> None:
        while True:
            batch = list(await self._queue.get())
            self._busy = True
            while len(batch) < self.batch and not self._queue.empty():
                batch.extend(self._queue.get_nowait())
            metrics.PROJECTION_LAG.set(self._queue.qsize())
            while True:
                try:
                    result = await self._apply(batch)
                    break
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # The database is down or busy: nothing was committed (one transaction),
                    # so the same batch is retried until it goes through.
                    log.exception("applying %d execution events failed; retrying", len(batch))
                    await asyncio.sleep(0.5)
            now_ns = time.time_ns()
            for ev in batch:
                if ev.timestamp_ns > 0:
                    lag = max(0.0, (now_ns - ev.timestamp_ns) / 1e9)
                    metrics.PROJECTION_LAG_SECONDS.observe(lag)
                    if self.record_lag:
                        self.lag_samples.append(lag)
            last = batch[-1]
            self.last = (last.sequence, last.index)
            through = last.sequence if last.last_in_sequence else last.sequence - 1
            async with self._cond:
                self.applied_through = max(self.applied_through, through)
                self._cond.notify_all()
            self._busy = False
            if result is not None:
                for listener in self.listeners:
                    try:
                        listener(result)
                    except Exception:
                        log.exception("projection listener failed")

    async def _apply(self, batch: list[pb.ExecutionEvent]) -> AppliedBatch | None:
        async with self._sessionmaker() as session, write_transaction(session):
            cursor = await load_cursor(session, lock=True)
            applier = BatchApplier(session, self.fees)
            applied = await applier.apply(batch, cursor)
            await session.flush()
        return applier.out if applied else None

    async def wait_applied(self, sequence: int, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until every event of ``sequence`` is in the database; False on timeout."""
        if self.applied_through >= sequence:
            return True
        async with self._cond:
            try:
                await asyncio.wait_for(
                    self._cond.wait_for(lambda: self.applied_through >= sequence), timeout
                )
            except TimeoutError:
                return False
        return True

    def idle(self) -> bool:
        """Connected to the stream with nothing received left to apply."""
        return self.connected and self._queue.empty() and not self._busy
