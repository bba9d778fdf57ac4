"""Request and response shapes of the trading API.

The pydantic models document the contract in the OpenAPI schema; the hot paths build
plain dicts with the `*_public` functions below (same fields), and bodies are parsed by
`hft.api.trading.body` so that decimals stay exact. Decimals are strings: prices with the
instrument's tick decimals, quantities with its lot decimals, money without trailing
zeros. Times are RFC 3339 UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hft.db.models.trading import CandleRow, FillRow, OrderRow
from hft.services.decimals import fmt
from hft.services.instruments import InstrumentInfo

DecimalStr = str

_DEC_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"


class OrderCreate(BaseModel):
    """POST /orders body. Decimals as strings (JSON numbers are accepted too)."""

    model_config = ConfigDict(extra="forbid")

    symbol: str = Field(max_length=32, examples=["AAPL"])
    side: Literal["buy", "sell"]
    type: Literal["limit", "market"] = "limit"
    time_in_force: Literal["gtc", "ioc", "fok", "day"] | None = Field(
        default=None, description="default gtc for limit, ioc for market orders"
    )
    quantity: DecimalStr = Field(pattern=_DEC_PATTERN, examples=["10"])
    price: DecimalStr | None = Field(
        default=None, pattern=_DEC_PATTERN, description="limit orders only", examples=["190.25"]
    )
    post_only: bool = False
    client_order_id: str | None = Field(default=None, max_length=64)


class OrderAmend(BaseModel):
    """PATCH /orders/{id} body: new *total* quantity and/or new price."""

    model_config = ConfigDict(extra="forbid")

    quantity: DecimalStr | None = Field(default=None, pattern=_DEC_PATTERN)
    price: DecimalStr | None = Field(default=None, pattern=_DEC_PATTERN)


class FillPublic(BaseModel):
    trade_id: str
    order_id: str
    symbol: str
    side: Literal["buy", "sell"]
    price: DecimalStr
    quantity: DecimalStr
    liquidity: Literal["maker", "taker"]
    fee: DecimalStr
    time: datetime


class OrderPublic(BaseModel):
    id: str
    client_order_id: str | None
    symbol: str
    side: Literal["buy", "sell"]
    type: Literal["limit", "market"]
    time_in_force: Literal["gtc", "ioc", "fok", "day"]
    post_only: bool
    price: DecimalStr | None
    quantity: DecimalStr
    filled_quantity: DecimalStr
    remaining_quantity: DecimalStr
    average_price: DecimalStr | None
    fees: DecimalStr
    status: Literal[
        "pending_new", "new", "partially_filled", "filled", "canceled", "rejected", "expired"
    ]
    reason: str | None
    created_at: datetime
    updated_at: datetime
    fills: list[FillPublic] | None = None


class CancelAllResult(BaseModel):
    canceled: int = Field(description="orders canceled by the engine")
    orders: list[OrderPublic]


class PositionPublic(BaseModel):
    symbol: str
    quantity: DecimalStr
    average_cost: DecimalStr
    market_price: DecimalStr | None
    market_value: DecimalStr
    unrealized_pnl: DecimalStr
    realized_pnl: DecimalStr
    fees: DecimalStr


class PortfolioPublic(BaseModel):
    cash: DecimalStr
    reserved_cash: DecimalStr
    buying_power: DecimalStr
    positions: list[PositionPublic]
    market_value: DecimalStr
    equity: DecimalStr
    realized_pnl: DecimalStr
    unrealized_pnl: DecimalStr
    fees: DecimalStr


class AccountPublic(BaseModel):
    user_id: str
    account_id: str
    cash: DecimalStr
    reserved_cash: DecimalStr
    buying_power: DecimalStr
    equity: DecimalStr
    trading_enabled: bool


class InstrumentPublic(BaseModel):
    symbol: str
    tick_size: DecimalStr
    lot_size: DecimalStr
    min_quantity: DecimalStr
    max_quantity: DecimalStr
    price_band_pct: DecimalStr
    reference_price: DecimalStr | None
    last_price: DecimalStr | None
    status: Literal["trading", "halted"]


class BookPublic(BaseModel):
    symbol: str
    sequence: int
    bids: list[list[DecimalStr]] = Field(description="[price, quantity], best first")
    asks: list[list[DecimalStr]] = Field(description="[price, quantity], best first")


class TradePublic(BaseModel):
    trade_id: str
    price: DecimalStr
    quantity: DecimalStr
    taker_side: Literal["buy", "sell"]
    time: datetime


class CandlePublic(BaseModel):
    time: datetime
    open: DecimalStr
    high: DecimalStr
    low: DecimalStr
    close: DecimalStr
    volume: DecimalStr
    trades: int


class RiskLimitsPublic(BaseModel):
    user_id: str | None = Field(description="null: the defaults for every account")
    max_order_quantity: DecimalStr | None
    max_order_notional: DecimalStr | None
    max_position: DecimalStr | None
    max_open_orders: int | None
    short_limit: DecimalStr | None
    trading_enabled: bool | None = Field(default=None, description="the account's kill switch")
    global_halt: bool | None = Field(default=None, description="defaults only")


class RiskLimitsView(BaseModel):
    effective: RiskLimitsPublic
    account: RiskLimitsPublic | None
    defaults: RiskLimitsPublic


class RiskLimitsUpdate(BaseModel):
    """PUT /risk/limits (admin): without user_id, the defaults. A null limit is
    "unlimited" on the defaults and "use the default" on an account."""

    model_config = ConfigDict(extra="forbid")

    user_id: str | None = None
    max_order_quantity: DecimalStr | None = Field(default=None, pattern=_DEC_PATTERN)
    max_order_notional: DecimalStr | None = Field(default=None, pattern=_DEC_PATTERN)
    max_position: DecimalStr | None = Field(default=None, pattern=_DEC_PATTERN)
    max_open_orders: int | None = Field(default=None, ge=1)
    short_limit: DecimalStr | None = Field(default=None, pattern=_DEC_PATTERN)
    global_halt: bool | None = None


class KillSwitch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str | None = Field(default=None, description="default: yourself (others: admin)")
    enabled: bool = Field(description="true halts trading and cancels open orders")


class KillSwitchResult(BaseModel):
    user_id: str
    trading_enabled: bool
    canceled: int


# -- serializers ------------------------------------------------------------------------


def iso(dt: datetime) -> str:
    """RFC 3339 UTC with microseconds and a Z."""
    if dt.tzinfo is not UTC:
        dt = dt.astimezone(UTC)
    # isoformat is several times cheaper than strftime, and every order and fill in an
    # answer carries timestamps.
    return dt.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def price_str(value: Decimal | None, inst: InstrumentInfo | None) -> str | None:
    if value is None:
        return None
    if inst is None:
        return fmt(value)
    return str(value.quantize(Decimal(1).scaleb(-inst.price_places)))


def avg_price_str(value: Decimal | None, inst: InstrumentInfo | None) -> str | None:
    """An average price: with the tick's decimals, or more when it needs them."""
    if value is None:
        return None
    text = fmt(value) or "0"
    if inst is not None and "." in text and len(text.split(".")[1]) > inst.price_places:
        return text
    return price_str(value, inst)


def qty_str(value: Decimal, inst: InstrumentInfo | None) -> str:
    if inst is None:
        return fmt(value) or "0"
    return str(value.quantize(Decimal(1).scaleb(-inst.quantity_places)))


def money(value: Decimal) -> str:
    return fmt(value) or "0"


def fill_public(fill: FillRow, inst: InstrumentInfo | None = None) -> dict[str, Any]:
    return {
        "trade_id": str(fill.trade_id),
        "order_id": str(fill.order_id),
        "symbol": fill.symbol,
        "side": fill.side,
        "price": price_str(fill.price, inst),
        "quantity": qty_str(fill.quantity, inst),
        "liquidity": fill.liquidity,
        "fee": money(fill.fee),
        "time": iso(fill.time),
    }


def order_public(
    order: OrderRow, inst: InstrumentInfo | None, fills: list[FillRow] | None = None
) -> dict[str, Any]:
    remaining = (
        order.quantity - order.filled_quantity
        if order.status in ("pending_new", "new", "partially_filled")
        else Decimal(0)
    )
    out: dict[str, Any] = {
        "id": str(order.id),
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "side": order.side,
        "type": order.type,
        "time_in_force": order.time_in_force,
        "post_only": order.post_only,
        "price": price_str(order.price, inst),
        "quantity": qty_str(order.quantity, inst),
        "filled_quantity": qty_str(order.filled_quantity, inst),
        "remaining_quantity": qty_str(remaining, inst),
        "average_price": avg_price_str(order.average_price, inst),
        "fees": money(order.fees),
        "status": order.status,
        "reason": order.reason,
        "created_at": iso(order.created_at),
        "updated_at": iso(order.updated_at),
    }
    if fills is not None:
        out["fills"] = [fill_public(f, inst) for f in fills]
    return out


def candle_public(c: CandleRow) -> dict[str, Any]:
    return {
        "time": iso(datetime.fromtimestamp(c.start, tz=UTC)),
        "open": fmt(c.open),
        "high": fmt(c.high),
        "low": fmt(c.low),
        "close": fmt(c.close),
        "volume": fmt(c.volume),
        "trades": c.trades,
    }
