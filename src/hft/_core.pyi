"""
The C++ matching core. Prices are integer ticks, quantities integer lots, timestamps
ns from the caller. Semantics: docs/engine-semantics.md.
"""

from typing import Annotated

import numpy
from numpy.typing import NDArray
from typing_extensions import Buffer

def layout() -> dict[str, int]:
    """
    sizeof and field offsets (bytes) of Command and Event, e.g. {"command.size": 56,
    "event.price": 32, ...}; must equal COMMAND_DTYPE and EVENT_DTYPE.
    """

class Core:
    """One matching engine: instruments, books, accounts and an event buffer."""

    def __init__(self, max_orders: int = 1048576, default_max_open_orders: int = 0) -> None:
        """
        Create an empty core holding at most max_orders live orders; default_max_open_orders
        caps live GTC/DAY orders per account (0 = unlimited). Raises ValueError on out-of-range
        values.
        """

    def add_instrument(
        self,
        symbol_id: int,
        symbol: str,
        min_qty: int,
        max_qty: int,
        band_bps: int,
        reference_price: int,
        status: int,
    ) -> None:
        """
        Add an instrument (quantities in lots, reference_price in ticks, band in basis points, 0
        = none). Emits no event. Raises ValueError on a duplicate id/symbol or invalid values.
        """

    def submit(
        self,
        order_id: int,
        account_id: int,
        symbol_id: int,
        side: int,
        type: int,
        tif: int,
        price: int,
        qty: int,
        post_only: int = 0,
        stp: int = 0,
        ts: int = 0,
    ) -> int:
        """
        Submit an order (price in ticks, ignored for market orders; qty in lots; ts in ns).
        Appends its events to the buffer and returns how many.
        """

    def cancel(self, order_id: int, account_id: int, ts: int = 0) -> int:
        """
        Cancel a live order of the account; returns the number of events appended.
        """

    def amend(self, order_id: int, account_id: int, price: int, qty: int, ts: int = 0) -> int:
        """
        Amend a live order to a new price (ticks) and new leaves quantity (lots); returns the
        number of events appended.
        """

    def cancel_all(self, account_id: int, symbol_id: int = 0, ts: int = 0) -> int:
        """
        Cancel every live order of the account (on symbol_id, or all symbols when 0); returns
        the number of events appended.
        """

    def set_kill_switch(self, account_id: int, enabled: bool, ts: int = 0) -> int:
        """
        Set the account's kill switch; enabling cancels its live orders. Returns the number of
        events appended.
        """

    def set_max_open_orders(self, account_id: int, max_open_orders: int, ts: int = 0) -> int:
        """
        Override the engine default cap on live GTC/DAY orders for the account (0 = unlimited).
        Emits nothing; raises ValueError when negative.
        """

    def set_instrument_status(self, symbol_id: int, status: int, ts: int = 0) -> int:
        """
        Set TRADING (1) or HALTED (2). Emits nothing; an unknown symbol or status is ignored.
        """

    def expire_day(self, symbol_id: int = 0, ts: int = 0) -> int:
        """
        Expire every live DAY order (of symbol_id, or all symbols when 0); returns the number of
        events appended.
        """

    def process(self, commands: Buffer) -> int:
        """
        Run many commands given as C-contiguous COMMAND_DTYPE records (a uint8 or COMMAND_DTYPE
        numpy array, bytes, ...); their events carry cmd_index. Returns the number of events
        appended. Raises ValueError if the length is not a multiple of the record size or a
        command kind is unknown (then nothing is run), TypeError if not a contiguous buffer.
        """

    def take_events(self) -> Annotated[NDArray[numpy.uint8], dict(shape=(None,))]:
        """
        Move the buffered events out as raw EVENT_DTYPE bytes (view with .view(EVENT_DTYPE)) and
        clear the buffer.
        """

    def clear_events(self) -> None:
        """Drop the buffered events."""

    def pending_events(self) -> int:
        """Number of buffered events."""

    def best_bid(self, symbol_id: int) -> tuple[int, int] | None:
        """(price ticks, total qty lots) of the best bid, or None."""

    def best_ask(self, symbol_id: int) -> tuple[int, int] | None:
        """(price ticks, total qty lots) of the best ask, or None."""

    def depth(
        self, symbol_id: int, levels: int
    ) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
        """
        (bids, asks), each best first as (price ticks, qty lots, order_count), at most `levels`
        per side; empty for an unknown symbol.
        """

    def order(
        self, order_id: int
    ) -> tuple[int, int, int, int, int, int, int, int, int, int, int, int] | None:
        """
        (order_id, account_id, symbol_id, side, tif, price, qty, leaves_qty, filled_qty,
        post_only, stp, ts) of a live order, or None. qty = filled + leaves (lots); ts is the
        submit command's (ns).
        """

    def open_orders(
        self, account_id: int
    ) -> list[tuple[int, int, int, int, int, int, int, int, int, int, int, int]]:
        """The account's live orders in ascending order id (tuples as order())."""

    def instruments(self) -> list[tuple[int, str, int, int, int, int, int]]:
        """
        (symbol_id, symbol, min_qty, max_qty, band_bps, reference_price, status) in ascending
        id; reference_price is the last trade price (ticks) once the symbol has traded.
        """

    def live_orders(self) -> int:
        """Number of resting orders in all books."""

    def state_hash(self) -> int:
        """
        64-bit hash of the whole state as specified in docs/engine-semantics.md.
        """

    def snapshot(self) -> bytes:
        """
        Versioned, checksummed binary image of the full state (not the event buffer).
        """

    def restore(self, data: Buffer) -> None:
        """
        Load a snapshot into an empty core. Raises ValueError on malformed data or when the core
        already holds instruments (and then changes nothing).
        """
