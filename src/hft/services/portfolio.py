"""Portfolio math: positions with cost basis, realized P&L on reducing and flipping,
fees, cash, and mark-to-market valuation. All values are exact decimals.

A position keeps its *cost basis* (what the open quantity cost, a positive amount for
longs and shorts alike) instead of a rounded average, so a position opened and closed
in full realizes exactly the price difference. Fees are kept apart from realized P&L:
cash moves by notional and fee, so ``equity - deposits = realized + unrealized - fees``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Position:
    """A signed position in one symbol (quantity < 0 is short)."""

    quantity: Decimal = ZERO
    cost_basis: Decimal = ZERO  # >= 0: cost of the open quantity at entry prices
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO

    def average_cost(self, places: int = 8) -> Decimal:
        """Average entry price of the open quantity (0 when flat)."""
        if self.quantity == 0:
            return ZERO
        return (self.cost_basis / abs(self.quantity)).quantize(
            Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN
        )


@dataclass(frozen=True, slots=True)
class FillEffect:
    position: Position
    realized: Decimal  # realized P&L of this fill (before fees)
    cash_delta: Decimal  # signed change of cash, fee included


def apply_fill(
    pos: Position, side: str, quantity: Decimal, price: Decimal, fee: Decimal, places: int = 8
) -> FillEffect:
    """Apply one fill (decimal quantity > 0 and price) to a position.

    Buying against a short (or selling against a long) first closes up to the open
    quantity, realizing the difference to the proportional cost basis; the rest opens a
    position the other way at the fill price.
    """
    if quantity <= 0:
        raise ValueError("fill quantity must be positive")
    notional = price * quantity
    signed = quantity if side == "buy" else -quantity
    cash_delta = (-notional if side == "buy" else notional) - fee
    qty, basis, realized = pos.quantity, pos.cost_basis, ZERO
    if qty == 0 or (qty > 0) == (signed > 0):
        qty += signed
        basis += notional
    else:
        closing = min(abs(qty), quantity)
        if closing == abs(qty):
            released = basis
        else:
            released = (basis * closing / abs(qty)).quantize(
                Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN
            )
        proceeds = price * closing
        realized = proceeds - released if qty > 0 else released - proceeds
        basis -= released
        qty += closing if signed > 0 else -closing
        rest = quantity - closing
        if rest > 0:
            qty = rest if signed > 0 else -rest
            basis = price * rest
    if qty == 0:
        basis = ZERO
    return FillEffect(
        Position(qty, basis, pos.realized_pnl + realized, pos.fees + fee), realized, cash_delta
    )


@dataclass(frozen=True, slots=True)
class Valuation:
    market_price: Decimal | None
    market_value: Decimal
    unrealized_pnl: Decimal


def mark(pos: Position, price: Decimal | None) -> Valuation:
    """Value a position at ``price`` (the last trade); unpriced positions are worth their
    cost basis with no unrealized P&L."""
    if price is None:
        signed_basis = pos.cost_basis if pos.quantity >= 0 else -pos.cost_basis
        return Valuation(None, signed_basis, ZERO)
    value = pos.quantity * price
    sign = 1 if pos.quantity > 0 else -1
    unrealized = value - sign * pos.cost_basis if pos.quantity != 0 else ZERO
    return Valuation(price, value, unrealized)


def equity(cash: Decimal, valuations: list[Valuation]) -> Decimal:
    """Cash plus the market value of every position (shorts count negative)."""
    return cash + sum((v.market_value for v in valuations), ZERO)
