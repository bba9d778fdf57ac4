"""The projection: applies the engine's execution stream to the database, exactly once.

One reader follows `ExecutionSubscriber` from the stored cursor into a bounded queue; the
applier takes whatever has arrived (up to `projection_batch` events) and applies it in
one write transaction that also advances `engine_cursor`. Events at or below the cursor
are skipped inside that transaction, so a restart of either process, or two backend
processes racing, can never apply an event twice; an event is applied or it is not.

This is the only writer of executions: order status, filled quantity and average price,
fills (maker and taker, with fees), positions, cash, reservation release, the public
trade tape and candles. Request handlers wait for `wait_applied(sequence)` and then read.

A batch costs a fixed number of statements whatever its size: the cursor, then the rows
it touches read once (accounts in id order, then orders, both locked; positions and
candles only for trades; on PostgreSQL one statement claims the cursor and reads them),
the events applied in memory, and the writes: on PostgreSQL one statement for all of
them (a data-modifying CTE per table over unnested column arrays, since each round
trip costs both processes more than its rows), on SQLite one executemany per table and
kind of write. It uses SQLAlchemy Core, not the ORM unit of work: the ORM's per-row
bookkeeping cost more CPU than the arithmetic. Listeners still get ORM objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import itertools
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Select,
    Table,
    TextualSelect,
    and_,
    bindparam,
    exists,
    insert,
    literal_column,
    null,
    or_,
    select,
    text,
    tuple_,
    union_all,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import DeclarativeBase, configure_mappers
from sqlalchemy.sql import Executable

from hft.api.trading import metrics
from hft.db.base import utcnow
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
from hft.db.session import ChainedTransactions, write_transaction
from hft.db.sql import UnnestRows, in_list
from hft.engine.pb import engine_pb2 as pb
from hft.services.candles import INTERVALS, bucket_start
from hft.services.decimals import decimals_of
from hft.services.portfolio import Position, apply_fill
from hft.services.risk import fee as fee_of
from hft.services.risk import reservation

log = logging.getLogger("hft.api.trading.projection")

# PostgreSQL: the channel on which a projection that committed a batch announces the
# cursor position it reached ("sequence:index"), so the projections of the other backend
# processes need no transaction of their own to know those events are applied.
APPLIED_CHANNEL = "hft_projection_applied"
# How long a projection that did not apply the previous batch waits for the notice of
# the one that did before it applies the next batch itself (that process may be gone).
FOLLOW_S = 0.25
# How soon a projection whose notice connection failed tries to open a new one.
RELISTEN_S = 1.0

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
ZERO = Decimal(0)
AVERAGE_PRICE_STEP = Decimal("0.00000001")
EVENT_TYPE_NAMES: dict[int, str] = {v.number: v.name for v in pb.EventType.DESCRIPTOR.values}

_TRADE = pb.EVENT_TYPE_TRADE
_ACCEPTED = pb.EVENT_TYPE_ACCEPTED
_REJECTED = pb.EVENT_TYPE_REJECTED
_CANCELED = pb.EVENT_TYPE_CANCELED
_EXPIRED = pb.EVENT_TYPE_EXPIRED
_AMENDED = pb.EVENT_TYPE_AMENDED
_AMEND_REJECTED = pb.EVENT_TYPE_AMEND_REJECTED
_NO_CHANGE = (pb.EVENT_TYPE_CANCEL_REJECTED, pb.EVENT_TYPE_AMEND_REJECTED)


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
    """What one committed batch changed, for the WebSocket fan-out.

    The rows are ORM objects outside any session holding the values as committed (fills
    with their ids); listeners read them and must not add them to a session.
    """

    orders: dict[int, OrderRow] = field(default_factory=dict)
    fills: list[FillRow] = field(default_factory=list)
    accounts: set[int] = field(default_factory=set)
    account_values: dict[int, tuple[Decimal, Decimal]] = field(default_factory=dict)
    candles: list[CandleRow] = field(default_factory=list)
    # Orders in `orders` that another backend process applied: read back as they are
    # now (possibly past this batch), so they are pushed to WebSocket clients but not
    # taken as this batch's exact result.
    observed: set[int] = field(default_factory=set)


class _Step:
    """Ticks and lots of one instrument to decimals (quacks like InstrumentInfo for
    `reservation`); the quantizers are computed once, not per conversion."""

    __slots__ = ("_lot_exp", "_tick_exp", "lot_size", "tick_size")

    def __init__(self, tick: str, lot: str) -> None:
        self.tick_size = Decimal(tick or "1")
        self.lot_size = Decimal(lot or "1")
        self._tick_exp = Decimal(1).scaleb(-decimals_of(self.tick_size))
        self._lot_exp = Decimal(1).scaleb(-decimals_of(self.lot_size))

    def price(self, ticks: int) -> Decimal:
        return (Decimal(ticks) * self.tick_size).quantize(self._tick_exp)

    def quantity(self, lots: int) -> Decimal:
        return (Decimal(lots) * self.lot_size).quantize(self._lot_exp)


@functools.lru_cache(maxsize=1024)
def _step(tick: str, lot: str) -> _Step:
    return _Step(tick, lot)


_Row = TypeVar("_Row", bound=DeclarativeBase)


def _detached(cls: type[_Row], values: dict[str, Any]) -> _Row:
    """An ORM object of `cls` carrying `values` as plain state, for listeners.

    Filled through the instance dict, as the ORM's own loader does: the keyword
    constructor goes through attribute instrumentation and costs ~15 times more.
    """
    mapper = cls.__mapper__
    if not mapper.configured:
        # Attribute access needs configured mappers, which the first ORM query would do.
        configure_mappers()
    obj: _Row = mapper.class_manager.new_instance()
    obj.__dict__.update(values)
    return obj


def _table(cls: type[DeclarativeBase]) -> Table:
    return cast(Table, cls.__table__)


_ORDERS = _table(OrderRow)
_ACCOUNTS = _table(Account)
_POSITIONS = _table(PositionRow)
_CANDLES = _table(CandleRow)
_FILLS = _table(FillRow)
_TRADES = _table(TradeRow)
_INSTRUMENTS = _table(InstrumentRow)
_CURSOR = _table(EngineCursor)

# What the projection may change on an order; every changed order is written whole, so
# one executemany covers all of them.
_ORDER_CHANGES = (
    "status",
    "reason",
    "price",
    "price_ticks",
    "quantity",
    "quantity_lots",
    "filled_lots",
    "leaves_lots",
    "amend_leaves_lots",
    "amends_in_flight",
    "filled_quantity",
    "filled_notional",
    "average_price",
    "fees",
    "reserved",
    "last_sequence",
    "updated_at",
)
_POSITION_VALUES = ("quantity", "cost_basis", "realized_pnl", "fees")  # Position field order
_CANDLE_VALUES = ("open", "high", "low", "close", "volume", "trades")

# Statements are built once (per dialect where hft.db.sql.in_list differs): SQLAlchemy
# memoizes a statement's cache key, so a module-level statement skips that work on every
# execution. FOR UPDATE is ignored by SQLite (whose write transaction is already
# exclusive).
_LOCK_ACCOUNTS = {
    d: select(_ACCOUNTS.c.id, _ACCOUNTS.c.cash, _ACCOUNTS.c.reserved_cash)
    .where(ids)
    .order_by(_ACCOUNTS.c.id)
    .with_for_update()
    for d, ids in in_list(_ACCOUNTS.c.id, "ids").items()
}


def _lock_orders(ids: ColumnElement[bool], *, with_positions: bool) -> Select[Any]:
    """The orders `ids` selects, locked in id order. With positions (for trades), each
    order comes with its account's position in its symbol (NULLs if none yet): the
    positions a fill changes, in the same round trip. Only orders are locked (the
    projection, serialized by the cursor lock, is the only writer of positions)."""
    if not with_positions:
        return select(_ORDERS).where(ids).order_by(_ORDERS.c.id).with_for_update()
    return (
        select(_ORDERS, *(_POSITIONS.c[c].label(f"position_{c}") for c in _POSITION_VALUES))
        .outerjoin(
            _POSITIONS,
            and_(
                _POSITIONS.c.account_id == _ORDERS.c.account_id,
                _POSITIONS.c.symbol == _ORDERS.c.symbol,
            ),
        )
        .where(ids)
        .order_by(_ORDERS.c.id)
        .with_for_update(of=_ORDERS)
    )


# Keyed by with_positions, then dialect.
_LOCK_ORDERS = {
    w: {d: _lock_orders(ids, with_positions=w) for d, ids in in_list(_ORDERS.c.id, "ids").items()}
    for w in (False, True)
}


# Advances the cursor only if it is before the batch: one statement that both takes the
# row lock and claims the batch in the usual case (none of the batch applied yet).
_CLAIMABLE = and_(
    _CURSOR.c.id == 1,
    or_(
        _CURSOR.c.sequence < bindparam("first_sequence"),
        and_(
            _CURSOR.c.sequence == bindparam("first_sequence"),
            _CURSOR.c.idx < bindparam("first_idx"),
        ),
    ),
)
_CLAIM = (
    update(_CURSOR)
    .where(_CLAIMABLE)
    .values(sequence=bindparam("last_sequence"), idx=bindparam("last_idx"))
)


def _pg_claim() -> Any:
    """PostgreSQL: `_CLAIM` as a CTE that claims only if no other transaction changed the
    cursor after this statement's snapshot was taken.

    The cursor row's `xmin` (the transaction that wrote its current version) as the
    snapshot sees it is compared with the version the UPDATE finally locks, which READ
    COMMITTED re-reads after waiting for a concurrent writer: equal means no other
    projection committed a batch since the snapshot, so everything the statement reads
    unlocked (the positions joined to the orders) is current too.
    """
    seen = _CURSOR.alias("cursor_seen")
    unchanged = literal_column(f"{_CURSOR.name}.xmin") == (
        select(literal_column("cursor_seen.xmin")).where(seen.c.id == 1).scalar_subquery()
    )
    return (
        update(_CURSOR)
        .where(_CLAIMABLE, unchanged)
        .values(
            sequence=bindparam("last_sequence"),
            idx=bindparam("last_idx"),
            updated_at=bindparam("claimed_at", type_=_CURSOR.c.updated_at.type),
        )
        .returning(_CURSOR.c.id)
        .cte("claimed")
    )


def _pg_lock_all(orders: Select[Any], *, claim: bool = False) -> CompoundSelect[Any]:
    """PostgreSQL: `_LOCK_ACCOUNTS` then `orders` (one of the order locks) in one round
    trip: a row per account (kind "a"), then a row per order (kind "o"), each with the
    other kind's columns NULL. With `claim`, the cursor claim (`_pg_claim`) comes first,
    a row of kind "c" when it claimed the batch.

    The branches of the UNION ALL run one after the other, in order (each a
    materialized CTE, evaluated as it is read): the cursor is locked first, then the
    accounts, then the orders, the lock order of every writer. One statement has one
    snapshot, taken before any wait for a lock, but every row it returns is one it
    locked, and a row a concurrent transaction changed and committed meanwhile comes
    back as that transaction left it (READ COMMITTED re-reads locked rows): an amend's
    order and its account's reservation are seen together. The positions joined to the
    orders are not locked, but only the projection writes them, and the cursor claim
    excludes every other projection: as an earlier statement of the transaction, or in
    this one, by claiming only if no projection committed since the snapshot.
    """
    accounts_locked = _LOCK_ACCOUNTS["postgresql"]
    claimed = _pg_claim() if claim else None
    if claimed is not None:
        # Nothing is locked unless the cursor was: a process that lost the claim must
        # not hold accounts while it waits for the cursor (the winner's next batch
        # would wait for them in turn).
        won = exists(select(claimed.c.id))
        accounts_locked, orders = accounts_locked.where(won), orders.where(won)
    accounts = accounts_locked.cte("locked_accounts").prefix_with("MATERIALIZED")
    locked = orders.cte("locked_orders").prefix_with("MATERIALIZED")
    order_columns = list(locked.c)
    no_account = (
        sql_cast(null(), accounts.c.id.type),
        sql_cast(null(), accounts.c.cash.type),
        sql_cast(null(), accounts.c.reserved_cash.type),
    )
    no_order = tuple(sql_cast(null(), c.type).label(c.name) for c in order_columns)
    branches = [
        select(
            literal_column("'a'").label("kind"),
            accounts.c.id.label("account_row_id"),
            accounts.c.cash,
            accounts.c.reserved_cash,
            *no_order,
        ),
        select(literal_column("'o'"), *no_account, *order_columns),
    ]
    if claimed is not None:
        # Rows are read by position, so this first branch needs no column names.
        claim_row = select(literal_column("'c'"), *no_account, *no_order)
        branches.insert(0, claim_row.select_from(claimed))
    return union_all(*branches)


# Keyed by with_positions; the orders' ids are `order_ids` (the accounts' are `ids`).
_PG_LOCK = {
    w: _pg_lock_all(
        _lock_orders(in_list(_ORDERS.c.id, "order_ids")["postgresql"], with_positions=w)
    )
    for w in (False, True)
}
# The same, claiming the batch first (see BatchApplier._claim_and_lock).
_PG_CLAIM_LOCK = {
    w: _pg_lock_all(
        _lock_orders(in_list(_ORDERS.c.id, "order_ids")["postgresql"], with_positions=w),
        claim=True,
    )
    for w in (False, True)
}
_READ_ORDERS = {d: select(_ORDERS).where(ids) for d, ids in in_list(_ORDERS.c.id, "ids").items()}
_READ_FILLS = {
    d: select(_FILLS).where(ids).order_by(_FILLS.c.id)
    for d, ids in in_list(_FILLS.c.trade_id, "ids").items()
}
_READ_ACCOUNTS = {
    d: select(_ACCOUNTS.c.id, _ACCOUNTS.c.cash, _ACCOUNTS.c.reserved_cash).where(ids)
    for d, ids in in_list(_ACCOUNTS.c.id, "ids").items()
}
_ORDER_COLUMNS = tuple(_ORDERS.c.keys())
_READ_CANDLES = select(_CANDLES).where(
    tuple_(_CANDLES.c.symbol, _CANDLES.c.interval, _CANDLES.c.start).in_(
        bindparam("keys", expanding=True)
    )
)
_UPDATE_ORDERS = update(_ORDERS).where(_ORDERS.c.id == bindparam("b_id"))
_UPDATE_ACCOUNTS = update(_ACCOUNTS).where(_ACCOUNTS.c.id == bindparam("b_id"))
_UPDATE_POSITIONS = update(_POSITIONS).where(
    _POSITIONS.c.account_id == bindparam("b_account_id"),
    _POSITIONS.c.symbol == bindparam("b_symbol"),
)
_UPDATE_CANDLES = update(_CANDLES).where(
    _CANDLES.c.symbol == bindparam("b_symbol"),
    _CANDLES.c.interval == bindparam("b_interval"),
    _CANDLES.c.start == bindparam("b_start"),
)
# Only where the price differs, so an unchanged instrument keeps its updated_at.
_UPDATE_LAST_PRICE = (
    update(_INSTRUMENTS)
    .where(
        _INSTRUMENTS.c.symbol == bindparam("b_symbol"),
        or_(
            _INSTRUMENTS.c.last_price.is_distinct_from(bindparam("b_price")),
            _INSTRUMENTS.c.reference_price != bindparam("b_price"),
        ),
    )
    .values(last_price=bindparam("b_price"), reference_price=bindparam("b_price"))
)
_INSERT_POSITIONS = insert(_POSITIONS)
_INSERT_CANDLES = insert(_CANDLES)
_INSERT_TRADES = insert(_TRADES)
# The ids go to listeners with the fills, matched by (trade_id, order_id), which is unique:
# RETURNING in parameter order (sort_by_parameter_order) would insert row by row on SQLite.
_INSERT_FILLS = insert(_FILLS).returning(_FILLS.c.id, _FILLS.c.trade_id, _FILLS.c.order_id)


def _renamed(*columns: str, **renamed: str) -> tuple[tuple[str, str], ...]:
    """(row dict key, column) pairs: the columns under their own names, then `renamed`
    (key=column) for the executemany statements' WHERE parameters."""
    return tuple((c, c) for c in columns) + tuple(renamed.items())


_PG_ORDER_COLUMNS = _renamed(*_ORDER_CHANGES, b_id="id")
_PG_ACCOUNT_COLUMNS = _renamed("cash", "reserved_cash", b_id="id")
_PG_NEW_POSITION_COLUMNS = _renamed("account_id", "symbol", *_POSITION_VALUES)
_PG_CHANGED_POSITION_COLUMNS = _renamed(
    *_POSITION_VALUES, b_account_id="account_id", b_symbol="symbol"
)
_PG_TRADE_COLUMNS = _renamed(
    "trade_id", "symbol", "price", "quantity", "taker_side", "sequence", "time"
)
_CANDLE_COLUMNS = ("symbol", "interval", "start", *_CANDLE_VALUES)
_PG_CANDLE_COLUMNS = _renamed(*_CANDLE_COLUMNS)
_PG_PRICE_COLUMNS = _renamed(b_symbol="symbol", b_price="last_price")
_PG_FILL_COLUMNS = _renamed(
    "trade_id",
    "order_id",
    "account_id",
    "symbol",
    "side",
    "price",
    "quantity",
    "liquidity",
    "fee",
    "sequence",
    "time",
)


def _pg_write() -> tuple[TextualSelect, UnnestRows]:
    """All of a batch's writes as one PostgreSQL statement: a data-modifying CTE per
    table and kind of change, each over rows unnested from one array per column (empty
    arrays: no rows, nothing changed). It returns the new fills' ids and the candles as
    stored after the merge, one row each (a fill row has an id, a candle row none).

    Every row the statement changes is a different row (the CTEs cannot see each
    other's changes, and need not), and the accounts and orders are already locked.
    """
    row_sets = UnnestRows()
    rows = row_sets.sql

    def names(columns: Sequence[str]) -> str:
        return ", ".join(columns)

    def assign(columns: Sequence[str], alias: str) -> str:
        return ", ".join(f"{c} = {alias}.{c}" for c in columns)

    def nulls(columns: Sequence[str]) -> str:
        return ", ".join(f"NULL AS {c}" for c in columns)

    def match(table: str, columns: Sequence[str], alias: str) -> str:
        return " AND ".join(f"{table}.{c} = {alias}.{c}" for c in columns)

    now = "CAST(:now AS TIMESTAMP WITH TIME ZONE)"
    position_keys = ("account_id", "symbol")
    candle_keys = ("symbol", "interval", "start")
    sql = f"""
WITH orders_changed AS (
    UPDATE orders SET {assign(_ORDER_CHANGES, "o")}
    FROM {rows(_ORDERS, _PG_ORDER_COLUMNS, "o")}
    WHERE orders.id = o.id
), accounts_changed AS (
    UPDATE accounts SET cash = a.cash, reserved_cash = a.reserved_cash, updated_at = {now}
    FROM {rows(_ACCOUNTS, _PG_ACCOUNT_COLUMNS, "a")}
    WHERE accounts.id = a.id
), positions_new AS (
    INSERT INTO positions ({names(position_keys + _POSITION_VALUES)}, updated_at)
    SELECT pn.*, {now} FROM {rows(_POSITIONS, _PG_NEW_POSITION_COLUMNS, "pn")}
), positions_changed AS (
    UPDATE positions SET {assign(_POSITION_VALUES, "pc")}, updated_at = {now}
    FROM {rows(_POSITIONS, _PG_CHANGED_POSITION_COLUMNS, "pc")}
    WHERE {match("positions", position_keys, "pc")}
), trades_new AS (
    INSERT INTO trades ({names([c for _, c in _PG_TRADE_COLUMNS])})
    SELECT * FROM {rows(_TRADES, _PG_TRADE_COLUMNS, "t")}
), candles_merged AS (
    -- the batch's part of each candle merged into the stored one (or stored as it is)
    INSERT INTO candles ({names(_CANDLE_COLUMNS)})
    SELECT * FROM {rows(_CANDLES, _PG_CANDLE_COLUMNS, "c")}
    ON CONFLICT ({names(candle_keys)}) DO UPDATE SET
        high = GREATEST(candles.high, excluded.high),
        low = LEAST(candles.low, excluded.low),
        close = excluded.close,
        volume = candles.volume + excluded.volume,
        trades = candles.trades + excluded.trades
    RETURNING {names(_CANDLE_COLUMNS)}
), fills_new AS (
    INSERT INTO fills ({names([c for _, c in _PG_FILL_COLUMNS])})
    SELECT * FROM {rows(_FILLS, _PG_FILL_COLUMNS, "f")}
    RETURNING id, trade_id, order_id
), prices_changed AS (
    -- only where the price differs, so an unchanged instrument keeps its updated_at
    UPDATE instruments
    SET last_price = i.last_price, reference_price = i.last_price, updated_at = {now}
    FROM {rows(_INSTRUMENTS, _PG_PRICE_COLUMNS, "i")}
    WHERE instruments.symbol = i.symbol
      AND (instruments.last_price IS DISTINCT FROM i.last_price
           OR instruments.reference_price <> i.last_price)
)
SELECT id, trade_id, order_id, {nulls(_CANDLE_COLUMNS)} FROM fills_new
UNION ALL
SELECT NULL, NULL, NULL, {names(_CANDLE_COLUMNS)} FROM candles_merged
"""  # noqa: S608 (built once from the table metadata; values are bound parameters)
    # Typed result columns: the candles' decimals come back through Numeric (canonical).
    result = [_FILLS.c.id, _FILLS.c.trade_id, _FILLS.c.order_id]
    result += [_CANDLES.c[c] for c in _CANDLE_COLUMNS]
    statement = (
        text(sql)
        .bindparams(bindparam("now", type_=_ACCOUNTS.c.updated_at.type), *row_sets.binds)
        .columns(*result)
    )
    return statement, row_sets


_PG_WRITE, _PG_ROWS = _pg_write()


_LOCK_CURSOR = select(_CURSOR.c.sequence, _CURSOR.c.idx).where(_CURSOR.c.id == 1).with_for_update()
_SET_CURSOR = (
    update(_CURSOR)
    .where(_CURSOR.c.id == 1)
    .values(sequence=bindparam("last_sequence"), idx=bindparam("last_idx"))
)
_READ_CURSOR = select(_CURSOR.c.sequence, _CURSOR.c.idx).where(_CURSOR.c.id == 1)
# Two processes starting on a fresh database may both create the row: the second insert
# waits for the first and then does nothing.
_CREATE_CURSOR: dict[str, Executable] = {
    "postgresql": pg_insert(_CURSOR).values(id=1, sequence=0, idx=-1).on_conflict_do_nothing(),
    "sqlite": sqlite_insert(_CURSOR).values(id=1, sequence=0, idx=-1).on_conflict_do_nothing(),
}


def _touched(events: Sequence[pb.ExecutionEvent]) -> tuple[set[int], set[int]]:
    """The order ids and account ids the events name (a trade's maker side included)."""
    order_ids: set[int] = set()
    account_ids: set[int] = set()
    for ev in events:
        order_ids.add(ev.order_id)
        account_ids.add(ev.account_id)
        if ev.type == _TRADE:
            order_ids.add(ev.maker_order_id)
            account_ids.add(ev.maker_account_id)
    order_ids.discard(0)
    account_ids.discard(0)
    return order_ids, account_ids


def _candle_keys(events: Sequence[pb.ExecutionEvent]) -> set[tuple[str, str, int]]:
    """(symbol, interval, bucket start) of every candle the events' trades fall in."""
    return {
        (ev.symbol, interval, bucket_start(ev.timestamp_ns, interval))
        for ev in events
        if ev.type == _TRADE
        for interval in INTERVALS
    }


def cursor_position(conn: Connection, *, lock: bool) -> tuple[int, int]:
    """(sequence, idx) of the last applied event, from the cursor row (created on first
    use); with `lock`, the row stays locked until the transaction ends."""
    stmt = _LOCK_CURSOR if lock else _READ_CURSOR
    row = conn.execute(stmt).first()
    if row is None:
        conn.execute(_CREATE_CURSOR[conn.dialect.name])
        row = conn.execute(stmt).one()
    return int(row.sequence), int(row.idx)


def after(
    events: Sequence[pb.ExecutionEvent], position: tuple[int, int]
) -> list[pb.ExecutionEvent]:
    """The events past `position` (sequence, index), each only once: a stream restarted
    while commands were still queued may deliver some again within one batch."""
    out: list[pb.ExecutionEvent] = []
    last = position
    for ev in events:
        key = (ev.sequence, ev.index)
        if key > last:
            out.append(ev)
            last = key
    return out


class _Account:
    __slots__ = ("cash", "id", "reserved_cash")

    def __init__(self, id: int, cash: Decimal, reserved_cash: Decimal) -> None:
        self.id = id
        self.cash = cash
        self.reserved_cash = reserved_cash


class BatchApplier:
    """Applies a list of execution events inside an open write transaction on `conn`.

    Synchronous, run in the session's greenlet by `AsyncConnection.run_sync`: one switch
    per statement instead of a new greenlet per `await`, which is measurably cheaper.

    Orders and candles are plain dicts of column values while the batch runs (cheap to
    change, and both the UPDATE parameters and the listeners' objects come from them).
    """

    def __init__(self, fees: FeeSchedule, *, observe: Callable[[], bool] | None = None) -> None:
        self.fees = fees
        # Also read back events another process applied (see _observe), when this
        # answers True: asked only once the cursor lock is held, so that process's
        # commit is visible and a WebSocket subscription made later reads it anyway.
        self.observe = observe
        self.out = AppliedBatch()
        self._orders: dict[int, dict[str, Any]] = {}
        self._status_before: dict[int, str] = {}
        self._changed: dict[int, dict[str, Any]] = {}
        self._accounts: dict[int, _Account] = {}
        self._positions: dict[tuple[int, str], Position] = {}
        self._new_positions: set[tuple[int, str]] = set()
        self._changed_positions: dict[tuple[int, str], None] = {}
        self._candles: dict[tuple[str, str, int], dict[str, Any]] = {}
        self._new_candles: set[tuple[str, str, int]] = set()
        self._trades: list[dict[str, Any]] = []
        self._fills: list[dict[str, Any]] = []
        self._last_price: dict[str, int] = {}

    def apply(self, conn: Connection, events: Sequence[pb.ExecutionEvent]) -> int:
        """Advance the cursor over `events` and apply those it had not passed yet;
        returns how many were applied (0: nothing changed). Once per applier."""
        self.conn = conn
        self.dialect = conn.dialect.name
        fresh = after(events, (-1, -1))
        if self.dialect == "postgresql" and fresh and self._claim_and_lock(fresh):
            todo = fresh
        else:
            todo = self._claim(fresh)
            if todo:
                self._load(todo)
        if todo:
            kinds: Counter[int] = Counter()
            for ev in todo:
                self._apply_one(ev)
                kinds[ev.type] += 1
            self._write()
            for kind, n in kinds.items():
                metrics.PROJECTION_EVENTS_BY(EVENT_TYPE_NAMES.get(kind, str(kind))).inc(n)
            for oid, order in self.out.orders.items():
                if self._status_before.get(oid) != order.status:
                    metrics.ORDERS_BY(order.status).inc()
        if self.observe is not None and len(todo) < len(fresh) and self.observe():
            self._observe(fresh[: len(fresh) - len(todo)])
        return len(todo)

    def read_back(
        self, conn: Connection, events: Sequence[pb.ExecutionEvent], *, full: bool
    ) -> None:
        """Only read back what `events` changed, all of them applied by another process
        (see `_observe`); without `full`, only the orders and fills."""
        self.conn = conn
        self.dialect = conn.dialect.name
        self._observe(after(events, (-1, -1)), full=full)

    def _observe(self, events: list[pb.ExecutionEvent], *, full: bool = True) -> None:
        """Read back what `events`, applied by another backend process, changed.

        With several workers every projection follows the stream and one of them
        applies each batch; the others still owe their own WebSocket clients the
        orders, fills, balances and candles it changed. The rows are read as they are
        now, in this transaction (after the cursor lock, so the other process's commit
        is visible); what this batch applied itself is kept as written.
        """
        out = self.out
        order_ids, account_ids = _touched(events)
        trade_ids = sorted({ev.trade_id for ev in events if ev.type == _TRADE})
        execute = self.conn.execute
        if order_ids:
            rows = execute(_READ_ORDERS[self.dialect], {"ids": sorted(order_ids)})
            for row in rows:
                if row.id not in out.orders:
                    out.orders[row.id] = _detached(OrderRow, row._asdict())
                    out.observed.add(row.id)
        if trade_ids:
            rows = execute(_READ_FILLS[self.dialect], {"ids": trade_ids})
            out.fills += [_detached(FillRow, row._asdict()) for row in rows]
        if full and account_ids - out.accounts:
            rows = execute(
                _READ_ACCOUNTS[self.dialect], {"ids": sorted(account_ids - out.accounts)}
            )
            for row in rows:
                out.accounts.add(row.id)
                out.account_values[row.id] = (row.cash, row.reserved_cash)
        if full and trade_ids:
            missing = _candle_keys(events) - {(c.symbol, c.interval, c.start) for c in out.candles}
            if missing:
                rows = execute(_READ_CANDLES, {"keys": sorted(missing)})
                out.candles += [_detached(CandleRow, row._asdict()) for row in rows]

    def _claim(self, todo: list[pb.ExecutionEvent]) -> list[pb.ExecutionEvent]:
        """Lock the cursor, move it to the last of `todo` (in order, each once); the
        events of `todo` past where it was, a tail of `todo`."""
        if not todo:
            return todo
        first, last = todo[0], todo[-1]
        claimed = self.conn.execute(
            _CLAIM,
            {
                "first_sequence": first.sequence,
                "first_idx": first.index,
                "last_sequence": last.sequence,
                "last_idx": last.index,
            },
        )
        if claimed.rowcount == 1:
            return todo
        # The cursor is at or past the batch's start (another process applied some of
        # it, or the stream replayed), or it does not exist yet: read it under the lock.
        todo = after(todo, cursor_position(self.conn, lock=True))
        if todo:
            self.conn.execute(
                _SET_CURSOR, {"last_sequence": todo[-1].sequence, "last_idx": todo[-1].index}
            )
        return todo

    def _claim_and_lock(self, todo: list[pb.ExecutionEvent]) -> bool:
        """PostgreSQL: `_claim` and `_load` of all of `todo` in one round trip
        (`_PG_CLAIM_LOCK`); False, with nothing kept, when the claim failed (the cursor
        is at or past the batch's start, missing, or another projection committed
        while the statement ran): `_claim` then decides under the cursor lock, and
        `_load` reads again, in a newer snapshot, what is now locked by this
        transaction."""
        order_ids, account_ids = _touched(todo)
        trades = any(ev.type == _TRADE for ev in todo)
        first, last = todo[0], todo[-1]
        rows = self.conn.execute(
            _PG_CLAIM_LOCK[trades],
            {
                "first_sequence": first.sequence,
                "first_idx": first.index,
                "last_sequence": last.sequence,
                "last_idx": last.index,
                "claimed_at": utcnow(),
                "ids": sorted(account_ids),
                "order_ids": sorted(order_ids),
            },
        ).all()
        if not rows or rows[0][0] != "c":
            return False
        self._keep_locked(rows[1:], with_positions=trades)
        return True

    def _load(self, events: list[pb.ExecutionEvent]) -> None:
        order_ids, account_ids = _touched(events)
        trades = any(ev.type == _TRADE for ev in events)
        if order_ids:
            self._lock(order_ids, account_ids, with_positions=trades)
        if trades and self.dialect != "postgresql":
            # PostgreSQL merges the batch's candles into the stored ones as it writes them
            # (an upsert), so it reads none here.
            rows = self.conn.execute(_READ_CANDLES, {"keys": sorted(_candle_keys(events))})
            self._candles = {(r.symbol, r.interval, r.start): r._asdict() for r in rows}

    def _lock(self, order_ids: set[int], account_ids: set[int], *, with_positions: bool) -> None:
        """Read and lock the accounts, then the orders (with their positions if asked).

        Account rows in id order, then the orders: the lock order of every writer. The
        accounts are those the events name: an order is ours only if its account is the
        event's (see `_own`), so this covers every account the batch can change.
        An order's `reserved` changes only together with its account under that account's
        lock (an amend raises it before the engine sees the amend), so orders read before
        the lock could carry a reservation the account no longer matches, and
        re-reserving from it would double-count the change. PostgreSQL does both in one
        statement (`_PG_LOCK`, which explains why that is still safe); SQLite, whose
        statements cost no round trip, in two.
        """
        if self.dialect == "postgresql":
            self._lock_postgres(order_ids, account_ids, with_positions=with_positions)
            return
        if account_ids:
            rows = self.conn.execute(_LOCK_ACCOUNTS[self.dialect], {"ids": sorted(account_ids)})
            self._accounts = {r.id: _Account(r.id, r.cash, r.reserved_cash) for r in rows}
        rows = self.conn.execute(
            _LOCK_ORDERS[with_positions][self.dialect], {"ids": sorted(order_ids)}
        )
        for r in rows:
            self._keep_order(tuple(r), with_positions=with_positions)
        self._status_before = {oid: o["status"] for oid, o in self._orders.items()}

    def _keep_order(self, values: tuple[Any, ...], *, with_positions: bool) -> None:
        """An order row read by `_lock_orders` (its columns, then its position's)."""
        n = len(_ORDER_COLUMNS)
        order = dict(zip(_ORDER_COLUMNS, values[:n], strict=True))
        self._orders[order["id"]] = order
        if with_positions and values[n] is not None:
            self._positions[(order["account_id"], order["symbol"])] = Position(*values[n:])

    def _lock_postgres(
        self, order_ids: set[int], account_ids: set[int], *, with_positions: bool
    ) -> None:
        """`_lock` in one round trip (`_PG_LOCK`)."""
        rows = self.conn.execute(
            _PG_LOCK[with_positions], {"ids": sorted(account_ids), "order_ids": sorted(order_ids)}
        )
        self._keep_locked(rows, with_positions=with_positions)

    def _keep_locked(self, rows: Any, *, with_positions: bool) -> None:
        """The account and order rows of a `_pg_lock_all` statement."""
        for r in rows:
            if r[0] == "a":
                self._accounts[r[1]] = _Account(r[1], r[2], r[3])
            else:
                self._keep_order(tuple(r)[4:], with_positions=with_positions)
        self._status_before = {oid: o["status"] for oid, o in self._orders.items()}

    def _own(self, order_id: int, account_id: int) -> dict[str, Any] | None:
        """Our order row for an engine order, if the account matches (the engine may also
        carry orders of other clients that reuse ids)."""
        order = self._orders.get(order_id)
        if order is None or order["account_id"] != account_id:
            return None
        return order

    def _apply_one(self, ev: pb.ExecutionEvent) -> None:
        kind = ev.type
        if kind == _TRADE:
            self._trade(ev)
            return
        order = self._own(ev.order_id, ev.account_id)
        if order is None:
            return
        step = _step(ev.tick_size, ev.lot_size)
        if kind == _ACCEPTED:
            if order["status"] in ("pending_new", "rejected"):
                order["status"] = "new" if order["filled_lots"] == 0 else "partially_filled"
                order["reason"] = None
            order["leaves_lots"] = ev.leaves_quantity
        elif kind == _REJECTED:
            order["status"] = "rejected"
            order["reason"] = reject_reason(ev.reject_reason)
            order["leaves_lots"] = 0
        elif kind == _CANCELED:
            order["status"] = "canceled"
            reason = CANCEL_REASONS.get(ev.cancel_reason, "canceled")
            if (
                reason == "ioc_remainder"
                and order["type"] == "market"
                and order["filled_lots"] == 0
            ):
                reason = "market_no_liquidity"
            order["reason"] = reason
            order["leaves_lots"] = 0
        elif kind == _EXPIRED:
            order["status"] = "expired"
            order["reason"] = "day_expired"
            order["leaves_lots"] = 0
        elif kind == _AMENDED:
            self._amend_answered(order)
            order["price_ticks"] = ev.price
            if order["type"] == "limit":
                order["price"] = step.price(ev.price)
            order["leaves_lots"] = ev.quantity
            order["quantity_lots"] = order["filled_lots"] + ev.quantity
            order["quantity"] = step.quantity(order["quantity_lots"])
        elif kind == _AMEND_REJECTED:
            self._amend_answered(order)
        elif kind not in _NO_CHANGE:
            return
        order["last_sequence"] = ev.sequence
        order["updated_at"] = ns_to_datetime(ev.timestamp_ns)
        self._rereserve(order, step)
        self._changed[order["id"]] = order

    @staticmethod
    def _amend_answered(order: dict[str, Any]) -> None:
        """One amend of `order` answered (Amended or AmendRejected). Its hold ends with
        the last one in flight: an earlier amend's answer must not release what a later
        one, still on its way, asked for."""
        left = max(0, order["amends_in_flight"] - 1)
        order["amends_in_flight"] = left
        if left == 0:
            order["amend_leaves_lots"] = None

    def _rereserve(self, order: dict[str, Any], step: _Step) -> None:
        """Reservation = f(side, price, leaves) while open, 0 once final. While amends
        are in flight it is never lowered: each was reserved before it was sent, and
        what a later one asked for stays reserved until it is answered."""
        if order["status"] in OPEN:
            new = reservation(
                order["side"],
                order["price_ticks"],
                order["leaves_lots"],
                step,  # type: ignore[arg-type]
                self.fees.taker_bps,
                self.fees.places,
            )
            if order["amends_in_flight"] > 0:
                new = max(new, order["reserved"])
        else:
            new = ZERO
        delta = new - order["reserved"]
        if delta != 0:
            account = self._accounts.get(order["account_id"])
            if account is not None:
                account.reserved_cash = account.reserved_cash + delta
                self.out.accounts.add(account.id)
            order["reserved"] = new

    def _trade(self, ev: pb.ExecutionEvent) -> None:
        step = _step(ev.tick_size, ev.lot_size)
        price = step.price(ev.price)
        qty = step.quantity(ev.quantity)
        when = ns_to_datetime(ev.timestamp_ns)
        taker_side = "buy" if ev.side == pb.SIDE_BUY else "sell"
        maker_side = "sell" if taker_side == "buy" else "buy"
        self._trades.append(
            {
                "trade_id": ev.trade_id,
                "symbol": ev.symbol,
                "price": price,
                "quantity": qty,
                "taker_side": taker_side,
                "sequence": ev.sequence,
                "time": when,
            }
        )
        self._candle(ev.symbol, ev.timestamp_ns, price, qty)
        self._last_price[ev.symbol] = ev.price
        taker = self._own(ev.order_id, ev.account_id)
        if taker is not None:
            self._fill(taker, ev, step, taker_side, price, qty, ev.leaves_quantity, "taker", when)
        maker = self._own(ev.maker_order_id, ev.maker_account_id)
        if maker is not None:
            self._fill(
                maker, ev, step, maker_side, price, qty, ev.maker_leaves_quantity, "maker", when
            )

    def _fill(
        self,
        order: dict[str, Any],
        ev: pb.ExecutionEvent,
        step: _Step,
        side: str,
        price: Decimal,
        qty: Decimal,
        leaves: int,
        liquidity: str,
        when: datetime,
    ) -> None:
        notional = price * qty
        fee = self.fees.fee(notional, liquidity)
        order["filled_lots"] += ev.quantity
        order["leaves_lots"] = leaves
        order["filled_quantity"] = filled = step.quantity(order["filled_lots"])
        order["filled_notional"] = total = order["filled_notional"] + notional
        order["average_price"] = (total / filled).quantize(
            AVERAGE_PRICE_STEP, rounding=ROUND_HALF_EVEN
        )
        order["fees"] = order["fees"] + fee
        status = order["status"]
        if status in OPEN or status == "rejected":
            order["status"] = "filled" if leaves == 0 else "partially_filled"
            order["reason"] = None
        order["last_sequence"] = ev.sequence
        order["updated_at"] = when
        account_id, symbol = order["account_id"], order["symbol"]
        self._fills.append(
            {
                "trade_id": ev.trade_id,
                "order_id": order["id"],
                "account_id": account_id,
                "symbol": symbol,
                "side": side,
                "price": price,
                "quantity": qty,
                "liquidity": liquidity,
                "fee": fee,
                "sequence": ev.sequence,
                "time": when,
            }
        )
        key = (account_id, symbol)
        position = self._positions.get(key)
        if position is None:
            position = Position(ZERO, ZERO, ZERO, ZERO)
            self._new_positions.add(key)
        effect = apply_fill(position, side, qty, price, fee, self.fees.places)
        self._positions[key] = effect.position
        self._changed_positions[key] = None
        account = self._accounts.get(account_id)
        if account is not None:
            account.cash = account.cash + effect.cash_delta
            self.out.accounts.add(account.id)
        self._rereserve(order, step)
        self._changed[order["id"]] = order

    def _candle(self, symbol: str, ts_ns: int, price: Decimal, qty: Decimal) -> None:
        for interval in INTERVALS:
            key = (symbol, interval, bucket_start(ts_ns, interval))
            row = self._candles.get(key)
            if row is None:
                self._candles[key] = {
                    "symbol": symbol,
                    "interval": interval,
                    "start": key[2],
                    "open": price,
                    "high": price,
                    "low": price,
                    "close": price,
                    "volume": qty,
                    "trades": 1,
                }
                self._new_candles.add(key)
            else:
                row["high"] = max(row["high"], price)
                row["low"] = min(row["low"], price)
                row["close"] = price
                row["volume"] = row["volume"] + qty
                row["trades"] = row["trades"] + 1

    def _write(self) -> None:
        """Every change of the batch in the database; fills the listeners' batch.

        PostgreSQL takes them all in one statement (`_PG_WRITE`): a round trip costs this
        process and the server more than the rows do. SQLite (no round trips: statements
        run in-process) gets one executemany per table and kind of change.
        """
        out = self.out
        now = utcnow()
        orders: list[dict[str, Any]] = [
            {"b_id": oid, **{c: o[c] for c in _ORDER_CHANGES}} for oid, o in self._changed.items()
        ]
        accounts: list[dict[str, Any]] = [
            {
                "b_id": a,
                "cash": self._accounts[a].cash,
                "reserved_cash": self._accounts[a].reserved_cash,
            }
            for a in out.accounts
        ]
        new_positions: list[dict[str, Any]] = []
        changed_positions: list[dict[str, Any]] = []
        for key in self._changed_positions:
            p = self._positions[key]
            values = {
                "quantity": p.quantity,
                "cost_basis": p.cost_basis,
                "realized_pnl": p.realized_pnl,
                "fees": p.fees,
            }
            if key in self._new_positions:
                new_positions.append({"account_id": key[0], "symbol": key[1], **values})
            else:
                changed_positions.append({"b_account_id": key[0], "b_symbol": key[1], **values})
        prices = [{"b_symbol": s, "b_price": p} for s, p in self._last_price.items()]
        if self.dialect == "postgresql":
            params = _PG_ROWS.params(
                {
                    "o": orders,
                    "a": accounts,
                    "pn": new_positions,
                    "pc": changed_positions,
                    "t": self._trades,
                    # Nothing was read: each is this batch's part of its candle.
                    "c": list(self._candles.values()),
                    "i": prices,
                    "f": self._fills,
                }
            )
            params["now"] = now
            fill_ids: list[Any] = []
            candles: list[dict[str, Any]] = []
            for row in self.conn.execute(_PG_WRITE, params):
                if row.id is not None:
                    fill_ids.append(row)
                else:
                    candles.append({c: getattr(row, c) for c in _CANDLE_COLUMNS})
        else:
            fill_ids = self._write_each(orders, accounts, new_positions, changed_positions, prices)
            candles = list(self._candles.values())
        if orders:
            out.orders = {oid: _detached(OrderRow, o) for oid, o in self._changed.items()}
        if accounts:
            out.account_values = {
                a: (self._accounts[a].cash, self._accounts[a].reserved_cash) for a in out.accounts
            }
        if self._fills:
            ids = {(r.trade_id, r.order_id): r.id for r in fill_ids}
            out.fills = [
                _detached(FillRow, {"id": ids[f["trade_id"], f["order_id"]], **f})
                for f in self._fills
            ]
        if candles:
            out.candles = [_detached(CandleRow, c) for c in candles]

    def _write_each(
        self,
        orders: list[dict[str, Any]],
        accounts: list[dict[str, Any]],
        new_positions: list[dict[str, Any]],
        changed_positions: list[dict[str, Any]],
        prices: list[dict[str, Any]],
    ) -> list[Any]:
        """One statement per table and kind of change; the inserted fills' ids."""
        new_candles = [c for k, c in self._candles.items() if k in self._new_candles]
        old_candles = [
            {
                "b_symbol": k[0],
                "b_interval": k[1],
                "b_start": k[2],
                **{c: row[c] for c in _CANDLE_VALUES},
            }
            for k, row in self._candles.items()
            if k not in self._new_candles
        ]
        execute = self.conn.execute
        fill_ids: list[Any] = []
        for statement, rows in (
            (_UPDATE_ORDERS, orders),
            (_UPDATE_ACCOUNTS, accounts),
            (_INSERT_POSITIONS, new_positions),
            (_UPDATE_POSITIONS, changed_positions),
            (_INSERT_TRADES, self._trades),
        ):
            if rows:
                execute(statement, rows)
        if self._fills:
            fill_ids = list(execute(_INSERT_FILLS, self._fills))
        for statement, rows in (
            (_INSERT_CANDLES, new_candles),
            (_UPDATE_CANDLES, old_candles),
            (_UPDATE_LAST_PRICE, prices),
        ):
            if rows:
                execute(statement, rows)
        return fill_ids


Listener = Callable[[AppliedBatch], None]


def _settle(fut: asyncio.Future[bool], applied: bool) -> None:
    if not fut.done():
        fut.set_result(applied)


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
        # Whether the listeners want what another backend process applied (read back
        # from the database): the WebSocket hub does only while someone subscribes to
        # changes the projection makes.
        self.observe: Callable[[], bool] = lambda: True
        # Whole commands (all events of one sequence), so a batch never ends half way
        # through a command and a waiter is released after one transaction.
        self._queue: asyncio.Queue[list[pb.ExecutionEvent]] = asyncio.Queue(maxsize=20_000)
        # Callers waiting for a sequence to be applied: (sequence, tie-breaker, future),
        # a min-heap so each commit wakes exactly the callers it satisfies.
        self._waiters: list[tuple[int, int, asyncio.Future[bool]]] = []
        self._waiter_ids = itertools.count()
        self._tasks: list[asyncio.Task[None]] = []
        self._subscriber: Any = None
        self.lag_samples: list[float] = []
        self._busy = False
        self.record_lag = False
        # Known at the first batch (the sessions' engine): on PostgreSQL each commit of
        # the applying loop also begins the next batch's transaction.
        self._engine: AsyncEngine | None = None
        self._chain: ChainedTransactions | None = None
        # PostgreSQL, several backend processes: the highest cursor position any
        # projection announced on APPLIED_CHANNEL (see `_settle`), the connection that
        # listens for it, and whether this one applied the last batch it settled.
        self._notified: tuple[int, int] = (-1, -1)
        self._notice = asyncio.Event()
        self._listener: AsyncConnection | None = None
        # Listening connections the server closed, to be given back (invalidated).
        self._lost: list[AsyncConnection] = []
        self._relisten_at = 0.0
        self._leading = True

    async def start(self) -> None:
        # A write transaction: the cursor row is created on first use, and on SQLite a
        # read transaction that then writes fails at once when another process (a second
        # worker starting beside this one) is writing, instead of waiting its turn.
        async with self._sessionmaker() as session, write_transaction(session):
            conn = await session.connection()
            self.last = await conn.run_sync(cursor_position, lock=False)
        # A cursor in the middle of a sequence means that sequence is not complete yet.
        self.applied_through = max(0, self.last[0] - 1) if self.last[1] >= 0 else 0
        self._subscriber = self._subscriber_factory(self.last[0])
        await self._listen()
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
        if self._chain is not None:
            await self._chain.end()
        await self._unlisten()

    async def _listen(self) -> None:
        """PostgreSQL: listen on APPLIED_CHANNEL, on a connection of its own. Without it
        (it failed or was lost) the projection applies every batch itself, as if it were
        alone, which is always correct: the cursor claim decides who applies what."""
        engine = await self._db_engine()
        if engine.dialect.name != "postgresql":
            self._relisten_at = math.inf
            return
        self._relisten_at = time.monotonic() + RELISTEN_S
        conn: AsyncConnection | None = None
        try:
            conn = await engine.connect()
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            await driver.add_listener(APPLIED_CHANNEL, self._on_notice)
            driver.add_termination_listener(lambda _conn: self._on_listener_lost(conn))
        except Exception as exc:
            log.warning("cannot listen for other projections' commits: %s", exc)
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.invalidate()
            return
        self._listener = conn

    async def _unlisten(self) -> None:
        conn, self._listener = self._listener, None
        if conn is not None:
            # Closed rather than pooled: it is still listening.
            with contextlib.suppress(Exception):
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()

    def _on_notice(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            sequence, index = payload.split(":")
            position = (int(sequence), int(index))
        except ValueError:
            log.warning("ignoring a malformed notice on %s: %r", APPLIED_CHANNEL, payload)
            return
        if position > self._notified:
            self._notified = position
            self._notice.set()

    def _on_listener_lost(self, conn: AsyncConnection | None) -> None:
        if conn is None or conn is not self._listener:
            return
        log.warning("lost the connection listening for other projections' commits")
        self._listener = None
        self._lost.append(conn)

    async def _db_engine(self) -> AsyncEngine:
        """The sessions' engine (and, on PostgreSQL, the applying loop's chain)."""
        if self._engine is None:
            async with self._sessionmaker() as session:
                self._engine = cast(AsyncEngine, session.bind)
            if self._engine.dialect.name == "postgresql":
                self._chain = ChainedTransactions(self._engine)
        return self._engine

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
            batch = list(await self._next())
            self._busy = True
            while len(batch) < self.batch and not self._queue.empty():
                batch.extend(self._queue.get_nowait())
            metrics.PROJECTION_LAG.set(self._queue.qsize())
            metrics.BATCH_SIZE_BY("projection").observe(len(batch))
            while True:
                try:
                    result = await self._settle(batch)
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
            # max: a batch may end with a command the restarted stream delivered again.
            self.last = max(self.last, (last.sequence, last.index))
            through = last.sequence if last.last_in_sequence else last.sequence - 1
            self._advance(through)
            self._busy = False
            if result is not None:
                for listener in self.listeners:
                    try:
                        listener(result)
                    except Exception:
                        log.exception("projection listener failed")

    async def _settle(self, batch: list[pb.ExecutionEvent]) -> AppliedBatch | None:
        """Apply `batch`, or, once another process's projection announced that it
        applied it (APPLIED_CHANNEL), only read back what it changed, for this
        process's listeners.

        With several backend processes every projection follows the same stream, and
        the cursor claim lets one of them apply each batch while the others wait for its
        commit, each in a transaction of its own. Announcing each commit spares them
        that: a projection that did not apply the previous batch waits up to FOLLOW_S
        for the notice of the next one before it applies it itself, so one process
        keeps applying while the others follow, and another takes over within FOLLOW_S
        when it stops."""
        while self._lost:
            with contextlib.suppress(Exception):
                await self._lost.pop().invalidate()
        if self._listener is None and time.monotonic() >= self._relisten_at:
            await self._listen()
        if self._listener is not None:
            last = batch[-1]
            end = (last.sequence, last.index)
            if self._notified < end and not self._leading:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(FOLLOW_S):
                        while self._notified < end:
                            self._notice.clear()
                            await self._notice.wait()
            if self._notified >= end:
                self._leading = False
                if self._chain is not None and self._chain.kept:
                    await self._chain.end()
                return await self._read_back(batch)
        return await self._apply(batch)

    async def _read_back(self, batch: list[pb.ExecutionEvent]) -> AppliedBatch | None:
        """What another process applied of `batch`: everything when the listeners want
        it (WebSocket clients), else its orders and fills when requests here wait for
        it (one read for the batch, from which the answers to POST /orders come, rather
        than one per answer), else nothing."""
        full = self.observe()
        if not full and not self._waiters:
            return None
        applier = BatchApplier(self.fees, observe=self.observe)
        async with self._sessionmaker() as session:
            conn = await session.connection()
            await conn.run_sync(functools.partial(applier.read_back, full=full), batch)
        out = applier.out
        return out if out.orders or out.fills or out.accounts or out.candles else None

    async def _apply(self, batch: list[pb.ExecutionEvent]) -> AppliedBatch | None:
        applier = BatchApplier(self.fees, observe=self.observe)
        await self._db_engine()
        if self._chain is not None:

            async def work(conn: AsyncConnection) -> int:
                nonlocal applier
                applier = BatchApplier(self.fees, observe=self.observe)
                return await conn.run_sync(applier.apply, batch)

            # The applying loop's commits begin the next batch's transaction (`_next`
            # ends it when none comes); batches handed over directly (tests,
            # benchmarks) keep none. Whether this transaction applied the batch or found
            # it applied, the cursor is at or past its last event once it commits.
            notice = f"{batch[-1].sequence}:{batch[-1].index}" if batch else None
            applied = await self._chain.run(
                work,
                keep=asyncio.current_task() in self._tasks,
                notify=None if notice is None else (APPLIED_CHANNEL, notice),
            )
            self._leading = applied > 0
        else:
            async with self._sessionmaker() as session, write_transaction(session):
                conn = await session.connection()
                applied = await conn.run_sync(applier.apply, batch)
        out = applier.out
        # Nothing applied here, but what another process applied was read back.
        observed = out.observed or out.fills or out.accounts or out.candles
        return out if applied or observed else None

    async def _next(self) -> list[pb.ExecutionEvent]:
        if self._chain is None:
            return await self._queue.get()
        return await self._chain.get(self._queue)

    async def wait_applied(self, sequence: int, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until every event of ``sequence`` is in the database; False on timeout."""
        if self.applied_through >= sequence:
            return True
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        heapq.heappush(self._waiters, (sequence, next(self._waiter_ids), fut))
        # A plain timer rather than asyncio.timeout(): every order response waits here,
        # and the timeout context's bookkeeping cost more than the wait's other work.
        timer = loop.call_later(timeout, _settle, fut, False)
        try:
            return await fut
        finally:
            timer.cancel()
            # A timed-out or cancelled waiter's entry stays in the heap until a commit
            # passes its sequence; its future is done, so waking it is a no-op.
            fut.cancel()

    def _advance(self, through: int) -> None:
        """Every event of sequences <= `through` is committed: release their waiters."""
        self.applied_through = max(self.applied_through, through)
        waiters = self._waiters
        while waiters and waiters[0][0] <= self.applied_through:
            _settle(heapq.heappop(waiters)[2], True)

    def idle(self) -> bool:
        """Connected to the stream with nothing received left to apply."""
        return self.connected and self._queue.empty() and not self._busy
