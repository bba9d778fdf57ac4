"""Pre-trade risk: pure functions over an account snapshot taken inside the write
transaction that inserts the order (so two orders can never spend the same cash).

All amounts here are decimals (money in the quote currency, quantities in instrument
units); prices arrive in ticks and are converted with the instrument.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from hft.services.errors import RiskRejectedError
from hft.services.instruments import InstrumentInfo

BPS = Decimal(10000)


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Effective limits of one account (None = unlimited); quantities in instrument units."""

    max_order_quantity: Decimal | None = None
    max_order_notional: Decimal | None = None
    max_position: Decimal | None = None
    max_open_orders: int | None = None
    short_limit: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """What risk needs to know about the account, read under the account's write lock."""

    cash: Decimal
    reserved: Decimal
    trading_enabled: bool
    position: Decimal  # signed quantity in the order's symbol
    open_buy: Decimal  # leaves of open buy orders in the symbol
    open_sell: Decimal  # leaves of open sell orders in the symbol
    open_orders: int  # open orders over all symbols

    @property
    def buying_power(self) -> Decimal:
        return self.cash - self.reserved


def fee(notional: Decimal, bps: Decimal, places: int, *, rounding: str) -> Decimal:
    """Fee on a notional in basis points, rounded to ``places`` decimals."""
    return (notional * bps / BPS).quantize(Decimal(1).scaleb(-places), rounding=rounding)


def reservation(
    side: str,
    price_ticks: int,
    leaves_lots: int,
    inst: InstrumentInfo,
    taker_fee_bps: Decimal,
    places: int,
) -> Decimal:
    """Cash held back for an open order: a buy reserves price x leaves + the taker fee
    (rounded up, so the fees of its fills never exceed it); a sell reserves nothing."""
    if side != "buy" or leaves_lots <= 0:
        return Decimal(0)
    notional = inst.price(price_ticks) * inst.quantity(leaves_lots)
    return notional + fee(notional, max(taker_fee_bps, Decimal(0)), places, rounding=ROUND_CEILING)


def collar_price(side: str, best: int, inst: InstrumentInfo, collar_pct: Decimal) -> int:
    """Protection limit (ticks) for a market order from the best opposite price (ticks).

    Buys: best ask x (1 + collar), rounded down to a tick; sells: best bid x (1 - collar),
    rounded up; both clamped into the instrument's price band.
    """
    factor = collar_pct / Decimal(100)
    if side == "buy":
        ticks = int((Decimal(best) * (1 + factor)).to_integral_value(rounding=ROUND_FLOOR))
        ticks = max(ticks, best)
    else:
        ticks = int((Decimal(best) * (1 - factor)).to_integral_value(rounding=ROUND_CEILING))
        ticks = max(1, min(ticks, best))
    band = inst.band()
    if band is not None:
        ticks = min(max(ticks, band[0]), band[1])
    return ticks


def check_order(
    *,
    side: str,
    price_ticks: int,
    quantity_lots: int,
    inst: InstrumentInfo,
    account: AccountSnapshot,
    limits: RiskLimits,
    global_halt: bool,
    taker_fee_bps: Decimal,
    places: int,
) -> Decimal:
    """Check a new order (price = limit or collar price, ticks) and return the cash to
    reserve.

    Raises RiskRejectedError: trading_halted, kill_switch, order_quantity_limit,
    order_notional_limit, max_open_orders, position_limit, insufficient_position,
    insufficient_buying_power.
    """
    if global_halt:
        raise RiskRejectedError("trading_halted", "trading is halted for all accounts")
    if not account.trading_enabled:
        raise RiskRejectedError("kill_switch", "the account's kill switch is on")
    qty = inst.quantity(quantity_lots)
    notional = inst.price(price_ticks) * qty
    if limits.max_order_quantity is not None and qty > limits.max_order_quantity:
        raise RiskRejectedError(
            "order_quantity_limit",
            f"quantity {qty} exceeds the limit {limits.max_order_quantity}",
            "quantity",
        )
    if limits.max_order_notional is not None and notional > limits.max_order_notional:
        raise RiskRejectedError(
            "order_notional_limit",
            f"notional {notional} exceeds the limit {limits.max_order_notional}",
            "quantity",
        )
    if limits.max_open_orders is not None and account.open_orders >= limits.max_open_orders:
        raise RiskRejectedError(
            "max_open_orders", f"at most {limits.max_open_orders} open orders are allowed"
        )
    if side == "buy":
        worst = account.position + account.open_buy + qty
        if limits.max_position is not None and worst > limits.max_position:
            raise RiskRejectedError(
                "position_limit",
                f"a position of {worst} would exceed the limit {limits.max_position}",
                "quantity",
            )
    else:
        worst = account.position - account.open_sell - qty
        if worst < -limits.short_limit:
            available = account.position - account.open_sell + limits.short_limit
            raise RiskRejectedError(
                "insufficient_position",
                f"can sell at most {max(available, Decimal(0))} (position, open sells and "
                f"short limit {limits.short_limit})",
                "quantity",
            )
        if limits.max_position is not None and -worst > limits.max_position:
            raise RiskRejectedError(
                "position_limit",
                f"a position of {worst} would exceed the limit {limits.max_position}",
                "quantity",
            )
    reserve = reservation(side, price_ticks, quantity_lots, inst, taker_fee_bps, places)
    if reserve > account.buying_power:
        raise RiskRejectedError(
            "insufficient_buying_power",
            f"order needs {reserve} but buying power is {account.buying_power}",
        )
    return reserve


def check_amend_limits(
    *,
    side: str,
    price_ticks: int,
    total_lots: int,
    leaves_delta_lots: int,
    inst: InstrumentInfo,
    account: AccountSnapshot,
    limits: RiskLimits,
    global_halt: bool,
    reducing: bool,
) -> None:
    """Check an amend: the new total quantity (lots) and notional against the order
    limits, and the change of open quantity against the position and short limits.
    A pure reduction (same price, lower quantity) only lowers risk and always passes.

    Raises RiskRejectedError: trading_halted, kill_switch, order_quantity_limit,
    order_notional_limit, position_limit, insufficient_position.
    """
    if reducing:
        return
    if global_halt:
        raise RiskRejectedError("trading_halted", "trading is halted for all accounts")
    if not account.trading_enabled:
        raise RiskRejectedError("kill_switch", "the account's kill switch is on")
    qty = inst.quantity(total_lots)
    if limits.max_order_quantity is not None and qty > limits.max_order_quantity:
        raise RiskRejectedError(
            "order_quantity_limit",
            f"quantity {qty} exceeds the limit {limits.max_order_quantity}",
            "quantity",
        )
    notional = inst.price(price_ticks) * qty
    if limits.max_order_notional is not None and notional > limits.max_order_notional:
        raise RiskRejectedError(
            "order_notional_limit",
            f"notional {notional} exceeds the limit {limits.max_order_notional}",
            "quantity",
        )
    if leaves_delta_lots <= 0:
        return
    delta = inst.quantity(leaves_delta_lots)
    if side == "buy":
        worst = account.position + account.open_buy + delta
        if limits.max_position is not None and worst > limits.max_position:
            raise RiskRejectedError(
                "position_limit",
                f"a position of {worst} would exceed the limit {limits.max_position}",
                "quantity",
            )
    else:
        worst = account.position - account.open_sell - delta
        if worst < -limits.short_limit:
            raise RiskRejectedError(
                "insufficient_position",
                f"selling {delta} more exceeds the position and short limit {limits.short_limit}",
                "quantity",
            )
        if limits.max_position is not None and -worst > limits.max_position:
            raise RiskRejectedError(
                "position_limit",
                f"a position of {worst} would exceed the limit {limits.max_position}",
                "quantity",
            )


def check_amend_reserve(extra: Decimal, account: AccountSnapshot) -> None:
    """Refuse an amend that needs ``extra`` more cash than the account has free.

    Raises RiskRejectedError(insufficient_buying_power).
    """
    if extra > 0 and extra > account.buying_power:
        raise RiskRejectedError(
            "insufficient_buying_power",
            f"amend needs {extra} more but buying power is {account.buying_power}",
        )
