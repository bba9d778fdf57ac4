"""Sends new orders to the engine, many per SubmitOrders call when many are waiting.

A unary SubmitOrder costs the engine and this process a gRPC call each; under load most of
an order's engine cost was that call, not matching. Requests queue here; a sender takes
whatever is waiting (up to `max_batch`) and submits it as one OrderBatch, while up to
`max_in_flight` batches are on the wire. Order entry queues the orders of each batch it
commits (`enqueue`) and sends them at once (`flush`), so they leave as one call before
their requests even resume. `submit` waits only for the callbacks already queued on the
event loop, so orders submitted together leave together too. A lone order on a quiet
venue waits for nothing else; further batches form while earlier ones are in flight.

The engine answers every order of a batch (accepted or rejected) in request order, with
its own sequence number, exactly as SubmitOrder would. If the engine refuses the whole
batch as malformed (INVALID_ARGUMENT), the orders are retried one call each, so only the
offending order gets the refusal. Any other failure (engine unreachable, queue full) is
every order's answer, as its own call would have been.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

import grpc

from hft.engine.client import EngineRequestError
from hft.engine.pb import engine_pb2 as pb

log = logging.getLogger("hft.api.trading.sender")

SubmitMany = Callable[[Sequence[pb.OrderRequest]], Awaitable[pb.OrderBatchResponse]]
SubmitOne = Callable[[pb.OrderRequest], Awaitable[pb.OrderResponse]]

_Waiting = tuple[pb.OrderRequest, "asyncio.Future[pb.OrderResponse]"]


class OrderSender:
    def __init__(
        self,
        submit_many: SubmitMany,
        submit_one: SubmitOne,
        *,
        max_batch: int = 256,
        max_in_flight: int = 2,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch < 1 or max_in_flight < 1:
            raise ValueError("max_batch and max_in_flight must be at least 1")
        self._submit_many = submit_many
        self._submit_one = submit_one
        self._on_batch = on_batch
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self._waiting: deque[_Waiting] = deque()
        self._in_flight = 0
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0
        self.orders = 0

    def enqueue(self, request: pb.OrderRequest) -> asyncio.Future[pb.OrderResponse]:
        """Queue one order without sending it yet (`flush` sends what is queued); the
        future holds the engine's answer or raises what `EngineClient.submit_order`
        raises. Its caller may be gone by then: the outcome is consumed here as well, so
        an unawaited failure is not reported as a lost exception."""
        fut: asyncio.Future[pb.OrderResponse] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_consume)
        self._waiting.append((request, fut))
        return fut

    def flush(self) -> None:
        """Send the queued orders now (as many batches as the slots in flight allow)."""
        self._dispatch()

    async def submit(self, request: pb.OrderRequest) -> pb.OrderResponse:
        """The engine's answer to one order; raises what `EngineClient.submit_order` raises."""
        fut = self.enqueue(request)
        if not self._scheduled:
            # After the callbacks already queued in this iteration: the other requests
            # woken by the same entry commit add their orders first.
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._dispatch_scheduled)
        return await fut

    async def close(self) -> None:
        """Wait for the batches on the wire (their orders are journaled or not; either
        way their callers get an answer)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _dispatch_scheduled(self) -> None:
        self._scheduled = False
        self._dispatch()

    def _dispatch(self) -> None:
        while self._waiting and self._in_flight < self.max_in_flight:
            # Orders whose caller went away are sent all the same: each is pending_new in
            # the database with a reservation, and the projection settles it from the
            # engine's answer.
            n = min(len(self._waiting), self.max_batch)
            batch = [self._waiting.popleft() for _ in range(n)]
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[_Waiting]) -> None:
        try:
            await self._send_batch(batch)
        finally:
            self._in_flight -= 1
            self._dispatch()

    async def _send_batch(self, batch: list[_Waiting]) -> None:
        self.batches += 1
        self.orders += len(batch)
        if self._on_batch is not None:
            self._on_batch(len(batch))
        if len(batch) == 1:
            await self._send_one(*batch[0])
            return
        try:
            resp = await self._submit_many([req for req, _ in batch])
        except EngineRequestError as exc:
            if exc.code != grpc.StatusCode.INVALID_ARGUMENT:
                self._fail(batch, exc)
                return
            log.warning(
                "engine refused a batch of %d orders (%s); sending them one by one",
                len(batch),
                exc,
            )
            await asyncio.gather(*(self._send_one(req, fut) for req, fut in batch))
            return
        except BaseException as exc:
            self._fail(batch, exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        if len(resp.responses) != len(batch):
            error = EngineRequestError(
                grpc.StatusCode.INTERNAL,
                f"engine answered {len(resp.responses)} of {len(batch)} orders",
            )
            self._fail(batch, error)
            return
        for (_, fut), answer in zip(batch, resp.responses, strict=True):
            if not fut.done():
                fut.set_result(answer)

    @staticmethod
    def _fail(batch: list[_Waiting], exc: BaseException) -> None:
        for _, fut in batch:
            if not fut.done():
                fut.set_exception(exc)

    async def _send_one(
        self, request: pb.OrderRequest, fut: asyncio.Future[pb.OrderResponse]
    ) -> None:
        try:
            answer = await self._submit_one(request)
        except BaseException as exc:
            if not fut.done():
                fut.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        if not fut.done():
            fut.set_result(answer)


def _consume(fut: asyncio.Future[pb.OrderResponse]) -> None:
    if not fut.cancelled():
        fut.exception()


__all__ = ["OrderSender"]
