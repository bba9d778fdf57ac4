"""OrderSender: batching of new orders to the engine (hft.api.trading.sender)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Sequence

import grpc
import pytest

from hft.api.trading.sender import OrderSender
from hft.engine.client import EngineRequestError, EngineUnavailable
from hft.engine.pb import engine_pb2 as pb


class FakeEngine:
    """Answers every order with its own sequence; `gate` holds batch calls open."""

    def __init__(self) -> None:
        self.next_seq = 1
        self.batches: list[list[int]] = []
        self.singles: list[int] = []
        self.gate: asyncio.Event | None = None
        self.fail_batch: Exception | None = None
        self.fail_one: dict[int, Exception] = {}
        self.short_answer = False

    def _answer(self, req: pb.OrderRequest) -> pb.OrderResponse:
        seq, self.next_seq = self.next_seq, self.next_seq + 1
        return pb.OrderResponse(sequence=seq, order_id=req.order_id, accepted=True)

    async def submit_many(self, reqs: Sequence[pb.OrderRequest]) -> pb.OrderBatchResponse:
        self.batches.append([r.order_id for r in reqs])
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_batch is not None:
            raise self.fail_batch
        answers = [self._answer(r) for r in reqs]
        if self.short_answer:
            answers = answers[:-1]
        return pb.OrderBatchResponse(responses=answers)

    async def submit_one(self, req: pb.OrderRequest) -> pb.OrderResponse:
        self.singles.append(req.order_id)
        if self.gate is not None:
            await self.gate.wait()
        if req.order_id in self.fail_one:
            raise self.fail_one[req.order_id]
        return self._answer(req)


def _req(order_id: int) -> pb.OrderRequest:
    return pb.OrderRequest(order_id=order_id, account_id=1, symbol="AAPL", quantity=1)


async def _settle() -> None:
    """Let started submissions reach the sender and its scheduled dispatch run."""
    for _ in range(3):
        await asyncio.sleep(0)


def _start(sender: OrderSender, *order_ids: int) -> list[asyncio.Task[pb.OrderResponse]]:
    return [asyncio.create_task(sender.submit(_req(i))) for i in order_ids]


async def test_a_lone_order_leaves_at_once_as_a_single_call() -> None:
    engine = FakeEngine()
    sender = OrderSender(engine.submit_many, engine.submit_one)
    resp = await sender.submit(_req(5))
    assert (resp.order_id, resp.sequence) == (5, 1)
    assert engine.singles == [5]
    assert engine.batches == []


async def test_orders_submitted_in_one_loop_iteration_leave_as_one_call() -> None:
    engine = FakeEngine()
    sender = OrderSender(engine.submit_many, engine.submit_one)
    answers = await asyncio.gather(*_start(sender, 1, 2, 3, 4, 5))
    assert engine.singles == []
    assert engine.batches == [[1, 2, 3, 4, 5]]
    assert [a.order_id for a in answers] == [1, 2, 3, 4, 5]
    assert sender.batches == 1


async def test_orders_waiting_behind_full_slots_go_as_one_batch_in_order() -> None:
    engine = FakeEngine()
    engine.gate = asyncio.Event()
    sizes: list[int] = []
    sender = OrderSender(
        engine.submit_many, engine.submit_one, max_batch=3, max_in_flight=1, on_batch=sizes.append
    )
    tasks = _start(sender, 1)
    await _settle()
    tasks += _start(sender, 2, 3, 4, 5, 6, 7)
    await _settle()
    engine.gate.set()
    answers = await asyncio.gather(*tasks)
    # 1 alone (slot free), then the six that queued meanwhile in batches of three.
    assert engine.singles == [1]
    assert engine.batches == [[2, 3, 4], [5, 6, 7]]
    assert [a.order_id for a in answers] == list(range(1, 8))
    assert sorted(a.sequence for a in answers) == list(range(1, 8))
    assert sender.orders == 7
    assert sizes == [1, 3, 3]


async def test_unavailable_engine_fails_every_order_of_the_batch() -> None:
    engine = FakeEngine()
    engine.gate = asyncio.Event()
    engine.fail_batch = EngineUnavailable("down")
    sender = OrderSender(engine.submit_many, engine.submit_one, max_in_flight=1)
    [first] = _start(sender, 1)
    await _settle()
    rest = _start(sender, 2, 3)
    await _settle()
    engine.gate.set()
    assert (await first).order_id == 1
    for task in rest:
        with pytest.raises(EngineUnavailable):
            await task
    assert engine.singles == [1]  # no per-order retry when the engine is down


async def test_a_malformed_batch_is_retried_order_by_order() -> None:
    engine = FakeEngine()
    engine.gate = asyncio.Event()
    engine.fail_batch = EngineRequestError(grpc.StatusCode.INVALID_ARGUMENT, "bad order 3")
    engine.fail_one[3] = EngineRequestError(grpc.StatusCode.INVALID_ARGUMENT, "bad order 3")
    sender = OrderSender(engine.submit_many, engine.submit_one, max_in_flight=1)
    tasks = _start(sender, 1)
    await _settle()
    tasks += _start(sender, 2, 3, 4)
    await _settle()
    engine.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert [getattr(r, "order_id", None) for r in results] == [1, 2, None, 4]
    assert isinstance(results[2], EngineRequestError)
    assert sorted(engine.singles) == [1, 2, 3, 4]


async def test_queue_full_is_not_retried() -> None:
    engine = FakeEngine()
    engine.gate = asyncio.Event()
    engine.fail_batch = EngineRequestError(grpc.StatusCode.RESOURCE_EXHAUSTED, "queue full")
    sender = OrderSender(engine.submit_many, engine.submit_one, max_in_flight=1)
    tasks = _start(sender, 1)
    await _settle()
    tasks += _start(sender, 2, 3)
    await _settle()
    engine.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[0].order_id == 1  # type: ignore[union-attr]
    assert all(isinstance(r, EngineRequestError) for r in results[1:])
    assert engine.singles == [1]


async def test_a_short_answer_is_an_error_for_the_whole_batch() -> None:
    engine = FakeEngine()
    engine.gate = asyncio.Event()
    engine.short_answer = True
    sender = OrderSender(engine.submit_many, engine.submit_one, max_in_flight=1)
    tasks = _start(sender, 1)
    await _settle()
    tasks += _start(sender, 2, 3)
    await _settle()
    engine.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, EngineRequestError) for r in results[1:])


async def test_an_order_whose_caller_left_is_still_sent() -> None:
    engine = FakeEngine()
    engine.gate = asyncio.Event()
    sender = OrderSender(engine.submit_many, engine.submit_one, max_in_flight=1)
    [first] = _start(sender, 1)
    await _settle()
    gone, kept = _start(sender, 2, 3)
    await _settle()
    gone.cancel()
    engine.gate.set()
    await first
    assert (await kept).order_id == 3
    await sender.close()
    assert engine.batches == [[2, 3]]


def test_limits_are_validated() -> None:
    engine = FakeEngine()
    with pytest.raises(ValueError, match="at least 1"):
        OrderSender(engine.submit_many, engine.submit_one, max_batch=0)


async def test_queued_orders_leave_together_when_flushed() -> None:
    # Order entry queues a committed batch's orders and flushes once: one call, sent
    # then and not before.
    engine = FakeEngine()
    sender = OrderSender(engine.submit_many, engine.submit_one)
    futures = [sender.enqueue(_req(i)) for i in (7, 8, 9)]
    await _settle()
    assert engine.batches == []
    sender.flush()
    answers = await asyncio.gather(*futures)
    assert engine.batches == [[7, 8, 9]]
    assert [(a.order_id, a.sequence) for a in answers] == [(7, 1), (8, 2), (9, 3)]


async def test_a_queued_order_nobody_awaits_fails_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The request of a queued order may be gone; the engine's failure is then nobody's
    # to read, and must not be logged as a lost exception.
    engine = FakeEngine()
    engine.fail_one[4] = EngineUnavailable("down")
    sender = OrderSender(engine.submit_many, engine.submit_one)
    future = sender.enqueue(_req(4))
    sender.flush()
    await _settle()
    assert future.done()
    del future
    gc.collect()
    assert "exception was never retrieved" not in caplog.text
