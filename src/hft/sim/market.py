"""Pure market arithmetic for the simulation: instruments, rounding, fair value, quotes.

Nothing here does I/O or reads a clock, so every function can be tested with a seeded
`random.Random` and made-up numbers. Prices inside the simulation are integer ticks and
quantities integer lots (as in the core); decimals appear only when an order is sent.
The fair value is a model quantity (a float number of ticks), never money: it is turned
into an integer tick price before anything is sent.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation
from enum import StrEnum
from typing import Any


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell (the change of position per lot filled)."""
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


def _decimal(value: Any, name: str) -> Decimal:
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"{name}: not a decimal: {value!r}") from exc
    if not d.is_finite():
        raise ValueError(f"{name}: not finite: {value!r}")
    return d


def format_decimal(value: Decimal, step: Decimal) -> str:
    """Format `value` with exactly the decimals of `step` and no exponent."""
    return format(value.quantize(step), "f")


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    """An instrument as the backend describes it (GET /api/v1/instruments), in decimals."""

    symbol: str
    tick_size: Decimal
    lot_size: Decimal
    min_quantity: Decimal
    max_quantity: Decimal
    price_band_pct: Decimal
    reference_price: Decimal
    last_price: Decimal | None = None
    status: str = "trading"

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> InstrumentSpec:
        """Build from one element of GET /instruments; ValueError on a malformed field."""
        last = data.get("last_price")
        spec = cls(
            symbol=str(data["symbol"]),
            tick_size=_decimal(data["tick_size"], "tick_size"),
            lot_size=_decimal(data["lot_size"], "lot_size"),
            min_quantity=_decimal(data.get("min_quantity", data["lot_size"]), "min_quantity"),
            max_quantity=_decimal(data.get("max_quantity", "1e12"), "max_quantity"),
            price_band_pct=_decimal(data.get("price_band_pct") or "0", "price_band_pct"),
            reference_price=_decimal(data.get("reference_price") or "0", "reference_price"),
            last_price=_decimal(last, "last_price") if last not in (None, "") else None,
            status=str(data.get("status", "trading")).lower(),
        )
        if spec.tick_size <= 0 or spec.lot_size <= 0:
            raise ValueError(f"{spec.symbol}: tick_size and lot_size must be positive")
        if spec.min_quantity <= 0 or spec.max_quantity < spec.min_quantity:
            raise ValueError(f"{spec.symbol}: bad min/max quantity")
        return spec

    @property
    def min_lots(self) -> int:
        """Smallest order quantity in lots (at least 1)."""
        return max(1, int((self.min_quantity / self.lot_size).to_integral_value(ROUND_CEILING)))

    @property
    def max_lots(self) -> int:
        """Largest order quantity in lots."""
        return max(
            self.min_lots, int((self.max_quantity / self.lot_size).to_integral_value(ROUND_FLOOR))
        )

    @property
    def anchor_price(self) -> Decimal:
        """The price the market starts from: last trade, else the reference price."""
        if self.last_price is not None and self.last_price > 0:
            return self.last_price
        return self.reference_price

    def to_ticks(self, price: Decimal, rounding: str = ROUND_HALF_EVEN) -> int:
        """Decimal price -> integer ticks, rounded with `rounding`."""
        return int((price / self.tick_size).to_integral_value(rounding))

    def to_lots(self, quantity: Decimal, rounding: str = ROUND_FLOOR) -> int:
        """Decimal quantity -> integer lots, rounded with `rounding` (down by default)."""
        return int((quantity / self.lot_size).to_integral_value(rounding))

    def price_str(self, ticks: int) -> str:
        """Integer ticks -> the decimal string the API expects (on tick by construction)."""
        return format_decimal(Decimal(ticks) * self.tick_size, self.tick_size)

    def qty_str(self, lots: int) -> str:
        """Integer lots -> the decimal string the API expects (on lot by construction)."""
        return format_decimal(Decimal(lots) * self.lot_size, self.lot_size)

    def clamp_lots(self, lots: int) -> int:
        """Clamp a quantity in lots into [min_lots, max_lots]."""
        return min(self.max_lots, max(self.min_lots, lots))

    def lots_for_notional(self, notional: Decimal, price_ticks: int) -> int:
        """Lots worth about `notional` (money) at `price_ticks`, clamped to min/max."""
        price = Decimal(max(1, price_ticks)) * self.tick_size
        return self.clamp_lots(
            int((notional / (price * self.lot_size)).to_integral_value(ROUND_FLOOR))
        )

    def band_ticks(self, anchor_ticks: int, safety: float = 0.8) -> tuple[int, int]:
        """The limit prices (ticks, inclusive) allowed around `anchor_ticks`.

        The engine's band is `|p - ref| * 10000 <= ref * band_bps` with `ref` its last trade
        price, which the simulation only knows approximately; `safety` shrinks the band
        so that a slightly stale anchor does not produce rejects. No band: (1, huge).
        """
        if self.price_band_pct <= 0 or anchor_ticks <= 0:
            return 1, 1 << 62
        width = Decimal(anchor_ticks) * self.price_band_pct / 100 * Decimal(str(safety))
        lo = max(1, int((Decimal(anchor_ticks) - width).to_integral_value(ROUND_CEILING)))
        hi = max(lo, int((Decimal(anchor_ticks) + width).to_integral_value(ROUND_FLOOR)))
        return lo, hi


@dataclass(slots=True)
class FairValue:
    """A mean-reverting random walk of the log price (Ornstein-Uhlenbeck), in ticks.

    `volatility` is the standard deviation of log returns per sqrt(second);
    `reversion` the pull back toward `anchor_ticks` per second (0 = pure random walk),
    which keeps a long-running market near its configured level and inside its bands.
    """

    ticks: float
    anchor_ticks: float
    volatility: float
    reversion: float = 0.0

    def step(self, rng: random.Random, dt: float) -> float:
        """Advance by `dt` seconds using one Gaussian draw from `rng`; returns the new value."""
        if dt <= 0:
            return self.ticks
        x = math.log(self.ticks / self.anchor_ticks)
        x += -self.reversion * x * dt + self.volatility * math.sqrt(dt) * rng.gauss(0.0, 1.0)
        self.ticks = max(1.0, self.anchor_ticks * math.exp(x))
        return self.ticks


@dataclass(frozen=True, slots=True)
class QuoteParams:
    """How a market maker quotes: distances in basis points of the fair value."""

    half_spread_bps: float = 4.0
    levels: int = 5
    level_step_bps: float = 3.0
    size_lots: int = 10
    max_inventory_lots: int = 200
    skew_bps: float = 8.0


@dataclass(frozen=True, slots=True)
class Quote:
    """One resting quote the market maker wants: side, level (0 = best), ticks and lots."""

    side: Side
    level: int
    price: int
    lots: int


def inventory_ratio(inventory_lots: int, max_inventory_lots: int) -> float:
    """Inventory as a fraction of the limit, clamped to [-1, 1]."""
    if max_inventory_lots <= 0:
        return 0.0
    return max(-1.0, min(1.0, inventory_lots / max_inventory_lots))


def compute_quotes(
    fair_ticks: float,
    inventory_lots: int,
    params: QuoteParams,
    spec: InstrumentSpec,
    band: tuple[int, int],
) -> list[Quote]:
    """The quote ladder around `fair_ticks` for a maker holding `inventory_lots`.

    The centre is skewed against the inventory (long -> lower prices, so the maker sells
    more and buys less) by up to `skew_bps`; sizes shrink on the side that would grow the
    inventory, and that side is dropped at the limit. Bids are rounded down and asks up to
    the tick, the best bid is always below the best ask, and quotes outside `band`
    (inclusive tick range) are left out.
    """
    ratio = inventory_ratio(inventory_lots, params.max_inventory_lots)
    centre = fair_ticks * (1.0 - ratio * params.skew_bps / 1e4)
    half = max(0.5, fair_ticks * params.half_spread_bps / 1e4)
    step = max(1, round(fair_ticks * params.level_step_bps / 1e4))
    best_bid = math.floor(centre - half)
    best_ask = math.ceil(centre + half)
    if best_ask <= best_bid:
        best_ask = best_bid + 1
    lo, hi = band
    quotes: list[Quote] = []
    for side in (Side.BUY, Side.SELL):
        # Buying grows a long inventory: the buy side shrinks as ratio -> +1.
        growth = ratio * side.sign
        if growth >= 1.0:
            continue
        lots = spec.clamp_lots(max(1, round(params.size_lots * min(1.0, 1.0 - growth))))
        for level in range(max(1, params.levels)):
            price = best_bid - level * step if side is Side.BUY else best_ask + level * step
            if lo <= price <= hi:
                quotes.append(Quote(side, level, price, lots))
    return quotes


@dataclass(frozen=True, slots=True)
class LiveQuote:
    """A quote the maker has resting: the backend's order id, its price (ticks), its open
    quantity and the quantity already filled (lots)."""

    order_id: str
    price: int
    lots: int
    filled_lots: int = 0


@dataclass(frozen=True, slots=True)
class Place:
    quote: Quote


@dataclass(frozen=True, slots=True)
class Amend:
    order_id: str
    quote: Quote


@dataclass(frozen=True, slots=True)
class Cancel:
    order_id: str
    slot: tuple[Side, int]


QuoteAction = Place | Amend | Cancel


def plan_requote(
    live: Mapping[tuple[Side, int], LiveQuote],
    target: Sequence[Quote],
    tolerance_ticks: int = 0,
) -> list[QuoteAction]:
    """The actions that turn the `live` ladder into `target`.

    A slot (side, level) with no target is canceled, a missing one placed, and one whose
    price moved by more than `tolerance_ticks` or whose size changed is amended (the
    backend re-queues it). Cancels come first so a maker never crosses itself while
    moving, then amends and places from the best level outwards.
    """
    wanted = {(q.side, q.level): q for q in target}
    cancels: list[QuoteAction] = [
        Cancel(lq.order_id, slot)
        for slot, lq in sorted(live.items(), key=_slot_key)
        if slot not in wanted
    ]
    others: list[QuoteAction] = []
    for slot, quote in sorted(wanted.items(), key=_slot_key):
        current = live.get(slot)
        if current is None:
            others.append(Place(quote))
        elif abs(current.price - quote.price) > tolerance_ticks or current.lots != quote.lots:
            others.append(Amend(current.order_id, quote))
    return cancels + others


def _slot_key(item: tuple[tuple[Side, int], object]) -> tuple[int, int]:
    (side, level), _ = item
    return level, 0 if side is Side.BUY else 1


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """An order a trader decides to send, in ticks and lots (price 0 for market orders)."""

    symbol: str
    side: Side
    type: str
    time_in_force: str
    price: int
    lots: int
    post_only: bool = False

    def to_request(
        self, spec: InstrumentSpec, client_order_id: str | None = None
    ) -> dict[str, Any]:
        """The POST /orders body, with decimal strings."""
        body: dict[str, Any] = {
            "symbol": self.symbol,
            "side": self.side.value,
            "type": self.type,
            "time_in_force": self.time_in_force,
            "quantity": spec.qty_str(self.lots),
        }
        if self.type == "limit":
            body["price"] = spec.price_str(self.price)
        if self.post_only:
            body["post_only"] = True
        if client_order_id is not None:
            body["client_order_id"] = client_order_id
        return body


@dataclass(frozen=True, slots=True)
class NoiseParams:
    """How a noise trader picks orders."""

    market_probability: float = 0.3
    ioc_probability: float = 0.2
    max_offset_bps: float = 15.0
    cross_probability: float = 0.25
    size_lots: int = 5
    max_position_lots: int = 100


def noise_order(
    rng: random.Random,
    spec: InstrumentSpec,
    mid_ticks: float,
    position_lots: int,
    params: NoiseParams,
    band: tuple[int, int],
) -> OrderIntent:
    """A random order around `mid_ticks`, leaning against a position past its limit.

    Market orders (probability `market_probability`) or limit orders: mostly passive at a
    random distance up to `max_offset_bps` from the mid, sometimes (`cross_probability`)
    through it; IOC with probability `ioc_probability`, else GTC. The size is 1 to
    2 x `size_lots`, clamped to the instrument's min/max.
    """
    ratio = inventory_ratio(position_lots, params.max_position_lots)
    # Past half the limit the trader prefers reducing: P(buy) falls from 0.5 to 0 at the limit.
    p_buy = 0.5 if abs(ratio) < 0.5 else 0.5 - (abs(ratio) - 0.5) * math.copysign(1.0, ratio)
    side = Side.BUY if rng.random() < p_buy else Side.SELL
    lots = spec.clamp_lots(rng.randint(1, max(1, 2 * params.size_lots)))
    if rng.random() < params.market_probability:
        return OrderIntent(spec.symbol, side, "market", "ioc", 0, lots)
    offset = rng.random() * params.max_offset_bps / 1e4 * mid_ticks
    crossing = rng.random() < params.cross_probability
    # A passive buy sits below the mid and a crossing one above it; mirrored for sells.
    above = (side is Side.BUY) == crossing
    price = math.ceil(mid_ticks + offset) if above else math.floor(mid_ticks - offset)
    lo, hi = band
    price = min(hi, max(lo, price))
    tif = "ioc" if rng.random() < params.ioc_probability else "gtc"
    return OrderIntent(spec.symbol, side, "limit", tif, price, lots)


@dataclass(frozen=True, slots=True)
class MomentumParams:
    """A moving-average crossover trader."""

    short_window: int = 5
    long_window: int = 20
    threshold_bps: float = 2.0
    size_lots: int = 5
    max_position_lots: int = 60


def momentum_signal(prices: Sequence[Decimal], params: MomentumParams) -> Side | None:
    """BUY when the short average is above the long one by more than the threshold.

    `prices` are trade prices oldest first; None with fewer than `long_window` prices or
    inside the threshold.
    """
    if params.long_window <= 0 or len(prices) < params.long_window:
        return None
    short = sum(prices[-params.short_window :], Decimal(0)) / min(params.short_window, len(prices))
    long = sum(prices[-params.long_window :], Decimal(0)) / params.long_window
    if long <= 0:
        return None
    gap_bps = (short - long) / long * 10000
    if gap_bps > Decimal(str(params.threshold_bps)):
        return Side.BUY
    if gap_bps < -Decimal(str(params.threshold_bps)):
        return Side.SELL
    return None


def momentum_order(
    spec: InstrumentSpec, signal: Side | None, position_lots: int, params: MomentumParams
) -> OrderIntent | None:
    """A market order following `signal`, or one reducing a position past its limit.

    Never grows the position beyond `max_position_lots`; with no signal and the position
    inside the limit, nothing is sent.
    """
    if abs(position_lots) > params.max_position_lots:
        side = Side.SELL if position_lots > 0 else Side.BUY
        lots = spec.clamp_lots(abs(position_lots) - params.max_position_lots)
        return OrderIntent(spec.symbol, side, "market", "ioc", 0, lots)
    if signal is None:
        return None
    room = params.max_position_lots - position_lots * signal.sign
    lots = min(params.size_lots, room)
    if lots < spec.min_lots:
        return None
    return OrderIntent(spec.symbol, signal, "market", "ioc", 0, spec.clamp_lots(lots))
