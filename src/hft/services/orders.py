"""Order requests: validation of the API's order and amend bodies (decimals -> ticks/lots).

Every check raises InvalidInputError with a specific code and names the field; nothing is
persisted or sent before a request has passed all of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from hft.services.decimals import parse_decimal, to_units
from hft.services.errors import InvalidInputError
from hft.services.instruments import InstrumentInfo

SIDES = ("buy", "sell")
TYPES = ("limit", "market")
TIFS = ("gtc", "day", "ioc", "fok")
OPEN_STATUSES = ("pending_new", "new", "partially_filled")
FINAL_STATUSES = ("filled", "canceled", "rejected", "expired")
_CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """A validated order: integer ticks/lots for the engine, decimals for the record."""

    symbol: str
    symbol_id: int
    side: str
    type: str
    time_in_force: str
    price_ticks: int  # 0 for market orders
    quantity_lots: int
    price: Decimal | None
    quantity: Decimal
    post_only: bool
    client_order_id: str | None

    def fingerprint(self) -> tuple[object, ...]:
        """What makes two requests "the same order" for client_order_id idempotency."""
        return (
            self.symbol,
            self.side,
            self.type,
            self.time_in_force,
            self.price_ticks,
            self.quantity_lots,
            self.post_only,
        )


def _enum(value: object, field: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value.lower() not in allowed:
        raise InvalidInputError(
            f"invalid_{field}", f"{field} must be one of {', '.join(allowed)}", field
        )
    return value.lower()


def parse_quantity(value: object, inst: InstrumentInfo, *, field: str = "quantity") -> int:
    """Quantity decimal -> lots. Raises invalid_quantity, quantity_not_on_lot,
    quantity_out_of_range."""
    qty = parse_decimal(value, field, code="invalid_quantity")
    if qty <= 0:
        raise InvalidInputError("invalid_quantity", f"{field} must be positive", field)
    lots = to_units(qty, inst.lot_size, field, "quantity_not_on_lot")
    if lots < inst.min_qty or lots > inst.max_qty:
        raise InvalidInputError(
            "quantity_out_of_range",
            f"{field} must be between {inst.quantity(inst.min_qty)} and "
            f"{inst.quantity(inst.max_qty)}",
            field,
        )
    return lots


def parse_price(value: object, inst: InstrumentInfo, *, field: str = "price") -> int:
    """Limit price decimal -> ticks. Raises invalid_price, price_not_on_tick,
    price_out_of_band."""
    price = parse_decimal(value, field, code="invalid_price")
    if price <= 0:
        raise InvalidInputError("invalid_price", f"{field} must be positive", field)
    ticks = to_units(price, inst.tick_size, field, "price_not_on_tick")
    band = inst.band()
    if band is not None and not band[0] <= ticks <= band[1]:
        raise InvalidInputError(
            "price_out_of_band",
            f"{field} must be between {inst.price(band[0])} and {inst.price(band[1])}",
            field,
        )
    return ticks


def validate_order(
    body: Mapping[str, object], instruments: Mapping[str, InstrumentInfo]
) -> OrderSpec:
    """Validate a POST /orders body (already shape-checked: known keys only).

    Raises InvalidInputError: unknown_symbol, symbol_halted, invalid_side, invalid_type,
    invalid_time_in_force, invalid_quantity, quantity_not_on_lot, quantity_out_of_range,
    price_required, price_not_allowed, invalid_price, price_not_on_tick,
    price_out_of_band, invalid_post_only, invalid_client_order_id.
    """
    symbol = body.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise InvalidInputError("unknown_symbol", "symbol is required", "symbol")
    inst = instruments.get(symbol) or instruments.get(symbol.upper())
    if inst is None:
        raise InvalidInputError("unknown_symbol", f"unknown symbol {symbol[:32]!r}", "symbol")
    side = _enum(body.get("side"), "side", SIDES)
    otype = _enum(body.get("type", "limit"), "type", TYPES)
    tif_default = "ioc" if otype == "market" else "gtc"
    tif = _enum(body.get("time_in_force") or tif_default, "time_in_force", TIFS)
    post_only = body.get("post_only", False)
    if post_only is None:
        post_only = False
    if not isinstance(post_only, bool):
        raise InvalidInputError("invalid_post_only", "post_only must be a boolean", "post_only")
    cid = body.get("client_order_id")
    if cid is not None and (not isinstance(cid, str) or not _CLIENT_ID_RE.match(cid)):
        raise InvalidInputError(
            "invalid_client_order_id",
            "client_order_id must be 1-64 characters of letters, digits and ._:-",
            "client_order_id",
        )
    lots = parse_quantity(body.get("quantity"), inst)
    raw_price = body.get("price")
    if otype == "limit":
        if raw_price is None:
            raise InvalidInputError("price_required", "a limit order needs a price", "price")
        ticks = parse_price(raw_price, inst)
    else:
        if raw_price is not None:
            raise InvalidInputError("price_not_allowed", "a market order takes no price", "price")
        ticks = 0
    if post_only and (otype == "market" or tif in ("ioc", "fok")):
        raise InvalidInputError(
            "invalid_post_only", "post_only needs a limit order with gtc or day", "post_only"
        )
    if not inst.trading:
        raise InvalidInputError("symbol_halted", f"{inst.symbol} is halted", "symbol")
    return OrderSpec(
        symbol=inst.symbol,
        symbol_id=inst.symbol_id,
        side=side,
        type=otype,
        time_in_force=tif,
        price_ticks=ticks,
        quantity_lots=lots,
        price=inst.price(ticks) if otype == "limit" else None,
        quantity=inst.quantity(lots),
        post_only=post_only,
        client_order_id=cid,
    )


@dataclass(frozen=True, slots=True)
class AmendSpec:
    """A validated amend: new total quantity and price in lots/ticks."""

    quantity_lots: int
    price_ticks: int
    leaves_lots: int  # what the engine gets: new total - filled


def validate_amend(
    body: Mapping[str, object],
    inst: InstrumentInfo,
    *,
    order_type: str,
    price_ticks: int,
    quantity_lots: int,
    filled_lots: int,
) -> AmendSpec:
    """Validate PATCH /orders/{id}: ``quantity`` is the new *total* order quantity.

    Raises InvalidInputError: nothing_to_amend, invalid_quantity (not above the filled
    quantity), quantity_not_on_lot, invalid_price, price_not_on_tick, price_out_of_band,
    price_not_allowed (market orders).
    """
    if body.get("quantity") is None and body.get("price") is None:
        raise InvalidInputError("nothing_to_amend", "give a new quantity and/or price", None)
    new_lots = quantity_lots
    if body.get("quantity") is not None:
        qty = parse_decimal(body["quantity"], "quantity", code="invalid_quantity")
        if qty <= 0:
            raise InvalidInputError("invalid_quantity", "quantity must be positive", "quantity")
        new_lots = to_units(qty, inst.lot_size, "quantity", "quantity_not_on_lot")
        if new_lots > inst.max_qty:
            raise InvalidInputError(
                "quantity_out_of_range",
                f"quantity must be at most {inst.quantity(inst.max_qty)}",
                "quantity",
            )
        if new_lots <= filled_lots:
            raise InvalidInputError(
                "invalid_quantity",
                f"quantity must exceed the filled quantity {inst.quantity(filled_lots)}",
                "quantity",
            )
    new_ticks = price_ticks
    if body.get("price") is not None:
        if order_type != "limit":
            raise InvalidInputError("price_not_allowed", "a market order has no price", "price")
        new_ticks = parse_price(body["price"], inst)
    return AmendSpec(
        quantity_lots=new_lots, price_ticks=new_ticks, leaves_lots=new_lots - filled_lots
    )
