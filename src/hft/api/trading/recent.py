"""The state of recently changed orders as the projection committed it, so the answer
to POST /orders needs no database read after the projection caught up.

Filled by the projection's listener with each committed batch; an entry is used only if
it reflects at least the engine sequence the caller waited for. When another backend
process applied the events, the projection reads the orders back, and an order read
back is kept only if the batch holds all of its fills.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from hft.api.trading.schemas import order_public

if TYPE_CHECKING:
    from hft.api.trading.projection import AppliedBatch
    from hft.db.models.trading import FillRow, OrderRow
    from hft.services.instruments import InstrumentInfo


class RecentOrders:
    """Rows are kept as the projection handed them over (detached, never changed) and
    rendered only when an answer needs them: most orders in a batch (resting orders
    filled passively, cancels) are never asked for here."""

    def __init__(
        self, instruments: Callable[[], dict[str, InstrumentInfo]], capacity: int = 20_000
    ) -> None:
        self._instruments = instruments
        self.capacity = capacity
        # order id -> (last applied sequence, the order row, its fills seen so far)
        self._orders: OrderedDict[int, tuple[int, OrderRow, list[FillRow]]] = OrderedDict()

    def on_applied(self, batch: AppliedBatch) -> None:
        fills: dict[int, list[FillRow]] = {}
        filled: dict[int, Decimal] = {}
        for fill in batch.fills:
            fills.setdefault(fill.order_id, []).append(fill)
            filled[fill.order_id] = filled.get(fill.order_id, Decimal(0)) + fill.quantity
        for order in batch.orders.values():
            known = self._orders.pop(order.id, None)
            if order.id in batch.observed:
                # Read back after another process applied it: its row may be past this
                # batch (the database's state then), and it is kept only if this batch's
                # fills are all its fills (an order that trades on arrival); otherwise
                # only the database has them all.
                if order.filled_quantity != filled.get(order.id, Decimal(0)):
                    continue
                merged = fills.get(order.id, [])
            elif known is not None:
                merged = known[2] + fills.get(order.id, [])
            elif order.filled_quantity == filled.get(order.id, Decimal(0)):
                merged = fills.get(order.id, [])
            else:
                # It had fills before this cache saw it: only the database has them all.
                continue
            self._orders[order.id] = (order.last_sequence, order, merged)
            if len(self._orders) > self.capacity:
                self._orders.popitem(last=False)

    def get(self, order_id: int, at_least: int) -> dict[str, Any] | None:
        """The order with its fills if known as of engine sequence `at_least`."""
        entry = self._orders.get(order_id)
        if entry is None or entry[0] < at_least:
            return None
        _, order, fills = entry
        return order_public(order, self._instruments().get(order.symbol), fills)
