"""Trading tables: instruments, orders, fills, positions, risk limits, the engine cursor,
the public trade tape and candles.

Integer ticks and lots (BigInteger) are the truth the engine speaks; the decimal columns
beside them are exact (`Numeric`) copies for readers of the database. Executions are
written only by the projection (hft.api.trading.projection), in the transaction that
advances `engine_cursor`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    case,
    text,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column

from hft.db.base import Base, BigIntId, Numeric, UtcDateTime, utcnow

ZERO = Decimal(0)


class InstrumentRow(Base):
    """An instrument as last listed by the engine (synced at start)."""

    __tablename__ = "instruments"

    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    symbol_id: Mapped[int] = mapped_column(Integer, unique=True)
    tick_size: Mapped[Decimal] = mapped_column(Numeric())
    lot_size: Mapped[Decimal] = mapped_column(Numeric())
    min_qty: Mapped[int] = mapped_column(BigInteger)  # lots
    max_qty: Mapped[int] = mapped_column(BigInteger)  # lots
    band_bps: Mapped[int] = mapped_column(Integer, default=0)
    reference_price: Mapped[int] = mapped_column(BigInteger, default=0)  # ticks
    last_price: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # ticks
    status: Mapped[str] = mapped_column(String(16), default="trading")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class OrderRow(Base):
    """One order. `id` is the engine's order_id. `price_ticks` is what the engine got: the
    limit price, or for a market order its protection (collar) price."""

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("account_id", "client_order_id"),
        Index("ix_orders_account_id_status", "account_id", "status"),
        Index("ix_orders_account_id_id", "account_id", "id"),
        Index("ix_orders_status_created_at", "status", "created_at"),
        # The few orders with amends awaiting the engine, for reconciliation.
        Index(
            "ix_orders_amend_sent_at_in_flight",
            "amend_sent_at",
            postgresql_where=text("amends_in_flight > 0"),
            sqlite_where=text("amends_in_flight > 0"),
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    client_order_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(4))
    type: Mapped[str] = mapped_column(String(8))
    time_in_force: Mapped[str] = mapped_column(String(4))
    post_only: Mapped[bool] = mapped_column(Boolean, default=False)
    price: Mapped[Decimal | None] = mapped_column(Numeric(), nullable=True)
    price_ticks: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[Decimal] = mapped_column(Numeric())
    quantity_lots: Mapped[int] = mapped_column(BigInteger)
    filled_lots: Mapped[int] = mapped_column(BigInteger, default=0)
    leaves_lots: Mapped[int] = mapped_column(BigInteger, default=0)
    # The open lots an amend asked the engine for, above `leaves_lots`, until the
    # projection applies the engine's answer to it: the risk checks count the larger of
    # the two (`held_leaves_lots`), so an order entered meanwhile sees the amend's new
    # quantity.
    amend_leaves_lots: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Amends sent to the engine and not answered yet (each gets one Amended or
    # AmendRejected), and when the latest was sent. While any is in flight the hold stays
    # and the projection does not lower the reservation; reconciliation releases amends
    # the engine is proven never to have sequenced.
    amends_in_flight: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    amend_sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    filled_quantity: Mapped[Decimal] = mapped_column(Numeric(), default=ZERO)
    filled_notional: Mapped[Decimal] = mapped_column(Numeric(), default=ZERO)
    average_price: Mapped[Decimal | None] = mapped_column(Numeric(), nullable=True)
    fees: Mapped[Decimal] = mapped_column(Numeric(), default=ZERO)
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(40), nullable=True)
    reserved: Mapped[Decimal] = mapped_column(Numeric(), default=ZERO)
    last_sequence: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    @hybrid_property
    def held_leaves_lots(self) -> int:
        """The open lots the risk checks count: the leaves, or what an amend in flight
        asked for when that is more (`amend_leaves_lots`); in SQL too."""
        return max(self.leaves_lots, self.amend_leaves_lots or 0)

    @held_leaves_lots.inplace.expression
    @classmethod
    def _held_leaves_lots(cls) -> ColumnElement[int]:
        return case(
            (cls.amend_leaves_lots > cls.leaves_lots, cls.amend_leaves_lots),
            else_=cls.leaves_lots,
        )


class FillRow(Base):
    """One side of one trade, for the account that owns the order."""

    __tablename__ = "fills"
    __table_args__ = (
        UniqueConstraint("trade_id", "order_id"),
        Index("ix_fills_account_id_id", "account_id", "id"),
        Index("ix_fills_order_id", "order_id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    trade_id: Mapped[int] = mapped_column(BigInteger)
    order_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("orders.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(4))
    price: Mapped[Decimal] = mapped_column(Numeric())
    quantity: Mapped[Decimal] = mapped_column(Numeric())
    liquidity: Mapped[str] = mapped_column(String(5))
    fee: Mapped[Decimal] = mapped_column(Numeric())
    sequence: Mapped[int] = mapped_column(BigInteger)
    time: Mapped[datetime] = mapped_column(UtcDateTime)


class PositionRow(Base):
    """A signed position; `cost_basis` is the entry cost of the open quantity (>= 0)."""

    __tablename__ = "positions"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    quantity: Mapped[Decimal] = mapped_column(Numeric(), default=ZERO)
    cost_basis: Mapped[Decimal] = mapped_column(Numeric(), default=ZERO)
    realized_pnl: Mapped[Decimal] = mapped_column(Numeric(), default=ZERO)
    fees: Mapped[Decimal] = mapped_column(Numeric(), default=ZERO)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class RiskLimitRow(Base):
    """Risk limits of one account, or the defaults when `account_id` is NULL (one such
    row at most; `trading_halted` on it is the global halt). NULL limit = unlimited,
    except on an account row, where NULL means "use the default"."""

    __tablename__ = "risk_limits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id"), unique=True, nullable=True
    )
    max_order_quantity: Mapped[Decimal | None] = mapped_column(Numeric(), nullable=True)
    max_order_notional: Mapped[Decimal | None] = mapped_column(Numeric(), nullable=True)
    max_position: Mapped[Decimal | None] = mapped_column(Numeric(), nullable=True)
    max_open_orders: Mapped[int | None] = mapped_column(Integer, nullable=True)
    short_limit: Mapped[Decimal | None] = mapped_column(Numeric(), nullable=True)
    trading_halted: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class EngineCursor(Base):
    """The last execution event applied: (sequence, idx). One row, id = 1."""

    __tablename__ = "engine_cursor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger, default=0)
    idx: Mapped[int] = mapped_column(Integer, default=-1)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class TradeRow(Base):
    """The public tape: every trade of the venue (trade ids are engine-wide)."""

    __tablename__ = "trades"
    __table_args__ = (Index("ix_trades_symbol_trade_id", "symbol", "trade_id"),)

    trade_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    symbol: Mapped[str] = mapped_column(String(32))
    price: Mapped[Decimal] = mapped_column(Numeric())
    quantity: Mapped[Decimal] = mapped_column(Numeric())
    taker_side: Mapped[str] = mapped_column(String(4))
    sequence: Mapped[int] = mapped_column(BigInteger)
    time: Mapped[datetime] = mapped_column(UtcDateTime)


class CandleRow(Base):
    """OHLCV of one symbol and interval; `start` in Unix seconds (UTC)."""

    __tablename__ = "candles"

    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    interval: Mapped[str] = mapped_column(String(4), primary_key=True)
    start: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    open: Mapped[Decimal] = mapped_column(Numeric())
    high: Mapped[Decimal] = mapped_column(Numeric())
    low: Mapped[Decimal] = mapped_column(Numeric())
    close: Mapped[Decimal] = mapped_column(Numeric())
    volume: Mapped[Decimal] = mapped_column(Numeric())
    trades: Mapped[int] = mapped_column(Integer, default=0)


__all__ = [
    "CandleRow",
    "EngineCursor",
    "FillRow",
    "InstrumentRow",
    "OrderRow",
    "PositionRow",
    "RiskLimitRow",
    "TradeRow",
]
