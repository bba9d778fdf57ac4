"""The projection: passive fills while the backend is down land exactly once on restart;
re-applying events the cursor has passed changes nothing; batching, replays, failures and
racing processes never change what lands; a hand-worked script to the cent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from itertools import zip_longest
from typing import Any

import pytest
from sqlalchemy import delete, event, func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hft.api.app import create_app
from hft.api.trading import projection as projection_module
from hft.api.trading.projection import AppliedBatch, BatchApplier, Projection, ns_to_datetime
from hft.api.trading.testing import (  # noqa: F401 - fixtures
    engine_fixture,
    place,
    settings_overrides_fixture,
    trading_overrides_fixture,
    with_trading_fixture,
)
from hft.bench import projection as bench
from hft.db import session as db_session
from hft.db.base import Base
from hft.db.models.auth import Account
from hft.db.models.trading import (
    CandleRow,
    EngineCursor,
    FillRow,
    InstrumentRow,
    OrderRow,
    PositionRow,
    TradeRow,
)
from hft.db.session import create_engine, make_sessionmaker, write_transaction
from hft.engine.client import EngineClient, ExecutionSubscriber, order_request
from hft.engine.pb import engine_pb2 as pb
from hft.services.orders import OPEN_STATUSES
from hft.services.risk import reservation

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
    # No WebSocket subscriber: nothing to read back, nothing for the listeners.
    assert await runtime.projection._apply(events) is None
    runtime.projection.observe = lambda: True
    replay = await runtime.projection._apply(events)
    assert replay is not None
    assert replay.observed == set(replay.orders)  # read back, not applied again
    assert await _fills(app) == before
    async with app.state.db.session() as s:
        cursor = (await s.execute(select(EngineCursor))).scalar_one()
    assert cursor.sequence >= events[-1].sequence
    pf = (await bob.get("/api/v1/portfolio")).json()
    assert pf["positions"][0]["quantity"] == "5"


# ---------------------------------------------------------------- applier, on the database
# The tests below drive `Projection._apply` directly with execution events (no engine):
# the seeded stream of `hft bench projection`, or events written by hand.

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in ns


@pytest.fixture
async def second_db_url(db_url, tmp_path, postgres_server) -> AsyncIterator[str]:
    """Another fresh database of the same kind as `db_url` (for a reference run)."""
    if db_url.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'reference.db'}"
        return
    url = await postgres_server.acquire()
    try:
        yield url
    finally:
        await postgres_server.release(url)


@asynccontextmanager
async def _database(url: str, stream: bench.Stream) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(url, pool_size=2)
    try:
        await bench.prepare(engine, stream)
        yield engine
    finally:
        await engine.dispose()


def _projection(engine: AsyncEngine) -> Projection:
    return bench.projection_for(make_sessionmaker(engine))


TABLES = ("accounts", "orders", "fills", "positions", "trades", "candles", "instruments")


async def _dump(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row the projection writes, in key order (wall-clock stamps left out)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    async with engine.connect() as conn:
        for name in (*TABLES, "engine_cursor"):
            table = Base.metadata.tables[name]
            cols = [
                c
                for c in table.c
                if not (c.name in ("updated_at", "created_at") and name != "orders")
            ]
            rows = await conn.execute(select(*cols).order_by(*table.primary_key.columns))
            out[name] = [tuple(r) for r in rows]
    return out


async def _reference(url: str, stream: bench.Stream) -> dict[str, list[tuple[Any, ...]]]:
    """The database after applying the stream one command per batch."""
    async with _database(url, stream) as engine:
        projection = _projection(engine)
        for command in stream.commands:
            assert await projection._apply(command) is not None
        return await _dump(engine)


def _columns(row: Any, table: str) -> dict[str, Any]:
    return {c.name: getattr(row, c.name) for c in Base.metadata.tables[table].c}


async def _check_listener_batch(engine: AsyncEngine, out: AppliedBatch) -> None:
    """What listeners got is what the batch committed."""
    async with make_sessionmaker(engine)() as s:
        for oid, order in out.orders.items():
            assert oid == order.id
            stored = await s.get(OrderRow, oid)
            assert _columns(order, "orders") == _columns(stored, "orders")
        for fill in out.fills:
            stored_fill = await s.get(FillRow, fill.id)
            assert _columns(fill, "fills") == _columns(stored_fill, "fills")
        for account_id, (cash, reserved) in out.account_values.items():
            account = await s.get(Account, account_id)
            assert account is not None
            assert (cash, reserved) == (account.cash, account.reserved_cash)
        assert set(out.account_values) == out.accounts
        for candle in out.candles:
            stored_candle = await s.get(CandleRow, (candle.symbol, candle.interval, candle.start))
            assert _columns(candle, "candles") == _columns(stored_candle, "candles")


async def test_batch_size_changes_nothing_and_listeners_get_the_committed_rows(
    db_url, second_db_url
):
    stream = bench.make_stream(300, seed=5)
    want = await _reference(second_db_url, stream)
    assert len(want["fills"]) > 100
    async with _database(db_url, stream) as engine:
        projection = _projection(engine)
        fills = 0
        for group in bench.batches(stream.commands, 64):
            out = await projection._apply(group)
            assert out is not None
            await _check_listener_batch(engine, out)
            fills += len(out.fills)
        assert fills == len(want["fills"])
        assert await _dump(engine) == want


async def test_what_another_process_applied_is_read_back_only_when_wanted(db_url, second_db_url):
    stream = bench.make_stream(40, seed=12)
    c = stream.commands
    async with _database(db_url, stream) as engine, _database(second_db_url, stream):
        projection = _projection(engine)
        assert await projection._apply([*c[0], *c[1], *c[2]]) is not None
        statements: list[str] = []

        def count(_conn, _cursor, statement, *_args) -> None:
            statements.append(statement.split()[0])

        event.listen(engine.sync_engine, "before_cursor_execute", count)
        # Nobody to tell (no WebSocket subscriber): an already applied batch costs the
        # cursor, nothing is read back and nothing goes to the listeners.
        projection.observe = lambda: False
        assert await projection._apply(c[1]) is None
        assert not [s for s in statements if s == "SELECT"][1:], statements
        statements.clear()
        projection.observe = lambda: True
        replay = await projection._apply(c[1])
        assert replay is not None
        assert replay.orders
        assert replay.observed == set(replay.orders)
        assert len([s for s in statements if s == "SELECT"]) > 1


async def test_sqlite_and_postgresql_write_the_same_rows(tmp_path, postgres_server):
    # The two databases take different write paths (one executemany per table on SQLite,
    # one statement of CTEs on PostgreSQL): the rows must come out identical.
    if postgres_server is None:
        pytest.skip("HFT_TEST_POSTGRES_URL is not set")
    stream = bench.make_stream(300, seed=11)
    dumps = []
    for url in (f"sqlite+aiosqlite:///{tmp_path / 'cross.db'}", await postgres_server.acquire()):
        try:
            async with _database(url, stream) as engine:
                projection = _projection(engine)
                for group in bench.batches(stream.commands, 32):
                    assert await projection._apply(group) is not None
                dumps.append(await _dump(engine))
        finally:
            if url.startswith("postgresql"):
                await postgres_server.release(url)
    sqlite_rows, postgres_rows = dumps
    assert len(sqlite_rows["fills"]) > 100
    assert len(sqlite_rows["candles"]) > 10
    assert sqlite_rows == postgres_rows


async def test_events_are_applied_exactly_once_whatever_the_batches_repeat(db_url, second_db_url):
    stream = bench.make_stream(120, seed=9)
    want = await _reference(second_db_url, stream)
    c = stream.commands
    flat = [ev for command in c for ev in command]
    async with _database(db_url, stream) as engine:
        projection = _projection(engine)
        # The first batch creates the cursor row.
        assert await projection._apply([*c[0], *c[1]]) is not None
        # Already applied: nothing changes; listeners get the rows read back, marked
        # as observed rather than applied.
        before = await _dump(engine)
        replay = await projection._apply(c[1])
        assert replay is not None
        assert replay.orders
        assert replay.observed == set(replay.orders)
        await _check_listener_batch(engine, replay)
        assert await _dump(engine) == before
        # A batch that starts before the cursor applies only what is past it.
        overlap = await projection._apply([*c[0], *c[1], *c[2], *c[3]])
        assert overlap is not None
        # A restarted stream may deliver commands again within one batch.
        assert await projection._apply([*c[4], *c[5], *c[4], *c[5], *c[6]]) is not None
        # A cursor in the middle of a command: the rest of it still applies.
        partial = [ev for ev in flat if ev.sequence > 6]
        first_multi = next(i for i, ev in enumerate(partial) if not ev.last_in_sequence)
        assert await projection._apply(partial[: first_multi + 1]) is not None
        assert await projection._apply(partial) is not None
        assert (await projection._apply(flat)).observed  # type: ignore[union-attr]
        assert await _dump(engine) == want


async def test_failed_batch_leaves_no_trace_and_its_retry_applies_it(db_url, second_db_url):
    stream = bench.make_stream(60, seed=2)
    want = await _reference(second_db_url, stream)
    trade = next(
        ev for command in stream.commands for ev in command if ev.type == pb.EVENT_TYPE_TRADE
    )
    blocker = {
        "trade_id": trade.trade_id,
        "symbol": trade.symbol,
        "price": D(1),
        "quantity": D(1),
        "taker_side": "buy",
        "sequence": 0,
        "time": datetime(2020, 1, 1, tzinfo=UTC),
    }
    async with _database(db_url, stream) as engine:
        maker = make_sessionmaker(engine)
        async with maker() as s, write_transaction(s):
            await s.execute(insert(TradeRow), blocker)
        before = await _dump(engine)
        projection = _projection(engine)
        with pytest.raises(IntegrityError):
            await projection._apply([ev for command in stream.commands for ev in command])
        assert await _dump(engine) == before
        async with maker() as s, write_transaction(s):
            await s.execute(delete(TradeRow).where(TradeRow.trade_id == trade.trade_id))
        assert await projection._apply([ev for command in stream.commands for ev in command])
        # PostgreSQL sequences do not roll back: the failed attempt may have used fill ids.
        assert _without_fill_ids(await _dump(engine)) == _without_fill_ids(want)


def _without_fill_ids(dump: dict[str, list[tuple[Any, ...]]]) -> dict[str, Any]:
    return {**dump, "fills": [row[1:] for row in dump["fills"]]}


async def test_racing_projections_apply_each_event_once(db_url, second_db_url):
    stream = bench.make_stream(150, seed=4)
    want = await _reference(second_db_url, stream)
    async with _database(db_url, stream) as engine:
        other = create_engine(db_url, pool_size=2)
        try:
            # Two backend processes follow the same stream, batching it differently, and
            # apply their i-th batches at the same time: each finds the cursor before,
            # inside or past its batch.
            first, second = _projection(engine), _projection(other)
            pairs = zip_longest(
                bench.batches(stream.commands, 5), bench.batches(stream.commands, 8)
            )
            # What each process's listeners (its WebSocket clients) were told.
            told: list[tuple[set[int], set[int], set[int]]] = [
                (set(), set(), set()),
                (set(), set(), set()),
            ]
            for mine, theirs in pairs:
                results = await asyncio.gather(
                    first._apply(mine) if mine else _nothing(),
                    second._apply(theirs) if theirs else _nothing(),
                )
                for (orders, fills, accounts), result in zip(told, results, strict=True):
                    if result is not None:
                        orders.update(result.orders)
                        fills.update(f.id for f in result.fills)
                        accounts.update(result.account_values)
        finally:
            await other.dispose()
        # Which one takes the write lock first is up to the scheduler (on SQLite the one
        # ahead in the stream may win every time), so the outcome is what is fixed: every
        # event applied once, whoever applied it (an event applied twice would show in
        # fills, positions and cash, and a trade id twice would not even commit) ...
        assert await _dump(engine) == want
        # ... and each process told its own listeners about every order, fill and
        # balance, whether it applied the events or the other one did.
        all_orders = {row[0] for row in want["orders"]}
        all_fills = {row[0] for row in (await _dump(engine))["fills"]}
        traders = {row[0] for row in want["accounts"]}
        for orders, fills, accounts in told:
            assert orders == all_orders
            assert fills == all_fills
            assert accounts <= traders
            assert accounts


async def test_a_projection_follows_the_one_that_applies_and_takes_over_when_it_stops(
    db_url, second_db_url, monkeypatch
):
    """Several backend processes: the one that applies a batch announces its commit
    (PostgreSQL NOTIFY), and the others settle that batch without a transaction of
    their own, only reading back what their listeners want; when the applying one stops
    announcing, another applies after FOLLOW_S. SQLite has no notices: each projection
    settles each batch through the cursor claim."""
    monkeypatch.setattr(projection_module, "FOLLOW_S", 0.3)
    stream = bench.make_stream(90, seed=5)
    want = await _reference(second_db_url, stream)
    b1, b2, b3 = list(bench.batches(stream.commands, 60))[:3]
    assert sum(map(len, (b1, b2, b3))) == sum(map(len, stream.commands))
    async with _database(db_url, stream) as engine:
        other = create_engine(db_url, pool_size=2)
        first, second = _projection(engine), _projection(other)
        transactions: list[int] = []
        real_apply = second._apply

        async def counted(batch: list[pb.ExecutionEvent]) -> AppliedBatch | None:
            transactions.append(len(batch))
            return await real_apply(batch)

        monkeypatch.setattr(second, "_apply", counted)
        try:
            await first._listen()
            await second._listen()
            postgres = db_url.startswith("postgresql")
            assert (first._listener is not None, second._listener is not None) == (
                postgres,
                postgres,
            )
            assert await first._settle(b1) is not None
            if postgres:
                # The notice arrives on its own connection.
                for _ in range(100):
                    if second._notified >= (b1[-1].sequence, b1[-1].index):
                        break
                    await asyncio.sleep(0.01)
            told = await second._settle(b1)  # read back for this process's listeners
            assert told is not None
            assert told.orders
            assert transactions == ([] if postgres else [len(b1)])
            # The next batch: the follower waits for the notice rather than the lock.
            settled = asyncio.gather(second._settle(b2), first._settle(b2))
            await settled
            assert transactions == ([] if postgres else [len(b1), len(b2)])
            # The applying process is gone: the follower applies after FOLLOW_S.
            assert await second._settle(b3) is not None
            assert transactions == ([len(b3)] if postgres else [len(b1), len(b2), len(b3)])
            assert second._leading
        finally:
            await first.stop()
            await second.stop()
            await other.dispose()
        assert await _dump(engine) == want


async def test_a_projection_that_loses_its_notice_connection_applies_and_listens_again(
    db_url, monkeypatch
):
    """Without its notice connection a projection settles every batch through the
    cursor claim, as if alone, and it opens a new one after RELISTEN_S."""
    monkeypatch.setattr(projection_module, "RELISTEN_S", 0.0)
    stream = bench.make_stream(40, seed=8)
    b1, b2 = list(bench.batches(stream.commands, 40))[:2]
    async with _database(db_url, stream) as engine:
        projection = _projection(engine)
        try:
            await projection._listen()
            if not db_url.startswith("postgresql"):
                assert projection._listener is None
                return
            assert projection._listener is not None
            async with engine.connect() as conn:
                await conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                    )
                )
            for _ in range(200):
                if projection._listener is None:
                    break
                await asyncio.sleep(0.01)
            assert projection._listener is None
            assert await projection._settle(b1) is not None
            assert projection._listener is not None  # listening again
            assert await projection._settle(b2) is not None
        finally:
            await projection.stop()


async def _nothing() -> None:
    return None


# Fees 1 bps maker, 2 bps taker (bench.FEES); cash 10,000,000 each; AAPL in cents and
# whole shares. Orders: 1 alice sells 10 @ 190.00; 2 bob buys 4 @ 190.05; 3 bob buys 10
# @ 190.10; 4 bob sells 4 @ 191.00; 5 alice buys 4 @ 191.00; 6 a market buy of bob with
# no liquidity.
ALICE, BOB = 1, 2


def _order(oid: int, account: int, side: str, ticks: int, lots: int, otype: str = "limit"):
    inst = bench.make_stream(1).instruments["AAPL"]
    values = {
        "id": oid,
        "account_id": account,
        "client_order_id": f"c{oid}",
        "symbol": "AAPL",
        "side": side,
        "type": otype,
        "time_in_force": "ioc" if otype == "market" else "gtc",
        "post_only": False,
        "price": None if otype == "market" else inst.price(ticks),
        "price_ticks": ticks,
        "quantity": inst.quantity(lots),
        "quantity_lots": lots,
        "status": "pending_new",
        "reserved": reservation(side, ticks, lots, inst, bench.FEES.taker_bps, 8),
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        "updated_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    return values


def _ev(seq: int, kind: int, oid: int, account: int, **kw: Any) -> pb.ExecutionEvent:
    return pb.ExecutionEvent(
        sequence=seq,
        index=kw.pop("index", 0),
        last_in_sequence=kw.pop("last", True),
        type=kind,
        symbol="AAPL",
        order_id=oid,
        account_id=account,
        timestamp_ns=T0 + seq * 1_000_000,
        tick_size="0.01",
        lot_size="1",
        **kw,
    )


def _trade(seq, taker, taker_acc, maker, maker_acc, ticks, lots, leaves, maker_leaves, tid, **kw):
    return _ev(
        seq,
        pb.EVENT_TYPE_TRADE,
        taker,
        taker_acc,
        side=kw.pop("side", pb.SIDE_BUY),
        price=ticks,
        quantity=lots,
        leaves_quantity=leaves,
        maker_order_id=maker,
        maker_account_id=maker_acc,
        maker_leaves_quantity=maker_leaves,
        trade_id=tid,
        **kw,
    )


SCRIPT = [
    [_ev(1, pb.EVENT_TYPE_ACCEPTED, 1, ALICE, leaves_quantity=10)],
    [_trade(2, 2, BOB, 1, ALICE, 19_000, 4, 0, 6, 1)],
    [
        _trade(3, 3, BOB, 1, ALICE, 19_000, 6, 4, 0, 2, last=False),
        _ev(3, pb.EVENT_TYPE_ACCEPTED, 3, BOB, index=1, leaves_quantity=4),
    ],
    [_ev(4, pb.EVENT_TYPE_CANCELED, 3, BOB, cancel_reason=pb.CANCEL_REASON_USER)],
    [_ev(5, pb.EVENT_TYPE_ACCEPTED, 4, BOB, leaves_quantity=4)],
    [_trade(6, 5, ALICE, 4, BOB, 19_100, 4, 0, 0, 3)],
    # Another participant reusing order id 1 on another account changes nothing of ours.
    [_trade(7, 1, 777, 900, 778, 19_200, 1, 0, 0, 4)],
    [_ev(8, pb.EVENT_TYPE_CANCELED, 6, BOB, cancel_reason=pb.CANCEL_REASON_IOC_REMAINDER)],
    [_ev(9, pb.EVENT_TYPE_CANCEL_REJECTED, 3, BOB, reject_reason=pb.REJECT_REASON_UNKNOWN_ORDER)],
]


@pytest.mark.parametrize("size", [1, 100])
async def test_hand_worked_script_to_the_cent(db_url, size):
    orders = [
        _order(1, ALICE, "sell", 19_000, 10),
        _order(2, BOB, "buy", 19_005, 4),
        _order(3, BOB, "buy", 19_010, 10),
        _order(4, BOB, "sell", 19_100, 4),
        _order(5, ALICE, "buy", 19_100, 4),
        _order(6, BOB, "buy", 19_950, 2, "market"),
    ]
    stream = bench.make_stream(1)
    stream.accounts = [ALICE, BOB]
    stream.orders = orders
    stream.reserved = {
        a: sum((o["reserved"] for o in orders if o["account_id"] == a), D(0)) for a in (1, 2)
    }
    stream.commands = SCRIPT
    # Entry reserved price x quantity + the taker fee rounded up.
    assert stream.reserved == {
        ALICE: D("764.1528"),
        BOB: D("760.35204") + D("1901.3802") + D("399.0798"),
    }
    async with _database(db_url, stream) as engine:
        projection = _projection(engine)
        changed: dict[int, OrderRow] = {}
        fills: list[FillRow] = []
        for group in bench.batches(SCRIPT, size):
            out = await projection._apply(group)
            assert out is not None
            changed.update(out.orders)
            fills += out.fills
        async with make_sessionmaker(engine)() as s:
            got = {o.id: o for o in (await s.execute(select(OrderRow))).scalars()}
            accounts = {a.id: a for a in (await s.execute(select(Account))).scalars()}
            positions = {p.account_id: p for p in (await s.execute(select(PositionRow))).scalars()}
            db_fills = (await s.execute(select(FillRow).order_by(FillRow.id))).scalars().all()
            candle = await s.get(CandleRow, ("AAPL", "1m", T0 // 10**9))
            inst = await s.get(InstrumentRow, "AAPL")
    summary = {
        oid: (o.status, o.reason, o.filled_quantity, o.average_price, o.fees, o.reserved)
        for oid, o in got.items()
    }
    assert summary == {
        1: ("filled", None, D(10), D(190), D("0.19"), D(0)),
        2: ("filled", None, D(4), D(190), D("0.152"), D(0)),
        # 6 filled, the rest (4 left, 760.55208 reserved) canceled by the user.
        3: ("canceled", "user", D(6), D(190), D("0.228"), D(0)),
        4: ("filled", None, D(4), D(191), D("0.0764"), D(0)),
        5: ("filled", None, D(4), D(191), D("0.1528"), D(0)),
        6: ("canceled", "market_no_liquidity", D(0), None, D(0), D(0)),
    }
    assert {o.leaves_lots for o in got.values()} == {0}
    assert got[3].last_sequence == 9
    assert got[3].updated_at == ns_to_datetime(T0 + 9_000_000)
    # Alice sold 10 @ 190 (maker, 0.19) and bought 4 @ 191 (taker, 0.1528);
    # bob bought 10 @ 190 (taker, 0.38) and sold 4 @ 191 (maker, 0.0764).
    assert accounts[ALICE].cash == D(10_000_000) + D(1900) - D("0.19") - D(764) - D("0.1528")
    assert accounts[BOB].cash == D(10_000_000) - D(1900) - D("0.38") + D(764) - D("0.0764")
    assert accounts[ALICE].reserved_cash == 0
    assert accounts[BOB].reserved_cash == 0
    # Closing 4 of 10 releases 4/10 of the 1900 cost basis: 760 against 764.
    assert (positions[ALICE].quantity, positions[ALICE].cost_basis) == (D(-6), D(1140))
    assert (positions[ALICE].realized_pnl, positions[ALICE].fees) == (D(-4), D("0.3428"))
    assert (positions[BOB].quantity, positions[BOB].cost_basis) == (D(6), D(1140))
    assert (positions[BOB].realized_pnl, positions[BOB].fees) == (D(4), D("0.4564"))
    assert [(f.order_id, f.liquidity, f.quantity, f.fee) for f in db_fills] == [
        (2, "taker", D(4), D("0.152")),
        (1, "maker", D(4), D("0.076")),
        (3, "taker", D(6), D("0.228")),
        (1, "maker", D(6), D("0.114")),
        (5, "taker", D(4), D("0.1528")),
        (4, "maker", D(4), D("0.0764")),
    ]
    assert [(f.id, f.order_id, f.fee) for f in fills] == [
        (f.id, f.order_id, f.fee) for f in db_fills
    ]
    assert set(changed) == {1, 2, 3, 4, 5, 6}
    # The foreign trade (192.00) is on the tape and in the candles, not in our books.
    assert candle is not None
    assert (candle.open, candle.high, candle.low, candle.close) == (D(190), D(192), D(190), D(192))
    assert (candle.volume, candle.trades) == (D(15), 4)
    assert inst is not None
    assert (inst.last_price, inst.reference_price) == (19_200, 19_200)


async def test_the_engines_answer_to_an_amend_ends_its_hold(db_url):
    """An amend that raised an order's quantity holds the new leaves on the order
    (`amend_leaves_lots`, counted by the risk checks) until the engine's answer to it is
    applied: Amended (the leaves are now the new ones) or AmendRejected (they stay the
    old ones) ends the hold; anything else leaves it."""
    orders = [_order(oid, ALICE, "buy", 19_000, 10) for oid in (1, 2, 3)]
    for order in orders:
        order["amend_leaves_lots"] = 15
    stream = bench.make_stream(1)
    stream.accounts = [ALICE, BOB]
    stream.orders = orders
    stream.reserved = {ALICE: sum((o["reserved"] for o in orders), D(0)), BOB: D(0)}
    stream.commands = [
        [
            _ev(1, pb.EVENT_TYPE_ACCEPTED, oid, ALICE, index=oid - 1, last=oid == 3, **kw)
            for oid, kw in ((1, {}), (2, {}), (3, {}))
        ],
        [_ev(2, pb.EVENT_TYPE_AMENDED, 1, ALICE, price=19_000, quantity=15)],
        [
            _ev(
                3,
                pb.EVENT_TYPE_AMEND_REJECTED,
                2,
                ALICE,
                reject_reason=pb.REJECT_REASON_PRICE_OUT_OF_BAND,
            )
        ],
    ]
    for command in stream.commands:
        for ev in command:
            if ev.type == pb.EVENT_TYPE_ACCEPTED:
                ev.leaves_quantity = 10
    async with _database(db_url, stream) as engine:
        projection = _projection(engine)
        for command in stream.commands:
            assert await projection._apply(command) is not None
        async with make_sessionmaker(engine)() as s:
            got = {o.id: o for o in (await s.execute(select(OrderRow))).scalars()}
    assert {oid: (o.leaves_lots, o.amend_leaves_lots) for oid, o in got.items()} == {
        1: (15, None),
        2: (10, None),
        3: (10, 15),
    }
    assert got[1].quantity == 15


def _needs(lots: int) -> D:
    """What a buy of `lots` at 190.00 reserves."""
    inst = bench.make_stream(1).instruments["AAPL"]
    return reservation("buy", 19_000, lots, inst, bench.FEES.taker_bps, 8)


async def _apply_amends(
    db_url: str, held: int, after_accept: list[list[pb.ExecutionEvent]]
) -> list[tuple[Any, ...]]:
    """Alice's buy of 10 at 190.00 with two raising amends in flight, the later asking
    for `held` lots (held and reserved); accepted, then `after_accept` applied command by
    command. After each: (leaves, hold, amends in flight, its reservation, Alice's)."""
    order = _order(1, ALICE, "buy", 19_000, 10)
    order.update(amend_leaves_lots=held, amends_in_flight=2, reserved=_needs(held))
    stream = bench.make_stream(1)
    stream.accounts = [ALICE, BOB]
    stream.orders = [order]
    stream.reserved = {ALICE: _needs(held), BOB: D(0)}
    stream.commands = [[_ev(1, pb.EVENT_TYPE_ACCEPTED, 1, ALICE, leaves_quantity=10)]]
    stream.commands += after_accept
    seen = []
    async with _database(db_url, stream) as engine:
        projection = _projection(engine)
        for command in stream.commands:
            assert await projection._apply(command) is not None
            async with make_sessionmaker(engine)() as s:
                row = await s.get(OrderRow, 1)
                account = await s.get(Account, ALICE)
                assert row is not None
                assert account is not None
                seen.append(
                    (
                        row.leaves_lots,
                        row.amend_leaves_lots,
                        row.amends_in_flight,
                        row.reserved,
                        account.reserved_cash,
                    )
                )
    return seen


async def test_an_earlier_amends_answer_keeps_what_a_later_one_asked_for(db_url):
    """Two amends raised an order one after the other (10 to 15, then to 20 lots), and
    both were held and reserved before the engine saw them. The answer to the first must
    not release what the second, still on its way, asked for: the hold and the
    reservation end with the last answer, exact from then on."""
    seen = await _apply_amends(
        db_url,
        20,
        [
            [_ev(2, pb.EVENT_TYPE_AMENDED, 1, ALICE, price=19_000, quantity=15)],
            # A fill of 5 while the second amend is on its way: the leaves drop, the
            # reservation of the amend in flight stays.
            [_trade(3, 9, BOB, 1, ALICE, 19_000, 5, 0, 10, 1, side=pb.SIDE_SELL)],
            [_ev(4, pb.EVENT_TYPE_AMENDED, 1, ALICE, price=19_000, quantity=20)],
        ],
    )
    twenty = _needs(20)
    assert seen == [
        (10, 20, 2, twenty, twenty),
        (15, 20, 1, twenty, twenty),
        (10, 20, 1, twenty, twenty),
        (20, None, 0, twenty, twenty),
    ]


async def test_an_amend_rejected_last_makes_the_reservation_exact_again(db_url):
    """The later of two raising amends is rejected: once nothing is in flight the order
    reserves what its leaves need, no longer what the rejected amend asked for."""
    rejected = _ev(
        3, pb.EVENT_TYPE_AMEND_REJECTED, 1, ALICE, reject_reason=pb.REJECT_REASON_PRICE_OUT_OF_BAND
    )
    seen = await _apply_amends(
        db_url,
        30,
        [[_ev(2, pb.EVENT_TYPE_AMENDED, 1, ALICE, price=19_000, quantity=15)], [rejected]],
    )
    assert seen[-1] == (15, None, 0, _needs(15), _needs(15))


async def test_statements_per_batch_do_not_grow_with_its_size(db_url):
    stream = bench.make_stream(400, seed=6)
    async with _database(db_url, stream) as engine:
        statements: list[str] = []

        def count(_conn, _cursor, statement, *_args) -> None:
            statements.append(statement.split()[0])

        projection = _projection(engine)
        # The first batch also creates the cursor row.
        assert await projection._apply(stream.commands[0]) is not None
        event.listen(engine.sync_engine, "before_cursor_execute", count)
        most = 0
        for group in bench.batches(stream.commands[1:], 256):
            statements.clear()
            assert await projection._apply(group) is not None
            most = max(most, len(statements))
            if engine.dialect.name == "postgresql":
                # The cursor claimed and the accounts and orders locked in one; then every
                # write (candles merged) in one.
                assert len(statements) <= 2, statements
            else:
                assert len(statements) <= 14, statements
        if engine.dialect.name == "postgresql":
            assert most == 2
        else:
            # Cursor, accounts, orders, candles; orders, accounts, positions (insert and update),
            # trades, fills, candles (insert and update), instruments; BEGIN: however
            # many events and rows.
            assert most > 10


async def _amend(conn: Any, account_id: int, order_id: int) -> None:
    """What an amend writes before the engine sees it: the order's reservation and its
    account's, raised together under the account's lock."""
    await conn.execute(
        text("UPDATE accounts SET reserved_cash = reserved_cash + 7 WHERE id = :a"),
        {"a": account_id},
    )
    await conn.execute(
        text("UPDATE orders SET reserved = reserved + 7 WHERE id = :o"), {"o": order_id}
    )


async def test_an_amend_committed_while_a_batch_waits_for_its_account_is_seen_whole(
    db_url, second_db_url
):
    """A batch locks its accounts and reads its orders in one statement on PostgreSQL.
    A transaction that changed an order and its account and commits while the batch waits
    for that account's lock must be seen whole by the batch: the order as the transaction
    left it, not as the statement's snapshot had it (re-reserving from a stale order
    would leave the account's reservation off by the amend)."""
    stream = bench.make_stream(60, seed=11)
    ours = [
        (command, e)
        for command in stream.commands
        for e in command
        if e.type == pb.EVENT_TYPE_TRADE and e.account_id in stream.accounts
    ]
    command, trade = ours[0]
    account_id, order_id = trade.account_id, trade.order_id

    # Reference: the amend commits before the batch starts.
    async with _database(second_db_url, stream) as engine:
        async with engine.begin() as conn:
            await _amend(conn, account_id, order_id)
        assert await _projection(engine)._apply(command) is not None
        want = await _dump(engine)

    async with _database(db_url, stream) as engine:
        # The batch waits for the account (SQLite: for the writer).
        await _apply_behind(
            db_url, _projection(engine), command, lambda c: _amend(c, account_id, order_id)
        )
        got = await _dump(engine)
    assert _without_fill_ids(got) == _without_fill_ids(want)


async def _apply_behind(
    url: str,
    projection: Projection,
    command: list[pb.ExecutionEvent],
    write: Callable[[AsyncConnection], Awaitable[Any]],
) -> None:
    """Apply `command` while another connection's transaction holds what `write` changed,
    and commit that transaction while the batch waits for it."""
    other = create_engine(url, pool_size=1)
    try:
        async with other.connect() as conn:
            await conn.begin()
            await write(conn)
            batch = asyncio.create_task(projection._apply(command))
            await asyncio.sleep(0.5)
            assert not batch.done()
            await conn.commit()
        assert await asyncio.wait_for(batch, 10) is not None
    finally:
        await other.dispose()


async def test_a_batch_waiting_for_another_projections_commit_reads_what_it_wrote(
    db_url, second_db_url
):
    """On PostgreSQL a batch claims the cursor and reads its orders and their positions
    in one statement, whose snapshot is taken before it waits for the cursor. When another
    projection holds the cursor and commits the previous command meanwhile, the batch
    must apply its own events to the positions that commit left (not the snapshot's,
    which miss its fills): as if the two had run one after the other."""
    stream = bench.make_stream(200, seed=12)
    traded = [
        {
            (account, e.symbol)
            for e in command
            if e.type == pb.EVENT_TYPE_TRADE
            for account in (e.account_id, e.maker_account_id)
            if account in stream.accounts
        }
        for command in stream.commands
    ]
    # Two consecutive commands changing the same position.
    i = next(i for i in range(1, len(traded)) if traded[i] & traded[i - 1])
    before, first, second = stream.commands[: i - 1], stream.commands[i - 1], stream.commands[i]

    async def prefix(engine: AsyncEngine) -> Projection:
        projection = _projection(engine)
        for command in before:
            assert await projection._apply(command) is not None
        return projection

    async with _database(second_db_url, stream) as engine:
        projection = await prefix(engine)
        for command in (first, second):
            assert await projection._apply(command) is not None
        want = await _dump(engine)

    async with _database(db_url, stream) as engine:
        projection = await prefix(engine)

        async def apply_first(conn: AsyncConnection) -> None:
            assert await conn.run_sync(BatchApplier(projection.fees).apply, first)

        # The batch waits for the cursor (SQLite: for the writer).
        await _apply_behind(db_url, projection, second, apply_first)
        got = await _dump(engine)
    assert _without_fill_ids(got) == _without_fill_ids(want)


async def test_transactions_begun_for_the_next_batch_are_ended_when_idle(
    app, make_user, monkeypatch
):
    # On PostgreSQL each commit of order entry and of the projection also begins that
    # writer's next transaction. If the server closes such a session, the next batch
    # fails on it and runs again on a new connection (the orders are still accepted and
    # applied); a writer that receives nothing ends its transaction.
    monkeypatch.setattr(db_session, "BEGUN_IDLE_S", 60.0)
    monkeypatch.setattr(db_session, "CHAIN_S", 60.0)
    runtime = app.state.trading
    db = app.state.db
    alice, bob = await make_user(), await make_user()
    fills = 0

    async def trade() -> None:
        nonlocal fills
        await place(alice, side="sell", quantity="1", price="190.00")
        await place(bob, side="buy", quantity="1", price="190.00")
        fills += 2
        for _ in range(100):
            if await _fills(app) == fills:
                return
            await asyncio.sleep(0.05)
        assert await _fills(app) == fills

    async def idle_in_transaction(end: bool = False) -> int:
        query = (
            "SELECT {} FROM pg_stat_activity WHERE state = 'idle in transaction' "
            "AND datname = current_database()"
        ).format("pg_terminate_backend(pid)" if end else "pid")
        async with db.engine.connect() as conn:
            return len((await conn.execute(text(query))).all())

    postgres = db.engine.dialect.name == "postgresql"
    await trade()
    if postgres:
        assert runtime.entry._chain.kept
        assert runtime.projection._chain.kept
        assert await idle_in_transaction() == 2
        assert await idle_in_transaction(end=True) == 2
        await trade()
        assert runtime.entry._chain.kept
        assert runtime.projection._chain.kept
    monkeypatch.setattr(db_session, "BEGUN_IDLE_S", 0.2)
    await trade()
    await asyncio.sleep(0.6)
    if postgres:
        assert not runtime.entry._chain.kept
        assert not runtime.projection._chain.kept
        assert await idle_in_transaction() == 0
    await trade()


async def _risk_view(
    engine: AsyncEngine, stream: bench.Stream
) -> dict[int, tuple[Decimal, int, dict[str, tuple[Decimal, Decimal]]]]:
    """Per account: buying power (cash - reserved), open orders, and per symbol what the
    pre-trade checks bound from above: position + open buys, open sells - position."""
    out: dict[int, tuple[Decimal, int, dict[str, tuple[Decimal, Decimal]]]] = {}
    async with make_sessionmaker(engine)() as s:
        accounts = (await s.execute(select(Account))).scalars().all()
        orders = (
            (await s.execute(select(OrderRow).where(OrderRow.status.in_(OPEN_STATUSES))))
            .scalars()
            .all()
        )
        positions = (await s.execute(select(PositionRow))).scalars().all()
    for account in accounts:
        bounds: dict[str, tuple[Decimal, Decimal]] = {}
        for symbol, inst in stream.instruments.items():
            held = sum(
                (p.quantity for p in positions if (p.account_id, p.symbol) == (account.id, symbol)),
                D(0),
            )
            leaves = {
                side: inst.quantity(
                    sum(
                        o.leaves_lots
                        for o in orders
                        if (o.account_id, o.symbol, o.side) == (account.id, symbol, side)
                    )
                )
                for side in ("buy", "sell")
            }
            bounds[symbol] = (held + leaves["buy"], leaves["sell"] - held)
        count = sum(1 for o in orders if o.account_id == account.id)
        out[account.id] = (account.cash - account.reserved_cash, count, bounds)
    return out


async def test_applying_executions_never_lowers_buying_power_or_raises_exposure(db_url):
    # Fills release at least what they cost (a buy reserves its limit or collar price and
    # the taker fee), cancels and rejections release, amends here only move buys down and
    # shrink: so no command's events may lower an account's buying power or raise what
    # the pre-trade checks bound. Order entry relies on it when it checks orders against
    # open orders and positions read before a concurrent projection commit.
    stream = bench.make_stream(250, seed=21)
    async with _database(db_url, stream) as engine:
        projection = _projection(engine)
        before = await _risk_view(engine, stream)
        for command in stream.commands:
            assert await projection._apply(command) is not None
            after = await _risk_view(engine, stream)
            for account, (power, count, bounds) in after.items():
                was_power, was_count, was_bounds = before[account]
                assert power >= was_power, (account, command)
                assert count <= was_count, (account, command)
                for symbol, (long_bound, short_bound) in bounds.items():
                    assert long_bound <= was_bounds[symbol][0], (account, symbol, command)
                    assert short_bound <= was_bounds[symbol][1], (account, symbol, command)
            before = after
