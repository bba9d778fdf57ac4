"""Client library for the engine service (`trading.pb.TradingEngine`).

`EngineClient` (asyncio) and `SyncEngineClient` (blocking) expose every rpc and return
the generated protobuf messages (`hft.engine.pb.engine_pb2`). Prices are integer ticks
and quantities integer lots; responses carry the instrument's `tick_size`/`lot_size`.

Errors:
* `EngineUnavailable`: the engine is down, recovering, stopping, or the deadline passed.
  For a command the outcome is then unknown (it may have been sequenced).
* `EngineRequestError(code, message)`: the engine refused the request without sequencing
  it (INVALID_ARGUMENT, RESOURCE_EXHAUSTED, ...).
Business rejects are normal responses (`accepted=False`, `reject_reason`).

`ExecutionSubscriber` follows the execution stream across disconnects and engine
restarts, resuming after the last (sequence, index) it yielded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeAlias, TypeVar

import grpc
import grpc.aio
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hft.engine import columns as _columns
from hft.engine.pb import engine_pb2 as pb
from hft.engine.pb import engine_pb2_grpc as pb_grpc

__all__ = [
    "EngineClient",
    "EngineError",
    "EngineRequestError",
    "EngineUnavailable",
    "ExecutionSubscriber",
    "OrderColumnsResult",
    "SyncEngineClient",
    "TlsConfig",
    "pb",
]

log = logging.getLogger("hft.engine.client")

T = TypeVar("T")

_SUBMIT_ORDER_COLUMNS = "/trading.pb.TradingEngine/SubmitOrderColumns"

_UNAVAILABLE_CODES = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
}
_CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_receive_message_length", 256 << 20),
    ("grpc.max_send_message_length", 256 << 20),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


class EngineError(Exception):
    """Base class of the client's errors."""


class EngineUnavailable(EngineError):  # noqa: N818 - name fixed by the platform contract
    """The engine could not be reached, is recovering or stopping, or did not answer in time."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.code = code


class EngineRequestError(EngineError):
    """The engine refused the request (not sequenced); `code` is the gRPC status code."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """TLS settings: the CA that signed the server's certificate (None = system roots),
    and a client certificate and key for mutual TLS."""

    ca_cert: str | Path | None = None
    client_cert: str | Path | None = None
    client_key: str | Path | None = None
    server_name: str | None = None  # overrides the name checked in the server's certificate

    def credentials(self) -> grpc.ChannelCredentials:
        def read(p: str | Path | None) -> bytes | None:
            return Path(p).read_bytes() if p is not None else None

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca_cert),
            private_key=read(self.client_key),
            certificate_chain=read(self.client_cert),
        )


TlsArg: TypeAlias = "TlsConfig | grpc.ChannelCredentials | None"


def _options(tls: TlsArg) -> list[tuple[str, Any]]:
    opts = list(_CHANNEL_OPTIONS)
    if isinstance(tls, TlsConfig) and tls.server_name:
        opts.append(("grpc.ssl_target_name_override", tls.server_name))
    return opts


def _credentials(tls: TlsArg) -> grpc.ChannelCredentials | None:
    if tls is None:
        return None
    if isinstance(tls, TlsConfig):
        return tls.credentials()
    return tls


def _translate(exc: grpc.RpcError) -> EngineError:
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = (exc.details() if hasattr(exc, "details") else None) or str(code)
    if code in _UNAVAILABLE_CODES:
        return EngineUnavailable(details, code)
    return EngineRequestError(code, details)


def order_request(
    order_id: int,
    account_id: int,
    symbol: str,
    side: int,
    type: int,
    time_in_force: int,
    price: int,
    quantity: int,
    *,
    post_only: bool = False,
    stp_mode: int = pb.STP_MODE_CANCEL_MAKER,
) -> pb.OrderRequest:
    """Build an OrderRequest (price in ticks, quantity in lots; enums as proto numbers)."""
    return pb.OrderRequest(
        order_id=order_id,
        account_id=account_id,
        symbol=symbol,
        side=side,  # type: ignore[arg-type]
        type=type,  # type: ignore[arg-type]
        time_in_force=time_in_force,  # type: ignore[arg-type]
        price=price,
        quantity=quantity,
        post_only=post_only,
        stp_mode=stp_mode,  # type: ignore[arg-type]
    )


@dataclass(frozen=True, slots=True)
class OrderColumnsResult:
    """The answer to `submit_order_columns`: position i answers order i of the request.

    Quantities in lots, prices in ticks; enums as proto numbers. `events` holds the
    orders' execution events (EVENT_DTYPE records; `cmd_index` is the order's position,
    `reason` the reject reason of *_REJECTED and the cancel reason of CANCELED events).
    """

    first_sequence: int
    timestamp_ns: int
    order_id: np.ndarray[Any, Any]  # uint64, as sent
    accepted: np.ndarray[Any, Any]  # bool
    reject_reason: np.ndarray[Any, Any]  # int32 RejectReason
    status: np.ndarray[Any, Any]  # int32 OrderStatus
    filled_quantity: np.ndarray[Any, Any]  # int64 lots
    leaves_quantity: np.ndarray[Any, Any]  # int64 lots
    cancel_reason: np.ndarray[Any, Any]  # int32 CancelReason
    events: np.ndarray[Any, Any]  # EVENT_DTYPE
    symbols: list[str]  # the request's symbol table
    symbol_index: np.ndarray[Any, Any]  # per order, into `symbols`
    tick_sizes: list[str]  # per entry of `symbols` ("" for an unknown symbol)
    lot_sizes: list[str]

    def __len__(self) -> int:
        return len(self.order_id)

    @property
    def sequence(self) -> np.ndarray[Any, Any]:
        """Each order's global sequence (uint64): first_sequence + position."""
        return np.uint64(self.first_sequence) + np.arange(len(self), dtype=np.uint64)

    def responses(self) -> list[pb.OrderResponse]:
        """The same answer as `submit_orders` gives, one OrderResponse per order (builds a
        message per order and event: for interoperability, not for speed)."""
        from hft.engine import mapping

        n = len(self)
        bounds = np.searchsorted(self.events["cmd_index"], np.arange(n + 1)).tolist()
        rows = self.events.tolist()
        index = self.symbol_index.tolist()
        out = []
        for i, oid in enumerate(self.order_id.tolist()):
            k = index[i]
            info = (self.symbols[k], self.tick_sizes[k], self.lot_sizes[k])
            out.append(
                mapping.order_response(
                    self.first_sequence + i,
                    self.timestamp_ns,
                    oid,
                    rows[bounds[i] : bounds[i + 1]],
                    {},
                    info,
                )
            )
        return out


def _columns_result(
    data: bytes, symbols: list[str], index: np.ndarray[Any, Any], order_id: np.ndarray[Any, Any]
) -> OrderColumnsResult:
    try:
        a = _columns.decode_order_columns_response(data)
    except ValueError as exc:
        raise EngineError(f"malformed SubmitOrderColumns answer: {exc}") from None
    if len(a.accepted) != len(order_id) or len(a.tick_sizes) != len(symbols):
        raise EngineError(
            f"SubmitOrderColumns answered {len(a.accepted)} orders for {len(order_id)} sent"
        )
    return OrderColumnsResult(
        a.first_sequence,
        a.timestamp_ns,
        order_id,
        a.accepted,
        a.reject_reason,
        a.status,
        a.filled_quantity,
        a.leaves_quantity,
        a.cancel_reason,
        a.events,
        symbols,
        index.astype(np.intp),
        a.tick_sizes,
        a.lot_sizes,
    )


class EngineClient:
    """Async client; use as `async with EngineClient("localhost:50051") as c: ...`.

    `timeout` (seconds) is the deadline of each unary call.
    """

    def __init__(self, address: str, *, timeout: float = 5.0, tls: TlsArg = None) -> None:
        self.address = address
        self.timeout = timeout
        creds = _credentials(tls)
        if creds is None:
            self._channel = grpc.aio.insecure_channel(address, options=_options(tls))
        else:
            self._channel = grpc.aio.secure_channel(address, creds, options=_options(tls))
        self._stub = pb_grpc.TradingEngineStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        # Raw bytes both ways: the columns are encoded and decoded with numpy.
        self._submit_columns = self._channel.unary_unary(_SUBMIT_ORDER_COLUMNS)

    async def __aenter__(self) -> EngineClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel; streams in progress end."""
        await self._channel.close()

    async def _call(
        self, method: Callable[..., Any], request: Any, deadline: float | None = None
    ) -> Any:
        try:
            return await method(request, timeout=self.timeout if deadline is None else deadline)
        except grpc.aio.AioRpcError as exc:
            raise _translate(exc) from None

    async def wait_ready(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until the engine reports SERVING; EngineUnavailable after `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last = "not reachable"
        while True:
            try:
                resp = await self.health()
                if resp.status == pb.HealthCheckResponse.STATUS_SERVING:
                    return
                last = pb.HealthCheckResponse.Status.Name(resp.status)
            except EngineError as exc:
                last = str(exc)
            if loop.time() >= deadline:
                raise EngineUnavailable(
                    f"engine at {self.address} not serving after {timeout}s: {last}"
                )
            await asyncio.sleep(0.05)

    async def health(self) -> pb.HealthCheckResponse:
        """The engine's own health (status, version, uptime, last sequence)."""
        result: pb.HealthCheckResponse = await self._call(
            self._stub.HealthCheck, pb.HealthCheckRequest()
        )
        return result

    async def grpc_health(self, service: str = "") -> int:
        """Status from the standard grpc.health.v1 service (health_pb2.HealthCheckResponse.*)."""
        resp = await self._call(self._health.Check, health_pb2.HealthCheckRequest(service=service))
        return int(resp.status)

    async def list_instruments(self) -> pb.ListInstrumentsResponse:
        result: pb.ListInstrumentsResponse = await self._call(
            self._stub.ListInstruments, pb.ListInstrumentsRequest()
        )
        return result

    async def submit_order(self, request: pb.OrderRequest) -> pb.OrderResponse:
        """Submit one order; a business reject is a response with accepted=False."""
        result: pb.OrderResponse = await self._call(self._stub.SubmitOrder, request)
        return result

    async def submit_orders(self, requests: Sequence[pb.OrderRequest]) -> pb.OrderBatchResponse:
        """Submit many orders in one message; responses are in request order."""
        result: pb.OrderBatchResponse = await self._call(
            self._stub.SubmitOrders, pb.OrderBatch(orders=list(requests))
        )
        return result

    async def submit_order_columns(self, orders: Any) -> OrderColumnsResult:
        """Submit a batch column-wise (SubmitOrderColumns), the fast batch path.

        `orders`: a mapping of equal-length arrays or a numpy structured array with
        order_id, account_id, symbol (one name per order; or `symbols` + `symbol_index`),
        side, type, time_in_force, price (ticks), quantity (lots), optional post_only and
        stp_mode. Returns numpy columns (see OrderColumnsResult). ValueError for columns
        that cannot be encoded; EngineRequestError(INVALID_ARGUMENT) for a batch the
        engine refuses (nothing sequenced).
        """
        data, symbols, index, order_id = _columns.request_from(orders)
        raw = await self._call(self._submit_columns, data)
        return _columns_result(raw, symbols, index, order_id)

    async def cancel_order(self, order_id: int, account_id: int) -> pb.CancelOrderResponse:
        result: pb.CancelOrderResponse = await self._call(
            self._stub.CancelOrder, pb.CancelOrderRequest(order_id=order_id, account_id=account_id)
        )
        return result

    async def amend_order(
        self, order_id: int, account_id: int, price: int, quantity: int
    ) -> pb.AmendOrderResponse:
        """Amend to a new price (ticks) and open quantity (lots)."""
        result: pb.AmendOrderResponse = await self._call(
            self._stub.AmendOrder,
            pb.AmendOrderRequest(
                order_id=order_id, account_id=account_id, price=price, quantity=quantity
            ),
        )
        return result

    async def cancel_all(self, account_id: int, symbol: str = "") -> pb.CancelAllResponse:
        result: pb.CancelAllResponse = await self._call(
            self._stub.CancelAll, pb.CancelAllRequest(account_id=account_id, symbol=symbol)
        )
        return result

    async def set_kill_switch(self, account_id: int, enabled: bool) -> pb.SetKillSwitchResponse:
        result: pb.SetKillSwitchResponse = await self._call(
            self._stub.SetKillSwitch,
            pb.SetKillSwitchRequest(account_id=account_id, enabled=enabled),
        )
        return result

    async def set_instrument_status(self, symbol: str, status: int) -> pb.CommandResponse:
        result: pb.CommandResponse = await self._call(
            self._stub.SetInstrumentStatus,
            pb.SetInstrumentStatusRequest(symbol=symbol, status=status),  # type: ignore[arg-type]
        )
        return result

    async def set_max_open_orders(
        self, account_id: int, max_open_orders: int
    ) -> pb.CommandResponse:
        result: pb.CommandResponse = await self._call(
            self._stub.SetMaxOpenOrders,
            pb.SetMaxOpenOrdersRequest(account_id=account_id, max_open_orders=max_open_orders),
        )
        return result

    async def expire_day(self, symbol: str = "") -> pb.CommandResponse:
        result: pb.CommandResponse = await self._call(
            self._stub.ExpireDay, pb.ExpireDayRequest(symbol=symbol)
        )
        return result

    async def get_order(self, order_id: int) -> pb.GetOrderResponse:
        result: pb.GetOrderResponse = await self._call(
            self._stub.GetOrder, pb.GetOrderRequest(order_id=order_id)
        )
        return result

    async def get_order_book(self, symbol: str, depth: int = 20) -> pb.OrderBook:
        result: pb.OrderBook = await self._call(
            self._stub.GetOrderBook, pb.GetOrderBookRequest(symbol=symbol, depth=depth)
        )
        return result

    async def get_stats(self) -> pb.GetStatsResponse:
        result: pb.GetStatsResponse = await self._call(self._stub.GetStats, pb.GetStatsRequest())
        return result

    async def take_snapshot(self, deadline: float = 60.0) -> pb.SnapshotResponse:
        result: pb.SnapshotResponse = await self._call(
            self._stub.TakeSnapshot, pb.SnapshotRequest(), deadline=deadline
        )
        return result

    async def stream_orders(
        self, requests: AsyncIterator[pb.OrderRequest] | Sequence[pb.OrderRequest]
    ) -> AsyncIterator[pb.OrderResponse]:
        """Pipelined order entry: responses come back in request order."""
        call = self._stub.StreamOrders(requests)
        try:
            async for resp in call:
                yield resp
        except grpc.aio.AioRpcError as exc:
            raise _translate(exc) from None
        finally:
            call.cancel()

    async def subscribe_executions(
        self, from_sequence: int = 0
    ) -> AsyncIterator[pb.ExecutionEvent]:
        """Every execution event with sequence >= from_sequence in order, then live ones."""
        async for batch in self.subscribe_execution_batches(from_sequence):
            for ev in batch:
                yield ev

    async def subscribe_execution_batches(
        self, from_sequence: int = 0
    ) -> AsyncIterator[Sequence[pb.ExecutionEvent]]:
        """The events of `subscribe_executions`, several at a time (SubscribeExecutionBatches;
        an engine without that rpc is read one event per message)."""
        request = pb.SubscribeExecutionsRequest(from_sequence=from_sequence)
        async for batch in self._batched(
            self._stub.SubscribeExecutionBatches, self._stub.SubscribeExecutions, request
        ):
            yield batch

    async def subscribe_market_data(
        self, symbols: Sequence[str] = (), depth: int = 0
    ) -> AsyncIterator[pb.MarketDataEvent]:
        """Per symbol an L2 snapshot, then contiguous deltas and trades (book_sequence)."""
        async for batch in self.subscribe_market_data_batches(symbols, depth):
            for ev in batch:
                yield ev

    async def subscribe_market_data_batches(
        self, symbols: Sequence[str] = (), depth: int = 0
    ) -> AsyncIterator[Sequence[pb.MarketDataEvent]]:
        """The events of `subscribe_market_data`, several at a time."""
        request = pb.SubscribeMarketDataRequest(symbols=list(symbols), depth=depth)
        async for batch in self._batched(
            self._stub.SubscribeMarketDataBatches, self._stub.SubscribeMarketData, request
        ):
            yield batch

    async def _batched(
        self, batched: Any, single: Any, request: Any
    ) -> AsyncIterator[Sequence[Any]]:
        # A message costs far more than an event, so the batched rpc is the default; an
        # older engine answers UNIMPLEMENTED before any message, and the one-event rpc
        # serves the same events.
        call = batched(request)
        received = False
        try:
            async for msg in call:
                received = True
                yield msg.events
            return
        except grpc.aio.AioRpcError as exc:
            if received or exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise _translate(exc) from None
        finally:
            call.cancel()
        call = single(request)
        try:
            async for ev in call:
                yield (ev,)
        except grpc.aio.AioRpcError as exc:
            raise _translate(exc) from None
        finally:
            call.cancel()


class ExecutionSubscriber:
    """Reconnecting execution stream: `async for ev in ExecutionSubscriber(addr, 0): ...`.

    Yields each event once, in (sequence, index) order, from `from_sequence` on. After a
    disconnect or engine restart it resubscribes from the sequence of the last yielded
    event and skips what it already yielded. Errors other than unavailability (for
    example INVALID_ARGUMENT) are raised. `last` is the (sequence, index) last yielded.
    """

    def __init__(
        self,
        address: str,
        from_sequence: int = 0,
        *,
        tls: TlsArg = None,
        retry_initial: float = 0.05,
        retry_max: float = 2.0,
    ) -> None:
        self.address = address
        self.tls = tls
        self._from = from_sequence
        self.last: tuple[int, int] | None = None
        self.reconnects = 0
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._client: EngineClient | None = None
        self._closed = False

    def __aiter__(self) -> AsyncIterator[pb.ExecutionEvent]:
        return self._run()

    async def close(self) -> None:
        """Stop: the iteration ends at the next reconnect or event."""
        self._closed = True
        if self._client is not None:
            await self._client.close()

    async def _run(self) -> AsyncIterator[pb.ExecutionEvent]:
        delay = self._retry_initial
        while not self._closed:
            start = self._from if self.last is None else self.last[0]
            self._client = EngineClient(self.address, tls=self.tls)
            try:
                async for batch in self._client.subscribe_execution_batches(start):
                    delay = self._retry_initial
                    for ev in batch:
                        key = (ev.sequence, ev.index)
                        if self.last is not None and key <= self.last:
                            continue
                        self.last = key
                        yield ev
            except EngineUnavailable as exc:
                log.info("execution stream interrupted (%s); resubscribing", exc)
            except EngineRequestError as exc:
                if exc.code != grpc.StatusCode.RESOURCE_EXHAUSTED:
                    raise
                log.warning("execution stream dropped as too slow; resubscribing")
            finally:
                with contextlib.suppress(Exception):
                    await self._client.close()
            if self._closed:
                return
            self.reconnects += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry_max)


class SyncEngineClient:
    """Blocking client with the same calls as EngineClient."""

    def __init__(self, address: str, *, timeout: float = 5.0, tls: TlsArg = None) -> None:
        self.address = address
        self.timeout = timeout
        creds = _credentials(tls)
        if creds is None:
            self._channel = grpc.insecure_channel(address, options=_options(tls))
        else:
            self._channel = grpc.secure_channel(address, creds, options=_options(tls))
        self._stub = pb_grpc.TradingEngineStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        # Raw bytes both ways: the columns are encoded and decoded with numpy.
        self._submit_columns = self._channel.unary_unary(_SUBMIT_ORDER_COLUMNS)

    def __enter__(self) -> SyncEngineClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _call(self, method: Callable[..., Any], request: Any, deadline: float | None = None) -> Any:
        try:
            return method(request, timeout=self.timeout if deadline is None else deadline)
        except grpc.RpcError as exc:
            raise _translate(exc) from None

    def _stream(self, call: Any) -> Iterator[Any]:
        try:
            yield from call
        except grpc.RpcError as exc:
            raise _translate(exc) from None
        finally:
            call.cancel()

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Block until the engine reports SERVING; EngineUnavailable after `timeout` seconds."""
        import time

        deadline = time.monotonic() + timeout
        last = "not reachable"
        while True:
            try:
                resp = self.health()
                if resp.status == pb.HealthCheckResponse.STATUS_SERVING:
                    return
                last = pb.HealthCheckResponse.Status.Name(resp.status)
            except EngineError as exc:
                last = str(exc)
            if time.monotonic() >= deadline:
                raise EngineUnavailable(
                    f"engine at {self.address} not serving after {timeout}s: {last}"
                )
            time.sleep(0.05)

    def health(self) -> pb.HealthCheckResponse:
        result: pb.HealthCheckResponse = self._call(self._stub.HealthCheck, pb.HealthCheckRequest())
        return result

    def grpc_health(self, service: str = "") -> int:
        resp = self._call(self._health.Check, health_pb2.HealthCheckRequest(service=service))
        return int(resp.status)

    def list_instruments(self) -> pb.ListInstrumentsResponse:
        result: pb.ListInstrumentsResponse = self._call(
            self._stub.ListInstruments, pb.ListInstrumentsRequest()
        )
        return result

    def submit_order(self, request: pb.OrderRequest) -> pb.OrderResponse:
        result: pb.OrderResponse = self._call(self._stub.SubmitOrder, request)
        return result

    def submit_orders(self, requests: Sequence[pb.OrderRequest]) -> pb.OrderBatchResponse:
        result: pb.OrderBatchResponse = self._call(
            self._stub.SubmitOrders, pb.OrderBatch(orders=list(requests))
        )
        return result

    def submit_order_columns(self, orders: Any) -> OrderColumnsResult:
        """Blocking `EngineClient.submit_order_columns`."""
        data, symbols, index, order_id = _columns.request_from(orders)
        raw = self._call(self._submit_columns, data)
        return _columns_result(raw, symbols, index, order_id)

    def cancel_order(self, order_id: int, account_id: int) -> pb.CancelOrderResponse:
        result: pb.CancelOrderResponse = self._call(
            self._stub.CancelOrder, pb.CancelOrderRequest(order_id=order_id, account_id=account_id)
        )
        return result

    def amend_order(
        self, order_id: int, account_id: int, price: int, quantity: int
    ) -> pb.AmendOrderResponse:
        result: pb.AmendOrderResponse = self._call(
            self._stub.AmendOrder,
            pb.AmendOrderRequest(
                order_id=order_id, account_id=account_id, price=price, quantity=quantity
            ),
        )
        return result

    def cancel_all(self, account_id: int, symbol: str = "") -> pb.CancelAllResponse:
        result: pb.CancelAllResponse = self._call(
            self._stub.CancelAll, pb.CancelAllRequest(account_id=account_id, symbol=symbol)
        )
        return result

    def set_kill_switch(self, account_id: int, enabled: bool) -> pb.SetKillSwitchResponse:
        result: pb.SetKillSwitchResponse = self._call(
            self._stub.SetKillSwitch,
            pb.SetKillSwitchRequest(account_id=account_id, enabled=enabled),
        )
        return result

    def set_instrument_status(self, symbol: str, status: int) -> pb.CommandResponse:
        result: pb.CommandResponse = self._call(
            self._stub.SetInstrumentStatus,
            pb.SetInstrumentStatusRequest(symbol=symbol, status=status),  # type: ignore[arg-type]
        )
        return result

    def set_max_open_orders(self, account_id: int, max_open_orders: int) -> pb.CommandResponse:
        result: pb.CommandResponse = self._call(
            self._stub.SetMaxOpenOrders,
            pb.SetMaxOpenOrdersRequest(account_id=account_id, max_open_orders=max_open_orders),
        )
        return result

    def expire_day(self, symbol: str = "") -> pb.CommandResponse:
        result: pb.CommandResponse = self._call(
            self._stub.ExpireDay, pb.ExpireDayRequest(symbol=symbol)
        )
        return result

    def get_order(self, order_id: int) -> pb.GetOrderResponse:
        result: pb.GetOrderResponse = self._call(
            self._stub.GetOrder, pb.GetOrderRequest(order_id=order_id)
        )
        return result

    def get_order_book(self, symbol: str, depth: int = 20) -> pb.OrderBook:
        result: pb.OrderBook = self._call(
            self._stub.GetOrderBook, pb.GetOrderBookRequest(symbol=symbol, depth=depth)
        )
        return result

    def get_stats(self) -> pb.GetStatsResponse:
        result: pb.GetStatsResponse = self._call(self._stub.GetStats, pb.GetStatsRequest())
        return result

    def take_snapshot(self, deadline: float = 60.0) -> pb.SnapshotResponse:
        result: pb.SnapshotResponse = self._call(
            self._stub.TakeSnapshot, pb.SnapshotRequest(), deadline=deadline
        )
        return result

    def stream_orders(
        self, requests: Iterator[pb.OrderRequest] | Sequence[pb.OrderRequest]
    ) -> Iterator[pb.OrderResponse]:
        return self._stream(self._stub.StreamOrders(iter(requests)))

    def subscribe_executions(self, from_sequence: int = 0) -> Iterator[pb.ExecutionEvent]:
        return self._stream(
            self._stub.SubscribeExecutions(
                pb.SubscribeExecutionsRequest(from_sequence=from_sequence)
            )
        )

    def subscribe_market_data(
        self, symbols: Sequence[str] = (), depth: int = 0
    ) -> Iterator[pb.MarketDataEvent]:
        return self._stream(
            self._stub.SubscribeMarketData(
                pb.SubscribeMarketDataRequest(symbols=list(symbols), depth=depth)
            )
        )
