"""Instruments as the broker sees them: decimal sizes plus the engine's integer limits."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from hft.services.decimals import decimals_of, from_units


@dataclass(frozen=True, slots=True)
class InstrumentInfo:
    """One tradable instrument. Limits in lots, prices in ticks, sizes as decimals."""

    symbol_id: int
    symbol: str
    tick_size: Decimal
    lot_size: Decimal
    min_qty: int  # lots
    max_qty: int  # lots
    band_bps: int  # 0 = no price band
    reference_price: int  # ticks; 0 = none
    trading: bool = True

    @property
    def price_places(self) -> int:
        return decimals_of(self.tick_size)

    @property
    def quantity_places(self) -> int:
        return decimals_of(self.lot_size)

    def price(self, ticks: int) -> Decimal:
        """Ticks to a decimal price."""
        return from_units(ticks, self.tick_size)

    def quantity(self, lots: int) -> Decimal:
        """Lots to a decimal quantity."""
        return from_units(lots, self.lot_size)

    def band(self) -> tuple[int, int] | None:
        """Inclusive (low, high) limit prices in ticks accepted by the engine, or None."""
        if self.band_bps <= 0 or self.reference_price <= 0:
            return None
        ref = self.reference_price
        # |p - ref| * 10000 <= ref * band_bps
        span = ref * self.band_bps // 10000
        return max(1, ref - span), ref + span
