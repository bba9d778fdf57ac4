"""SubscribeExecutions (history then live, across restarts) and SubscribeMarketData
(snapshot + deltas rebuild the book), slow subscribers."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import grpc
import pytest

from hft.engine.client import (
    EngineClient,
    EngineRequestError,
    ExecutionSubscriber,
    order_request,
    pb,
)
from hft.engine.testing import EngineProcess, OrderFlow

pytestmark = pytest.mark.timeout(180)


async def drive(address: str, flow: OrderFlow, n: int) -> list[pb.ExecutionEvent]:
    """Send n commands (unary and batched); returns the events of the responses."""
    out: list[pb.ExecutionEvent] = []
    async with EngineClient(address) as c:
        sent = 0
        while sent < n:
            cmd = flow.next()
            if cmd.kind == "cancel":
                out.extend((await c.cancel_order(cmd.req.order_id, cmd.req.account_id)).events)
                sent += 1
            elif sent % 7 == 0:
                batch = [cmd.req] + [
                    c2.req for c2 in (flow.next() for _ in range(9)) if c2.kind == "submit"
                ]
                for r in (await c.submit_orders(batch)).responses:
                    out.extend(r.events)
                sent += len(batch)
            else:
                out.extend((await c.submit_order(cmd.req)).events)
                sent += 1
    return out


def key(e: pb.ExecutionEvent) -> tuple[int, int]:
    return (e.sequence, e.index)


async def collect(address: str, from_seq: int, until_seq: int) -> list[pb.ExecutionEvent]:
    got: list[pb.ExecutionEvent] = []
    async with EngineClient(address) as c:
        async for ev in c.subscribe_executions(from_seq):
            got.append(ev)
            if ev.sequence >= until_seq and ev.last_in_sequence:
                break
    return got


async def test_executions_from_zero_and_from_the_middle(engine: EngineProcess) -> None:
    flow = OrderFlow(11)
    acked = await drive(engine.address, flow, 300)
    last = max(e.sequence for e in acked)
    # A live subscriber started now sees the later commands too.
    live_task = asyncio.create_task(collect(engine.address, 0, last + 100))
    await asyncio.sleep(0.2)
    acked += await drive(engine.address, flow, 100)
    last = max(e.sequence for e in acked)
    live = await asyncio.wait_for(live_task, 60)
    everything = await collect(engine.address, 0, last)
    assert [key(e) for e in everything] == sorted({key(e) for e in everything})
    assert everything == sorted(acked, key=key)
    assert live[: len(everything)] == everything
    middle = everything[len(everything) // 2].sequence
    tail = await collect(engine.address, middle, last)
    assert tail[0].sequence == middle
    assert tail[0].index == 0
    assert tail == [e for e in everything if e.sequence >= middle]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_execution_subscriber_resumes_across_restart(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path / "engine", port=free_port())
    engine.start()
    try:
        flow = OrderFlow(12)
        acked = await drive(engine.address, flow, 150)
        sub = ExecutionSubscriber(engine.address, 1, retry_initial=0.02, retry_max=0.2)
        got: list[pb.ExecutionEvent] = []

        async def consume() -> None:
            async for ev in sub:
                got.append(ev)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.3)
        await asyncio.to_thread(engine.stop)  # clean stop while streaming
        await asyncio.to_thread(engine.start)
        acked += await drive(engine.address, flow, 100)
        await asyncio.to_thread(engine.kill)  # and a crash
        await asyncio.to_thread(engine.start)
        acked += await drive(engine.address, flow, 100)
        last = max(e.sequence for e in acked)
        for _ in range(600):
            if got and got[-1].sequence >= last and got[-1].last_in_sequence:
                break
            await asyncio.sleep(0.05)
        await sub.close()
        task.cancel()
        assert sub.reconnects >= 2
        assert [key(e) for e in got] == sorted({key(e) for e in got}), "duplicate or out of order"
        assert got == sorted(acked, key=key)
    finally:
        engine.kill()


async def test_market_data_snapshot_and_deltas_rebuild_the_book(engine: EngineProcess) -> None:
    flow = OrderFlow(13)
    await drive(engine.address, flow, 100)  # a book exists before subscribing
    symbols = ["AAPL", "BTC-USD"]
    books: dict[str, dict[int, dict[int, tuple[int, int]]]] = {s: {1: {}, 2: {}} for s in symbols}
    book_seq: dict[str, int] = {}
    trades: list[pb.Trade] = []
    async with EngineClient(engine.address) as c:
        stream = c.subscribe_market_data(symbols, depth=0)

        async def apply_until(targets: dict[str, int]) -> None:
            async for ev in stream:
                which = ev.WhichOneof("event")
                if which == "snapshot":
                    ob = ev.snapshot
                    books[ob.symbol] = {
                        1: {lv.price: (lv.quantity, lv.order_count) for lv in ob.bids},
                        2: {lv.price: (lv.quantity, lv.order_count) for lv in ob.asks},
                    }
                    book_seq[ob.symbol] = ev.book_sequence
                else:
                    sym = ev.delta.symbol if which == "delta" else ev.trade.symbol
                    assert ev.book_sequence == book_seq[sym] + 1, "gap in book_sequence"
                    book_seq[sym] = ev.book_sequence
                    if which == "delta":
                        d = ev.delta
                        if d.quantity == 0:
                            books[sym][d.side].pop(d.price, None)
                        else:
                            books[sym][d.side][d.price] = (d.quantity, d.order_count)
                    else:
                        trades.append(ev.trade)
                if all(book_seq.get(s, -1) >= t for s, t in targets.items()):
                    return

        first = {s: (await c.get_order_book(s, 1)).book_sequence for s in symbols}
        await apply_until(first)
        await drive(engine.address, flow, 400)
        final = {s: await c.get_order_book(s, 100_000) for s in symbols}
        await apply_until({s: ob.book_sequence for s, ob in final.items()})
    assert trades, "the flow crosses"
    for s, ob in final.items():
        assert books[s][1] == {lv.price: (lv.quantity, lv.order_count) for lv in ob.bids}, s
        assert books[s][2] == {lv.price: (lv.quantity, lv.order_count) for lv in ob.asks}, s
        assert book_seq[s] == ob.book_sequence


async def _read_to_end(stream: grpc.aio.UnaryStreamCall, seconds: float) -> None:
    """Read a stream until it ends; a stream that neither ends nor fails in time is a bug."""
    async with asyncio.timeout(seconds):
        while await stream.read() is not grpc.aio.EOF:
            pass


async def test_slow_subscriber_is_dropped_not_waited_for(tmp_path: Path) -> None:
    cfg = tmp_path / "engine.yaml"
    from hft.engine.pb import engine_pb2_grpc as pb_grpc
    from hft.engine.testing import DEFAULT_CONFIG

    cfg.write_text(
        DEFAULT_CONFIG.read_text().replace("engine: {}", "engine: {subscriber_queue: 4}")
    )
    engine = EngineProcess(tmp_path / "engine", config=cfg)
    engine.start()
    # The subscriber's own channel keeps HTTP/2's initial 64 KiB receive window: with
    # BDP probing on, the window grows until the client library buffers the whole
    # backlog, and the server would never see a slow reader.
    slow_channel = grpc.aio.insecure_channel(engine.address, options=[("grpc.http2.bdp_probe", 0)])
    try:
        async with EngineClient(engine.address) as c:
            await c.submit_order(order_request(999_999, 9, "MSFT", 1, 1, 1, 41000, 1))
            stream = pb_grpc.TradingEngineStub(slow_channel).SubscribeExecutions(
                pb.SubscribeExecutionsRequest(from_sequence=0)
            )
            first = await stream.read()  # the subscription is live; now stop reading
            assert first.order_id == 999_999
            for b in range(30):
                reqs = [
                    order_request(
                        b * 1000 + i + 1, 1 + i % 4, "MSFT", 1 + i % 2, 1, 1, 41900 + i % 200, 1
                    )
                    for i in range(1000)
                ]
                resp = await c.submit_orders(reqs)
                assert len(resp.responses) == 1000
            with pytest.raises(grpc.aio.AioRpcError) as ei:
                await _read_to_end(stream, seconds=120)
            assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "too slow" in (ei.value.details() or "")
            assert (await c.health()).status == pb.HealthCheckResponse.STATUS_SERVING
    finally:
        await slow_channel.close()
        engine.kill()


async def _single_executions(address: str, until_seq: int) -> list[pb.ExecutionEvent]:
    """The one-event-per-message rpc, read through the raw stub."""
    from hft.engine.pb import engine_pb2_grpc as pb_grpc

    got: list[pb.ExecutionEvent] = []
    async with grpc.aio.insecure_channel(address) as channel:
        call = pb_grpc.TradingEngineStub(channel).SubscribeExecutions(
            pb.SubscribeExecutionsRequest(from_sequence=0)
        )
        async for ev in call:
            got.append(ev)
            if ev.sequence >= until_seq and ev.last_in_sequence:
                call.cancel()
                break
    return got


async def test_execution_batches_carry_exactly_the_single_stream_events(
    engine: EngineProcess,
) -> None:
    from hft.engine.server import STREAM_BATCH

    flow = OrderFlow(21)
    acked = await drive(engine.address, flow, 300)
    sizes: list[int] = []
    batched: list[pb.ExecutionEvent] = []
    async with EngineClient(engine.address) as c:
        stream = c.subscribe_execution_batches(0)
        last = max(e.sequence for e in acked)
        async for batch in stream:
            sizes.append(len(batch))
            batched += batch
            if batched[-1].sequence >= last and batched[-1].last_in_sequence:
                break
        # Live: a 20-order SubmitOrders is published as one group, so it arrives as
        # one message, not twenty.
        live_sizes: list[int] = []
        reqs = [
            order_request(900_000 + i, 1 + i % 3, "MSFT", 1, 1, 1, 40000 + i, 1) for i in range(20)
        ]
        resp = await c.submit_orders(reqs)
        target = max(r.sequence for r in resp.responses)
        async for batch in stream:
            live_sizes.append(len(batch))
            batched += batch
            if batched[-1].sequence >= target and batched[-1].last_in_sequence:
                break
        await stream.aclose()
    single = await _single_executions(engine.address, target)
    assert batched == single
    assert batched[: len(acked)] == sorted(acked, key=key)
    assert max(sizes) > 1, "history is read many events per message"
    assert all(0 < n <= STREAM_BATCH for n in sizes + live_sizes)
    assert len(live_sizes) < 20, live_sizes


async def test_market_data_batches_carry_exactly_the_single_stream_events(
    engine: EngineProcess,
) -> None:
    flow = OrderFlow(22)
    await drive(engine.address, flow, 50)
    async with EngineClient(engine.address) as c:
        singles = c._stub.SubscribeMarketData(pb.SubscribeMarketDataRequest(symbols=["AAPL"]))
        batches = c.subscribe_market_data_batches(["AAPL"])
        first_single = await singles.read()
        first_batch = await anext(batches)
        assert list(first_batch) == [first_single]
        assert first_single.WhichOneof("event") == "snapshot"
        await drive(engine.address, flow, 300)
        target = (await c.get_order_book("AAPL", 1)).book_sequence
        from_single: list[pb.MarketDataEvent] = []
        while not from_single or from_single[-1].book_sequence < target:
            from_single.append(await singles.read())
        from_batches: list[pb.MarketDataEvent] = []
        sizes = []
        while not from_batches or from_batches[-1].book_sequence < target:
            batch = await anext(batches)
            sizes.append(len(batch))
            from_batches += batch
        singles.cancel()
        await batches.aclose()
    assert from_batches == from_single
    assert [e.book_sequence for e in from_batches] == list(
        range(first_single.book_sequence + 1, target + 1)
    )
    assert len(sizes) < len(from_batches), "some messages carry several events"


async def test_client_reads_an_engine_without_the_batched_rpcs() -> None:
    """An engine that predates SubscribeExecutionBatches answers UNIMPLEMENTED; the client
    then reads the one-event stream, and a failure after that is still reported."""
    events = [
        pb.ExecutionEvent(sequence=s, index=0, last_in_sequence=True, order_id=s) for s in (3, 4, 5)
    ]

    async def executions(request: pb.SubscribeExecutionsRequest, context: object) -> object:
        for ev in events:
            if ev.sequence >= request.from_sequence:
                yield ev

    handler = grpc.method_handlers_generic_handler(
        "trading.pb.TradingEngine",
        {
            "SubscribeExecutions": grpc.unary_stream_rpc_method_handler(
                executions,
                request_deserializer=pb.SubscribeExecutionsRequest.FromString,
                response_serializer=pb.ExecutionEvent.SerializeToString,
            )
        },
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with EngineClient(f"127.0.0.1:{port}") as c:
            got = [ev async for ev in c.subscribe_executions(4)]
            assert got == events[1:]
            with pytest.raises(EngineRequestError) as ei:
                async for _ in c.subscribe_market_data(["AAPL"]):
                    pass
            assert ei.value.code == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await server.stop(None)
