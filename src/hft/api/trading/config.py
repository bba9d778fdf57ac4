"""Settings of the trading layer (`api.trading` in the config file, `settings.trading`).

Money and percentages are decimals; fees are in basis points of the traded notional.
Risk limits here are the defaults for every account without its own row in
``risk_limits``; a limit of ``None`` means "no limit".
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field


class DefaultRiskLimits(BaseModel):
    """Limits applied to accounts that have no limits of their own (decimals)."""

    model_config = ConfigDict(extra="forbid")

    max_order_quantity: Decimal | None = Field(default=None, gt=0)
    max_order_notional: Decimal | None = Field(default=Decimal("10000000"), gt=0)
    max_position: Decimal | None = Field(
        default=Decimal("100000"), gt=0, description="max absolute position per symbol"
    )
    max_open_orders: int | None = Field(default=500, gt=0)
    short_limit: Decimal = Field(
        default=Decimal("100000"),
        ge=0,
        description="how far below zero a position may go per symbol (0 = no short selling)",
    )


class TradingSettings(BaseModel):
    """Fees, order protection, default risk limits and tuning of the background tasks."""

    model_config = ConfigDict(extra="forbid")

    maker_fee_bps: Decimal = Field(default=Decimal("1"), ge=-100, le=1000)
    taker_fee_bps: Decimal = Field(default=Decimal("2"), ge=0, le=1000)
    # Fees and cash are kept exact to this many decimals (rounded half-even).
    money_decimals: int = Field(default=8, ge=2, le=12)
    # A market order is sent as an IOC limit at best ask x (1 + collar) (sells: best bid
    # x (1 - collar)), so it can never sweep the book past what its reservation covers.
    market_collar_pct: Decimal = Field(default=Decimal("5"), gt=0, lt=100)
    default_limits: DefaultRiskLimits = Field(default_factory=DefaultRiskLimits)
    # Stops every new order of every account (cancels still work).
    global_halt: bool = False

    # How long POST /orders waits for the projection to apply the engine's answer.
    response_wait_s: float = Field(default=5.0, gt=0, le=60)
    # Pending orders older than this are resolved by reconciliation when the engine
    # never saw them (must exceed the engine client's request timeout).
    reconcile_grace_s: float = Field(default=15.0, gt=0)
    reconcile_interval_s: float = Field(default=5.0, gt=0)
    projection_batch: int = Field(default=500, ge=1, le=100_000)
    engine_timeout_s: float = Field(default=5.0, gt=0, le=120)
    # New orders go to the engine in batches of at most this many, with at most
    # `engine_batches_in_flight` batches awaiting the engine's answer at a time.
    engine_batch_max: int = Field(default=256, ge=1, le=10_000)
    engine_batches_in_flight: int = Field(default=2, ge=1, le=64)
    # WebSocket fan-out: per-connection queue bound (a client this far behind is dropped)
    ws_queue_size: int = Field(default=1000, ge=10)
    ws_heartbeat_s: float = Field(default=15.0, gt=0)
    ws_messages_per_s: float = Field(default=50.0, gt=0)
    # Risk limits are re-read at most this often per account (changes made through
    # the same process apply at once).
    limits_cache_s: float = Field(default=1.0, ge=0, le=60)
    book_depth: int = Field(default=50, ge=1, le=1000)
