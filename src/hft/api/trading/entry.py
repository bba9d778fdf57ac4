"""Order entry with group commit: the risk check, `pending_new` insert, reservation and
audit record of many concurrent orders in one serialized write transaction.

Each order is checked in arrival order against the account as the orders before it in
the same transaction left it (the batch reads each account's open orders and positions
once, under the account's row lock, and adds every accepted order to them), exactly as
if each had its own transaction; the inserts and the commit (and its fsync) are shared.
A constraint violation (a raced client_order_id) rolls the batch back, and its orders
are then written one transaction each, so only the offending request sees the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    CompoundSelect,
    Connection,
    Select,
    Table,
    TextClause,
    bindparam,
    func,
    insert,
    null,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from hft.api.audit import audit_values
from hft.api.trading import metrics
from hft.db.base import Numeric, utcnow
from hft.db.models.auth import Account, AuditEntry
from hft.db.models.trading import OrderRow, PositionRow
from hft.db.session import ChainedTransactions, write_transaction
from hft.db.sql import UnnestRows, in_list
from hft.engine.pb import engine_pb2 as pb
from hft.services.errors import RiskRejectedError, ServiceError
from hft.services.instruments import InstrumentInfo
from hft.services.orders import OPEN_STATUSES
from hft.services.risk import AccountSnapshot, RiskLimits, check_order

if TYPE_CHECKING:
    from hft.api.trading.runtime import TradingRuntime

log = logging.getLogger("hft.api.trading.entry")

MAX_BATCH = 256

_ORDERS = cast(Table, OrderRow.__table__)
_AUDIT = cast(Table, AuditEntry.__table__)
_ACCOUNTS = cast(Table, Account.__table__)
_POSITION_ROWS = cast(Table, PositionRow.__table__)


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
    # The engine request of the order once it has its id; given, a `pending_new` order
    # goes to the engine sender as soon as its batch commits.
    engine_request: Callable[[int], pb.OrderRequest] | None = None
    future: asyncio.Future[Written] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class OrderEntry:
    def __init__(self, runtime: TradingRuntime) -> None:
        self.rt = runtime
        self._queue: asyncio.Queue[EntryRequest] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        # PostgreSQL: each commit of the loop also begins the next batch's transaction.
        self._chain = None if runtime.db.is_sqlite else ChainedTransactions(runtime.db.engine)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="order-entry")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._chain is not None:
            await self._chain.end()
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if not item.future.done():
                item.future.set_exception(RuntimeError("the backend is stopping"))

    async def submit(self, item: EntryRequest) -> Written:
        """Write the order (risk-checked); raises ServiceError (risk), IntegrityError
        (client_order_id taken) or AccountMissingError."""
        if self._task is None or self._task.done():
            await self._write([item])
        else:
            self._queue.put_nowait(item)
        return await item.future

    async def _next(self) -> EntryRequest:
        if self._chain is None:
            return await self._queue.get()
        return await self._chain.get(self._queue)

    async def _loop(self) -> None:
        while True:
            batch = [await self._next()]
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
        ids = sorted({int(i.values["account_id"]) for i in batch})
        checked = sorted({int(i.values["account_id"]) for i in batch if i.check_risk})
        if self._chain is not None:
            # Limits are cached (and may be that stale anyway): a missing one is read
            # before the transaction. Only then is a session opened: closing one costs
            # an event-loop turn (SQLAlchemy shields the close in a task of its own),
            # which every batch would wait for.
            limits: dict[int, tuple[RiskLimits, bool]] = {}
            missing = []
            for a in checked:
                cached = rt.cached_limits(a)
                if cached is None:
                    missing.append(a)
                else:
                    limits[a] = cached
            if missing:
                async with rt.db.session() as session:
                    for a in missing:
                        limits[a] = await rt.limits_for(session, a)

            async def work(
                conn: AsyncConnection,
            ) -> list[tuple[EntryRequest, Written | BaseException]]:
                return await conn.run_sync(self._write_sync, batch, ids, limits)

            # The loop's commits begin the next batch's transaction (`_next` ends it
            # when none comes).
            results = await self._chain.run(work, keep=asyncio.current_task() is self._task)
        else:
            async with rt.db.session() as session, write_transaction(session):
                # Read in the write transaction: SQLite's is exclusive, and reading a
                # missing limit is the batch's only await before the synchronous part.
                limits = {a: await rt.limits_for(session, a) for a in checked}
                conn = await session.connection()
                results = await conn.run_sync(self._write_sync, batch, ids, limits)
        metrics.BATCH_SIZE_BY("entry").observe(len(batch))
        # The committed orders go to the engine at once, as one batch, before their
        # requests resume: each request would otherwise wait for its task to run again
        # before handing its order over. Also the orders whose request went away: they
        # are pending_new with a reservation, and the engine's answer settles them.
        sent = False
        for item, result in results:
            if (
                isinstance(result, Written)
                and result.status == "pending_new"
                and item.engine_request is not None
            ):
                result.sent = rt.sender.enqueue(item.engine_request(result.id))
                sent = True
        if sent:
            rt.sender.flush()
        for item, result in results:
            if item.future.done():
                continue
            if isinstance(result, BaseException):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)

    def _write_sync(
        self,
        conn: Connection,
        batch: list[EntryRequest],
        ids: list[int],
        limits: dict[int, tuple[RiskLimits, bool]],
    ) -> list[tuple[EntryRequest, Written | BaseException]]:
        # Synchronous, in the session's greenlet (`run_sync`): the batch's statements
        # then cost one greenlet instead of one per `await`. Core statements, not the
        # ORM unit of work: a handful of set-based statements whatever the batch size,
        # and no per-row ORM state is built.
        results: list[tuple[EntryRequest, Written | BaseException]] = []
        accepted: list[tuple[EntryRequest, dict[str, Any]]] = []
        if conn.dialect.name == "postgresql":
            accounts, exposure, positions = lock_accounts_with_exposure(conn, ids)
        else:
            accounts = lock_accounts(conn, ids)
            exposure, positions = exposure_and_positions(conn, list(accounts))
        written: set[int] = set()
        for item in batch:
            account = accounts.get(int(item.values["account_id"]))
            if account is None:
                results.append((item, AccountMissingError()))
                continue
            values = dict(item.values)
            if item.check_risk:
                try:
                    reserve = self._check(
                        account, values, item.inst, exposure, positions, limits[account.id]
                    )
                except ServiceError as exc:
                    results.append((item, exc))
                    continue
                values["reserved"] = reserve
                account.reserved_cash += reserve
                exp = exposure.setdefault(account.id, Exposure())
                exp.count += 1
                key = (values["symbol"], values["side"])
                exp.leaves[key] = exp.leaves.get(key, 0) + values["quantity_lots"]
            accepted.append((item, values))
            written.add(account.id)
        # Every account that gets an order is written (its `entry_version` raised), its
        # reservation changed or not: how a concurrent entry notices these orders.
        reserved = [{"b_id": a, "b_reserved": accounts[a].reserved_cash} for a in sorted(written)]
        if conn.dialect.name == "postgresql":
            order_ids = _write_postgres(conn, accepted, reserved)
        else:
            order_ids = _write_each(conn, accepted, reserved)
        results += [
            (item, Written(order_id, values["status"]))
            for (item, values), order_id in zip(accepted, order_ids, strict=True)
        ]
        return results

    def _check(
        self,
        account: LockedAccount,
        values: dict[str, Any],
        inst: InstrumentInfo,
        exposure: dict[int, Exposure],
        positions: dict[tuple[int, str], Decimal],
        limits: tuple[RiskLimits, bool],
    ) -> Decimal:
        rt = self.rt
        exp = exposure.get(account.id) or Exposure()
        symbol = values["symbol"]
        snapshot = AccountSnapshot(
            cash=account.cash,
            reserved=account.reserved_cash,
            trading_enabled=account.trading_enabled,
            position=positions.get((account.id, symbol), Decimal(0)),
            open_buy=inst.quantity(exp.leaves.get((symbol, "buy"), 0)),
            open_sell=inst.quantity(exp.leaves.get((symbol, "sell"), 0)),
            open_orders=exp.count,
        )
        return check_order(
            side=values["side"],
            price_ticks=values["price_ticks"],
            quantity_lots=values["quantity_lots"],
            inst=inst,
            account=snapshot,
            limits=limits[0],
            global_halt=limits[1],
            taker_fee_bps=rt.settings.taker_fee_bps,
            places=rt.settings.money_decimals,
        )


def _audit_rows(accepted: list[tuple[EntryRequest, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The `order.create` audit entries of the accepted orders, without their targets
    (the orders' ids, not known yet)."""
    now = utcnow()
    return [
        audit_values(
            now,
            "order.create",
            user_id=item.user_id,
            details=item.audit,
            ip=item.ip,
            request_id=item.request_id,
        )
        for item, _ in accepted
    ]


def _write_each(
    conn: Connection,
    accepted: list[tuple[EntryRequest, dict[str, Any]]],
    reserved: list[dict[str, Any]],
) -> list[int]:
    """Orders, their audit entries and the accounts' reservations, one statement each;
    the new orders' ids in order."""
    order_ids: list[int] = []
    if accepted:
        inserted = conn.execute(_INSERT_ORDERS, [values for _, values in accepted])
        order_ids = [int(row[0]) for row in inserted]
        audit = _audit_rows(accepted)
        for row, order_id in zip(audit, order_ids, strict=True):
            row["target"] = f"order:{order_id}"
        conn.execute(_INSERT_AUDIT, audit)
    if reserved:
        conn.execute(_SET_RESERVED, reserved)
    return order_ids


def _write_postgres(
    conn: Connection,
    accepted: list[tuple[EntryRequest, dict[str, Any]]],
    reserved: list[dict[str, Any]],
) -> list[int]:
    """What `_write_each` writes, in one PostgreSQL statement (`_PG_WRITE`)."""
    if not accepted and not reserved:
        return []
    params = _PG_ROWS.params(
        {"o": [values for _, values in accepted], "a": _audit_rows(accepted), "r": reserved}
    )
    return [int(row[0]) for row in conn.execute(_PG_WRITE, params)]


@dataclass(slots=True)
class Written:
    """A committed new order: its id and status (`pending_new`, or `rejected` when it
    was refused without reaching the engine), and, when it was handed to the engine
    sender, the engine's answer to come."""

    id: int
    status: str
    sent: asyncio.Future[pb.OrderResponse] | None = None


@dataclass(slots=True)
class LockedAccount:
    """An account's risk-relevant columns, read under its row lock."""

    id: int
    cash: Decimal
    reserved_cash: Decimal
    trading_enabled: bool


def lock_accounts(conn: Connection, account_ids: list[int]) -> dict[int, LockedAccount]:
    """Lock the accounts (ascending id, like every writer, so PostgreSQL cannot deadlock)
    and read what risk needs; one statement."""
    if not account_ids:
        return {}
    rows = conn.execute(_LOCK_ACCOUNTS[conn.dialect.name], {"ids": account_ids})
    return {int(r[0]): LockedAccount(int(r[0]), r[1], r[2], bool(r[3])) for r in rows}


def lock_accounts_with_exposure(
    conn: Connection, account_ids: list[int]
) -> tuple[dict[int, LockedAccount], dict[int, Exposure], dict[tuple[int, str], Decimal]]:
    """PostgreSQL: `lock_accounts` and `exposure_and_positions` in one round trip when
    that is exact (`_PG_LOCK_AND_EXPOSURE`), else in two.

    The statement's snapshot is taken before it waits for the account locks, so the
    open orders and positions it reads miss whatever a transaction holding one of those
    locks committed meanwhile. The account rows themselves are current (READ COMMITTED
    re-reads a locked row), and the rest only matters when it adds exposure. What the
    projection commits (fills, cancels) can only lower what the checks bound from
    above: position plus open buys, open sells minus position, the number of open
    orders. New orders are the exception, and so is an amend that raises an order's
    quantity (it holds the new leaves on the order, `amend_leaves_lots`, until the
    projection applies the engine's answer): every order-entry transaction and every
    such amend raises the account's `entry_version`, and each locked row's counter is
    compared with the snapshot's. When one differs, another entry or an amend committed
    meanwhile, and the open orders and positions are read again, under the locks now
    held.
    """
    exposure: dict[int, Exposure] = {}
    positions: dict[tuple[int, str], Decimal] = {}
    accounts: dict[int, LockedAccount] = {}
    if not account_ids:
        return accounts, exposure, positions
    current = True
    rows = conn.execute(_PG_LOCK_AND_EXPOSURE, {"ids": account_ids, "open": _OPEN})
    for account_id, symbol, side, n, leaves, quantity, cash, reserved, enabled, seen in rows:
        if cash is not None:
            accounts[account_id] = LockedAccount(account_id, cash, reserved, bool(enabled))
            current = current and bool(seen)
        else:
            _add_exposure(exposure, positions, account_id, symbol, side, n, leaves, quantity)
    if not current:
        exposure, positions = exposure_and_positions(conn, list(accounts))
    return accounts, exposure, positions


@dataclass
class Exposure:
    """An account's open orders: how many, and open lots per (symbol, side)."""

    count: int = 0
    leaves: dict[tuple[str, str], int] = field(default_factory=dict)


def exposure_and_positions(
    conn: Connection, account_ids: list[int]
) -> tuple[dict[int, Exposure], dict[tuple[int, str], Decimal]]:
    """Open orders (grouped) and signed position quantities of several accounts, in one
    round trip: order rows carry a side, position rows none."""
    exposure: dict[int, Exposure] = {}
    positions: dict[tuple[int, str], Decimal] = {}
    if not account_ids:
        return exposure, positions
    rows = conn.execute(
        _EXPOSURE_AND_POSITIONS[conn.dialect.name], {"ids": account_ids, "open": _OPEN}
    )
    for row in rows:
        _add_exposure(exposure, positions, *row)
    return exposure, positions


def _add_exposure(
    exposure: dict[int, Exposure],
    positions: dict[tuple[int, str], Decimal],
    account_id: int,
    symbol: str,
    side: str | None,
    n: int | None,
    leaves: int | Decimal | None,
    quantity: Decimal | None,
) -> None:
    """One row of `_EXPOSURE_AND_POSITIONS`: open orders (with a side) or a position."""
    if side is None:
        positions[(int(account_id), symbol)] = cast(Decimal, quantity)
        return
    exp = exposure.setdefault(int(account_id), Exposure())
    exp.count += int(n or 0)
    exp.leaves[(symbol, side)] = int(leaves or 0)


# Built once, per dialect (hft.db.sql.in_list): constructing a statement costs more
# than running it on a small batch.
_LOCK_ACCOUNTS = {
    d: select(
        _ACCOUNTS.c.id, _ACCOUNTS.c.cash, _ACCOUNTS.c.reserved_cash, _ACCOUNTS.c.trading_enabled
    )
    .where(ids)
    .order_by(_ACCOUNTS.c.id)
    .with_for_update()
    for d, ids in in_list(_ACCOUNTS.c.id, "ids").items()
}
_OPEN = sorted(OPEN_STATUSES)


def _exposure_branches(dialect: str, *extra: ColumnElement[Any]) -> tuple[Select[Any], ...]:
    """The two SELECTs of `_EXPOSURE_AND_POSITIONS`, each ending with `extra`."""
    return (
        select(
            _ORDERS.c.account_id,
            _ORDERS.c.symbol,
            _ORDERS.c.side,
            func.count(),
            func.sum(OrderRow.held_leaves_lots),
            sql_cast(null(), Numeric()),
            *extra,
        )
        .where(
            in_list(_ORDERS.c.account_id, "ids")[dialect],
            in_list(_ORDERS.c.status, "open")[dialect],
        )
        .group_by(_ORDERS.c.account_id, _ORDERS.c.symbol, _ORDERS.c.side),
        select(
            _POSITION_ROWS.c.account_id,
            _POSITION_ROWS.c.symbol,
            sql_cast(null(), _ORDERS.c.side.type),
            sql_cast(null(), BigInteger()),
            sql_cast(null(), BigInteger()),
            _POSITION_ROWS.c.quantity,
            *extra,
        ).where(in_list(_POSITION_ROWS.c.account_id, "ids")[dialect]),
    )


# Column types come from the first SELECT, so it types the position column (Numeric:
# Decimal on both databases) and the second one casts its placeholders to match.
_EXPOSURE_AND_POSITIONS = {d: union_all(*_exposure_branches(d)) for d in ("postgresql", "sqlite")}


def _pg_lock_and_exposure() -> CompoundSelect[Any]:
    """`_LOCK_ACCOUNTS` then `_EXPOSURE_AND_POSITIONS` as one PostgreSQL statement: a row
    per account (its exposure columns NULL, then cash, reservation, trading switch and
    whether the locked row is the snapshot's), then the exposure rows (those four
    NULL). The accounts' branch runs first and locks them (a materialized CTE)."""
    a = _ACCOUNTS
    locked = (
        select(
            a.c.id,
            a.c.cash,
            a.c.reserved_cash,
            a.c.trading_enabled,
            a.c.entry_version,
        )
        .where(in_list(a.c.id, "ids")["postgresql"])
        .order_by(a.c.id)
        .with_for_update()
        .cte("locked_accounts")
        .prefix_with("MATERIALIZED")
    )
    seen = a.alias("accounts_seen")
    current = locked.c.entry_version == (
        select(seen.c.entry_version).where(seen.c.id == locked.c.id).scalar_subquery()
    )
    nothing = (
        sql_cast(null(), a.c.cash.type),
        sql_cast(null(), a.c.reserved_cash.type),
        sql_cast(null(), a.c.trading_enabled.type),
        sql_cast(null(), Boolean()),
    )
    return union_all(
        select(
            locked.c.id,
            sql_cast(null(), _ORDERS.c.symbol.type),
            sql_cast(null(), _ORDERS.c.side.type),
            sql_cast(null(), BigInteger()),
            sql_cast(null(), Numeric()),
            sql_cast(null(), Numeric()),
            locked.c.cash,
            locked.c.reserved_cash,
            locked.c.trading_enabled,
            current.label("current"),
        ),
        *_exposure_branches("postgresql", *nothing),
    )


_PG_LOCK_AND_EXPOSURE = _pg_lock_and_exposure()
_SET_RESERVED = (
    update(_ACCOUNTS)
    .where(_ACCOUNTS.c.id == bindparam("b_id"))
    .values(reserved_cash=bindparam("b_reserved"), entry_version=_ACCOUNTS.c.entry_version + 1)
)
_INSERT_ORDERS = insert(_ORDERS).returning(_ORDERS.c.id, sort_by_parameter_order=True)
_INSERT_AUDIT = insert(_AUDIT)

# What order entry writes of a new order: every column but the id, and those no new
# order has yet (their defaults): the average price and the amends in flight.
_PG_ORDER_COLUMNS = tuple(
    (c.name, c.name)
    for c in _ORDERS.c
    if c.name not in ("id", "average_price", "amends_in_flight", "amend_sent_at")
)
_PG_AUDIT_COLUMNS = tuple(
    (c, c) for c in ("ts", "user_id", "action", "details", "ip", "request_id")
)
_PG_RESERVED_COLUMNS = (("b_id", "id"), ("b_reserved", "reserved_cash"))


def _pg_write() -> tuple[TextClause, UnnestRows]:
    """The orders (ids from their sequence), their audit entries (targets naming those
    ids) and the accounts' new reservations as one PostgreSQL statement, returning the
    orders' ids in parameter order.

    The orders are inserted in parameter order (ORDER BY their position), so the ids the
    sequence hands out ascend in that order: the i-th smallest id is the i-th order's,
    which is also how SQLAlchemy matches RETURNING rows to parameters on PostgreSQL.
    """
    row_sets = UnnestRows()

    def rows(table: Table, columns: tuple[tuple[str, str], ...], alias: str) -> str:
        return row_sets.sql(table, columns, alias, ordinality="n")

    order_columns = ", ".join(c for _, c in _PG_ORDER_COLUMNS)
    audit_columns = ("ts", "user_id", "action", "details", "ip", "request_id")
    sql = f"""
WITH orders_new AS (
    INSERT INTO orders ({order_columns})
    SELECT {order_columns} FROM {rows(_ORDERS, _PG_ORDER_COLUMNS, "o")} ORDER BY o.n
    RETURNING id
), numbered AS (
    SELECT id, row_number() OVER (ORDER BY id) AS n FROM orders_new
), audit_new AS (
    INSERT INTO audit_log ({", ".join(audit_columns)}, target)
    SELECT {", ".join(f"a.{c}" for c in audit_columns)}, 'order:' || numbered.id
    FROM {rows(_AUDIT, _PG_AUDIT_COLUMNS, "a")} JOIN numbered ON numbered.n = a.n
), reserved_changed AS (
    UPDATE accounts
    SET reserved_cash = r.reserved_cash, entry_version = accounts.entry_version + 1
    FROM {rows(_ACCOUNTS, _PG_RESERVED_COLUMNS, "r")}
    WHERE accounts.id = r.id
)
SELECT id FROM numbered ORDER BY n
"""  # noqa: S608 (built once from the table metadata; values are bound parameters)
    return text(sql).bindparams(*row_sets.binds), row_sets


_PG_WRITE, _PG_ROWS = _pg_write()


__all__ = ["AccountMissingError", "EntryRequest", "OrderEntry", "RiskRejectedError", "Written"]
