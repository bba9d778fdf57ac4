from datetime import UTC, datetime
from decimal import Decimal

from hft.api.trading.projection import AppliedBatch
from hft.api.trading.recent import RecentOrders
from hft.db.models.trading import FillRow, OrderRow

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def order(oid, filled="0", seq=5):
    return OrderRow(
        id=oid,
        account_id=1,
        client_order_id=None,
        symbol="AAPL",
        side="buy",
        type="limit",
        time_in_force="gtc",
        post_only=False,
        price=Decimal("190"),
        price_ticks=19000,
        quantity=Decimal(10),
        quantity_lots=10,
        filled_lots=int(filled),
        leaves_lots=10 - int(filled),
        filled_quantity=Decimal(filled),
        filled_notional=Decimal(0),
        average_price=None,
        fees=Decimal(0),
        status="new",
        reason=None,
        reserved=Decimal(0),
        last_sequence=seq,
        created_at=NOW,
        updated_at=NOW,
    )


def fill(oid, qty, trade_id):
    return FillRow(
        trade_id=trade_id,
        order_id=oid,
        account_id=1,
        symbol="AAPL",
        side="buy",
        price=Decimal("190"),
        quantity=Decimal(qty),
        liquidity="taker",
        fee=Decimal(0),
        sequence=5,
        time=NOW,
    )


def test_cached_only_when_every_fill_was_seen():
    recent = RecentOrders(lambda: {})
    recent.on_applied(AppliedBatch(orders={1: order(1, "3")}, fills=[fill(1, 3, 7)]))
    doc = recent.get(1, 5)
    assert doc is not None
    assert [f["trade_id"] for f in doc["fills"]] == ["7"]
    assert recent.get(1, 6) is None  # not as new as asked
    # an order first seen with older fills is not cached
    recent.on_applied(AppliedBatch(orders={2: order(2, "4")}, fills=[fill(2, 1, 8)]))
    assert recent.get(2, 0) is None
    # later fills append
    recent.on_applied(AppliedBatch(orders={1: order(1, "5", seq=9)}, fills=[fill(1, 2, 9)]))
    assert [f["trade_id"] for f in recent.get(1, 9)["fills"]] == ["7", "9"]


def test_capacity_evicts_oldest():
    recent = RecentOrders(lambda: {}, capacity=2)
    for oid in (1, 2, 3):
        recent.on_applied(AppliedBatch(orders={oid: order(oid)}))
    assert recent.get(1, 0) is None
    assert recent.get(3, 0) is not None


def test_orders_another_process_applied_are_kept_only_with_all_their_fills():
    recent = RecentOrders(lambda: {})
    recent.on_applied(AppliedBatch(orders={1: order(1, "3")}, fills=[fill(1, 3, 7)]))
    assert recent.get(1, 5) is not None
    # Read back after another backend process applied the next events: the row may be
    # ahead of the fills that came with it (5 filled, 2 here), so the cached entry goes
    # and none replaces it.
    later = order(1, "5", seq=9)
    recent.on_applied(AppliedBatch(orders={1: later}, fills=[fill(1, 2, 8)], observed={1}))
    assert recent.get(1, 5) is None
    # An order whose fills are all in the batch read back (none, or those it took on
    # arrival) is kept, as the database has it.
    recent.on_applied(AppliedBatch(orders={2: order(2, "0", seq=9)}, observed={2}))
    resting = recent.get(2, 9)
    assert resting is not None
    assert resting["fills"] == []
    crossed = order(3, "4", seq=11)
    recent.on_applied(
        AppliedBatch(orders={3: crossed}, fills=[fill(3, 1, 20), fill(3, 3, 21)], observed={3})
    )
    answer = recent.get(3, 11)
    assert answer is not None
    assert [f["trade_id"] for f in answer["fills"]] == ["20", "21"]
    assert recent.get(3, 12) is None
