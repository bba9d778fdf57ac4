"""The projection: passive fills while the backend is down land exactly once on restart;
re-applying events the cursor has passed changes nothing."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select

from hft.api.app import create_app
from hft.api.trading.testing import (  # noqa: F401 - fixtures
    engine_fixture,
    place,
    settings_overrides_fixture,
    trading_overrides_fixture,
    with_trading_fixture,
)
from hft.db.models.trading import EngineCursor, FillRow
from hft.engine.client import EngineClient, ExecutionSubscriber, order_request
from hft.engine.pb import engine_pb2 as pb

D = Decimal


async def _fills(app) -> int:
    async with app.state.db.session() as s:
        return int((await s.execute(select(func.count()).select_from(FillRow))).scalar_one())


async def test_fills_while_backend_down_are_applied_once_after_restart(
    app, settings, engine, make_user
):
    alice = await make_user()
    ask = await place(alice, side="sell", quantity="10", price="190.00")
    account_id = int(alice.account_id)
    # Stop the trading layer (as if the backend were down) and trade against alice's order
    # directly on the engine from another venue participant.
    runtime = app.state.trading
    await runtime.projection.stop()
    async with EngineClient(engine.address) as c:
        for oid, qty in ((900001, 3), (900002, 4)):
            resp = await c.submit_order(
                order_request(
                    oid,
                    777,
                    "AAPL",
                    pb.SIDE_BUY,
                    pb.ORDER_TYPE_LIMIT,
                    pb.TIME_IN_FORCE_IOC,
                    19000,
                    qty,
                )
            )
            assert resp.filled_quantity == qty
    assert await _fills(app) == 0
    # A second backend on the same database catches up from the stored cursor.
    for _ in range(2):
        app2 = create_app(settings)
        async with app2.router.lifespan_context(app2):
            rt2 = app2.state.trading
            assert await rt2.projection.wait_applied(3, 10.0)
            async with app2.state.db.session() as s:
                fills = (
                    (await s.execute(select(FillRow).where(FillRow.account_id == account_id)))
                    .scalars()
                    .all()
                )
        assert sorted((f.quantity, f.liquidity) for f in fills) == [
            (D(3), "maker"),
            (D(4), "maker"),
        ]
    order = (await alice.get(f"/api/v1/orders/{ask['id']}")).json()
    assert (order["status"], order["filled_quantity"]) == ("partially_filled", "7")
    pf = (await alice.get("/api/v1/portfolio")).json()
    # 7 x 190 = 1330 received, maker fee 1 bps = 0.133
    assert D(pf["cash"]) == D(1_000_000) + D(1330) - D("0.133")
    assert pf["positions"][0]["quantity"] == "-7"


async def test_reapplying_old_events_changes_nothing(app, engine, make_user):
    alice, bob = await make_user(), await make_user()
    await place(alice, side="sell", quantity="5", price="190.00")
    await place(bob, side="buy", quantity="5", price="190.00")
    before = await _fills(app)
    assert before == 2
    events = []
    async for ev in ExecutionSubscriber(engine.address, 0):
        events.append(ev)
        if ev.type == pb.EVENT_TYPE_TRADE:
            break
    runtime = app.state.trading
    assert await runtime.projection._apply(events) is None
    assert await _fills(app) == before
    async with app.state.db.session() as s:
        cursor = (await s.execute(select(EngineCursor))).scalar_one()
    assert cursor.sequence >= events[-1].sequence
    pf = (await bob.get("/api/v1/portfolio")).json()
    assert pf["positions"][0]["quantity"] == "5"
