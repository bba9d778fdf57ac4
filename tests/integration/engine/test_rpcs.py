"""Every rpc of trading.pb.TradingEngine against a real engine process."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from hft.engine.client import (
    EngineClient,
    EngineRequestError,
    SyncEngineClient,
    order_request,
    pb,
)
from hft.engine.testing import EngineProcess

pytestmark = pytest.mark.timeout(120)


def limit(
    oid: int, acc: int, sym: str, side: int, price: int, qty: int, tif: int = 1, **kw: object
) -> pb.OrderRequest:
    return order_request(oid, acc, sym, side, 1, tif, price, qty, **kw)  # type: ignore[arg-type]


async def test_order_lifecycle_rpcs(engine: EngineProcess) -> None:
    async with EngineClient(engine.address) as c:
        h = await c.health()
        assert h.status == pb.HealthCheckResponse.STATUS_SERVING
        assert h.version
        inst = {i.symbol: i for i in (await c.list_instruments()).instruments}
        assert inst["AAPL"].tick_size == "0.01"
        assert inst["AAPL"].reference_price == 19000
        assert inst["AAPL"].price_band_bps == 1000
        assert inst["BTC-USD"].lot_size == "0.0001"
        assert inst["BTC-USD"].max_quantity == 1_000_000

        r1 = await c.submit_order(limit(1, 10, "AAPL", 2, 19000, 5))
        assert r1.accepted
        assert r1.status == pb.ORDER_STATUS_NEW
        assert r1.leaves_quantity == 5
        assert (r1.tick_size, r1.lot_size) == ("0.01", "1")
        assert [e.type for e in r1.events] == [pb.EVENT_TYPE_ACCEPTED]
        assert r1.events[0].last_in_sequence
        assert r1.timestamp_ns > 0

        r2 = await c.submit_order(limit(2, 11, "AAPL", 1, 19005, 3))
        assert r2.sequence == r1.sequence + 1
        assert r2.status == pb.ORDER_STATUS_FILLED
        assert r2.filled_quantity == 3
        trade = next(e for e in r2.events if e.type == pb.EVENT_TYPE_TRADE)
        assert trade.price == 19000  # the maker's price
        assert trade.maker_order_id == 1
        assert trade.maker_leaves_quantity == 2
        assert [e.index for e in r2.events] == list(range(len(r2.events)))

        got = await c.get_order(1)
        assert got.found
        assert got.order.leaves_quantity == 2
        assert got.order.filled_quantity == 3
        assert got.order.status == pb.ORDER_STATUS_PARTIALLY_FILLED
        assert not (await c.get_order(2)).found

        book = await c.get_order_book("AAPL", depth=5)
        assert [(lv.price, lv.quantity, lv.order_count) for lv in book.asks] == [(19000, 2, 1)]
        assert not book.bids
        assert book.sequence >= r2.sequence

        am = await c.amend_order(1, 10, 19010, 4)
        assert am.accepted
        assert am.leaves_quantity == 4
        bad_am = await c.amend_order(1, 99, 19010, 4)
        assert not bad_am.accepted
        assert bad_am.reject_reason == pb.REJECT_REASON_UNKNOWN_ORDER

        cx = await c.cancel_order(1, 10)
        assert cx.accepted
        assert cx.canceled_quantity == 4
        cx2 = await c.cancel_order(1, 10)
        assert not cx2.accepted
        assert cx2.reject_reason == pb.REJECT_REASON_UNKNOWN_ORDER

        batch = await c.submit_orders(
            [limit(100 + i, 12, "MSFT", 1, 41990 - i, 1) for i in range(5)]
        )
        seqs = [r.sequence for r in batch.responses]
        assert seqs == list(range(seqs[0], seqs[0] + 5))
        assert all(r.accepted for r in batch.responses)

        ca = await c.cancel_all(12, "MSFT")
        assert ca.canceled_count == 5
        assert {e.order_id for e in ca.events} == {100, 101, 102, 103, 104}

        await c.submit_order(limit(200, 13, "NVDA", 1, 12500, 2))
        ks = await c.set_kill_switch(13, True)
        assert ks.canceled_count == 1
        assert ks.events[0].cancel_reason == pb.CANCEL_REASON_KILL_SWITCH
        blocked = await c.submit_order(limit(201, 13, "NVDA", 1, 12500, 2))
        assert blocked.reject_reason == pb.REJECT_REASON_KILL_SWITCH
        assert (await c.set_kill_switch(13, False)).canceled_count == 0

        mo = await c.set_max_open_orders(14, 1)
        assert mo.sequence > 0
        assert (await c.submit_order(limit(300, 14, "TSLA", 1, 25000, 1))).accepted
        over = await c.submit_order(limit(301, 14, "TSLA", 1, 25000, 1))
        assert over.reject_reason == pb.REJECT_REASON_MAX_OPEN_ORDERS

        halt = await c.set_instrument_status("SPY", pb.INSTRUMENT_STATUS_HALTED)
        assert halt.sequence > 0
        halted = await c.submit_order(limit(400, 15, "SPY", 1, 56000, 1))
        assert halted.reject_reason == pb.REJECT_REASON_SYMBOL_HALTED
        await c.set_instrument_status("SPY", pb.INSTRUMENT_STATUS_TRADING)
        assert (await c.submit_order(limit(401, 15, "SPY", 1, 56000, 1, tif=2))).accepted
        exp = await c.expire_day("SPY")
        assert exp.affected_count == 1
        assert exp.events[0].type == pb.EVENT_TYPE_EXPIRED

        stats = await c.get_stats()
        assert stats.last_sequence == exp.sequence
        assert stats.commands == exp.sequence
        assert stats.trades == 1
        assert stats.processing.count == stats.commands
        assert stats.processing.p50_us > 0
        assert stats.processing.p99_us >= stats.processing.p50_us
        assert stats.journal_batches >= 1
        assert stats.state_hash != 0

        snap = await c.take_snapshot()
        assert snap.sequence == exp.sequence
        assert snap.path.endswith(".snap")
        assert (await c.get_stats()).snapshots == 1


async def test_stream_orders_pipelined(engine: EngineProcess) -> None:
    reqs = [
        limit(1000 + i, 20 + i % 3, "AAPL", 1 + i % 2, 18990 + i % 20, 1 + i % 4)
        for i in range(300)
    ]
    async with EngineClient(engine.address) as c:
        got = [r async for r in c.stream_orders(reqs)]
    assert [r.order_id for r in got] == [q.order_id for q in reqs]
    seqs = [r.sequence for r in got]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)


async def test_stream_orders_bad_order_early_in_a_long_stream_is_reported(
    engine: EngineProcess,
) -> None:
    # The client is still writing when the bad order is found: it must get the server's
    # INVALID_ARGUMENT naming the order, not grpc's INTERNAL for its own failed write.
    for attempt in range(3):
        base = 10_000 * (attempt + 1)
        reqs = [limit(base, 1, "AAPL", 7, 19000, 1)]
        reqs += [limit(base + i, 1, "AAPL", 1, 18000 + i % 50, 1) for i in range(1, 2000)]
        async with EngineClient(engine.address) as c:
            with pytest.raises(EngineRequestError) as ei:
                async for _ in c.stream_orders(reqs):
                    pass
            assert ei.value.code == grpc.StatusCode.INVALID_ARGUMENT, ei.value
            assert f"order_id {base}" in ei.value.message
            assert not (await c.get_order(base + 1)).found


async def test_stream_orders_bad_order_ends_stream(engine: EngineProcess) -> None:
    reqs = [
        limit(1, 1, "AAPL", 1, 19000, 1),
        limit(2, 1, "AAPL", 7, 19000, 1),
        limit(3, 1, "AAPL", 1, 19000, 1),
    ]
    got = []
    async with EngineClient(engine.address) as c:

        async def consume() -> None:
            async for r in c.stream_orders(reqs):
                got.append(r)

        with pytest.raises(EngineRequestError) as ei:
            await consume()
        assert ei.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "side" in ei.value.message
        assert [r.order_id for r in got] == [1]
        assert not (await c.get_order(3)).found


def test_sync_client_and_reflection(engine: EngineProcess) -> None:
    with SyncEngineClient(engine.address) as c:
        assert c.health().status == pb.HealthCheckResponse.STATUS_SERVING
        assert c.grpc_health() == health_pb2.HealthCheckResponse.SERVING
        assert c.grpc_health("trading.pb.TradingEngine") == health_pb2.HealthCheckResponse.SERVING
        r = c.submit_order(limit(1, 1, "AAPL", 1, 19000, 1))
        assert r.accepted
        assert c.get_order_book("AAPL").bids[0].price == 19000
        assert len(list(c.stream_orders([limit(2, 1, "AAPL", 1, 19001, 1)]))) == 1
    with grpc.insecure_channel(engine.address) as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        resp = list(
            stub.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")])
            )
        )
        names = {s.name for s in resp[0].list_services_response.service}
    assert "trading.pb.TradingEngine" in names
    assert "grpc.health.v1.Health" in names


BAD_REQUESTS = [
    ("order_id 0", lambda c: c.submit_order(limit(0, 1, "AAPL", 1, 19000, 1)), "order_id"),
    ("account_id 0", lambda c: c.submit_order(limit(1, 0, "AAPL", 1, 19000, 1)), "account_id"),
    ("missing symbol", lambda c: c.submit_order(limit(1, 1, "", 1, 19000, 1)), "symbol"),
    ("side unspecified", lambda c: c.submit_order(limit(1, 1, "AAPL", 0, 19000, 1)), "side"),
    ("side unknown", lambda c: c.submit_order(limit(1, 1, "AAPL", 9, 19000, 1)), "side"),
    (
        "type unknown",
        lambda c: c.submit_order(order_request(1, 1, "AAPL", 1, 5, 1, 19000, 1)),
        "type",
    ),
    (
        "tif unknown",
        lambda c: c.submit_order(order_request(1, 1, "AAPL", 1, 1, 9, 19000, 1)),
        "time_in_force",
    ),
    (
        "stp unknown",
        lambda c: c.submit_order(limit(1, 1, "AAPL", 1, 19000, 1, stp_mode=7)),
        "stp_mode",
    ),
    (
        "oversize batch",
        lambda c: c.submit_orders([limit(i + 1, 1, "AAPL", 1, 19000, 1) for i in range(10_001)]),
        "at most 10000",
    ),
    (
        "bad order inside a batch",
        lambda c: c.submit_orders(
            [limit(1, 1, "AAPL", 1, 19000, 1), limit(2, 1, "AAPL", 3, 19000, 1)]
        ),
        "orders[1].side",
    ),
    ("cancel order_id 0", lambda c: c.cancel_order(0, 1), "order_id"),
    ("amend account 0", lambda c: c.amend_order(1, 0, 1, 1), "account_id"),
    ("cancel_all unknown symbol", lambda c: c.cancel_all(1, "NOPE"), "unknown symbol"),
    ("kill switch account 0", lambda c: c.set_kill_switch(0, True), "account_id"),
    ("book unknown symbol", lambda c: c.get_order_book("NOPE"), "unknown symbol"),
    ("book no symbol", lambda c: c.get_order_book(""), "symbol"),
    ("get_order 0", lambda c: c.get_order(0), "order_id"),
    ("status unknown", lambda c: c.set_instrument_status("AAPL", 9), "status"),
    ("max open negative", lambda c: c.set_max_open_orders(1, -1), "max_open_orders"),
]


async def test_bad_requests_change_nothing(engine: EngineProcess) -> None:
    async with EngineClient(engine.address) as c:
        await c.submit_order(limit(500, 1, "AAPL", 1, 18990, 3))
        before = await c.get_stats()
        for name, call, needle in BAD_REQUESTS:
            with pytest.raises(EngineRequestError) as ei:
                await call(c)
            assert ei.value.code == grpc.StatusCode.INVALID_ARGUMENT, name
            assert needle in ei.value.message, (name, ei.value.message)
        with pytest.raises(EngineRequestError) as ei:
            async for _ in c.subscribe_market_data(["NOPE"]):
                pass
        assert ei.value.code == grpc.StatusCode.INVALID_ARGUMENT
        after = await c.get_stats()
        assert after.last_sequence == before.last_sequence
        assert after.state_hash == before.state_hash


async def test_business_rejects_are_responses_and_keep_state(engine: EngineProcess) -> None:
    async with EngineClient(engine.address) as c:
        await c.submit_order(limit(500, 1, "AAPL", 1, 18990, 3))
        before = await c.get_stats()
        cases = [
            (limit(1, 1, "AAPL", 1, 19000, 0), pb.REJECT_REASON_INVALID_QUANTITY),
            (limit(1, 1, "AAPL", 1, 19000, -5), pb.REJECT_REASON_INVALID_QUANTITY),
            (limit(1, 1, "AAPL", 1, 0, 1), pb.REJECT_REASON_PRICE_NOT_POSITIVE),
            (limit(1, 1, "AAPL", 1, -100, 1), pb.REJECT_REASON_PRICE_NOT_POSITIVE),
            (limit(1, 1, "AAPL", 1, 30000, 1), pb.REJECT_REASON_PRICE_OUT_OF_BAND),
            (limit(1, 1, "AAPL", 1, 19000, 100_001), pb.REJECT_REASON_QUANTITY_OUT_OF_RANGE),
            (limit(1, 1, "NOPE", 1, 19000, 1), pb.REJECT_REASON_UNKNOWN_SYMBOL),
            (limit(500, 1, "AAPL", 1, 18990, 1), pb.REJECT_REASON_DUPLICATE_ORDER_ID),
            (order_request(1, 1, "AAPL", 1, 2, 3, 0, 1), pb.REJECT_REASON_MARKET_NO_LIQUIDITY),
        ]
        for req, reason in cases:
            r = await c.submit_order(req)
            assert not r.accepted
            assert r.status == pb.ORDER_STATUS_REJECTED
            assert r.reject_reason == reason, req
            assert r.events[0].type == pb.EVENT_TYPE_REJECTED
        unknown = await c.submit_order(limit(1, 1, "NOPE", 1, 19000, 1))
        assert unknown.events[0].symbol == "NOPE"
        after = await c.get_stats()
        assert after.state_hash == before.state_hash
        assert after.last_sequence == before.last_sequence + len(cases) + 1
        assert after.rejects == before.rejects + len(cases) + 1


async def test_concurrent_unary_clients_get_distinct_sequences(engine: EngineProcess) -> None:
    async with EngineClient(engine.address) as c:
        rs = await asyncio.gather(
            *(
                c.submit_order(limit(i + 1, 1 + i % 5, "MSFT", 1 + i % 2, 41950 + i % 100, 1))
                for i in range(200)
            )
        )
    seqs = sorted(r.sequence for r in rs)
    assert seqs == list(range(seqs[0], seqs[0] + 200))
