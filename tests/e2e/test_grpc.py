"""gRPC connectivity of the running engine: reflection, standard health, HealthCheck, and
that what the backend did is what the engine holds."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from hft_e2e_support import eventually

from hft.engine.pb import engine_pb2 as pb
from hft.engine.pb import engine_pb2_grpc

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_reflection_lists_the_trading_service(stack: Any) -> None:
    with grpc.insecure_channel(stack.engine_address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = list(
            stub.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")])
            )
        )
    services = {s.name for s in replies[0].list_services_response.service}
    assert "trading.pb.TradingEngine" in services
    assert "grpc.health.v1.Health" in services
    # The service's descriptor is served too (what grpcurl needs to call it).
    with grpc.insecure_channel(stack.engine_address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="trading.pb.TradingEngine"
        )
        (reply,) = list(stub.ServerReflectionInfo(iter([request])))
    assert reply.file_descriptor_response.file_descriptor_proto


def test_standard_health_and_health_check(stack: Any) -> None:
    with grpc.insecure_channel(stack.engine_address) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        engine = engine_pb2_grpc.TradingEngineStub(channel)
        reply = engine.HealthCheck(pb.HealthCheckRequest(), timeout=5)
    assert reply.status == pb.HealthCheckResponse.STATUS_SERVING
    assert reply.version
    assert reply.uptime_seconds > 0


def test_an_order_placed_over_rest_is_in_the_engine(stack: Any) -> None:
    t = stack.trader()
    order = t.placed(symbol="TSLA", side="sell", type="limit", quantity="3", price="262.17")
    with grpc.insecure_channel(stack.engine_address) as channel:
        engine = engine_pb2_grpc.TradingEngineStub(channel)
        state = engine.GetOrder(pb.GetOrderRequest(order_id=int(order["id"])), timeout=5)
        assert state.found
        assert state.order.price == 26217
        assert state.order.leaves_quantity == 3
        assert state.order.side == pb.SIDE_SELL
        book = engine.GetOrderBook(pb.GetOrderBookRequest(symbol="TSLA", depth=100), timeout=5)
        assert any(level.price == 26217 and level.quantity >= 3 for level in book.asks)
        instruments = engine.ListInstruments(pb.ListInstrumentsRequest(), timeout=5)
        assert {"AAPL", "BTC-USD"} <= {i.symbol for i in instruments.instruments}
    t.req("DELETE", f"/orders/{order['id']}")

    def gone() -> bool:
        with grpc.insecure_channel(stack.engine_address) as channel:
            engine = engine_pb2_grpc.TradingEngineStub(channel)
            return not engine.GetOrder(
                pb.GetOrderRequest(order_id=int(order["id"])), timeout=5
            ).found

    eventually(gone)


def test_bad_grpc_requests_are_rejected_cleanly(stack: Any) -> None:
    with grpc.insecure_channel(stack.engine_address) as channel:
        engine = engine_pb2_grpc.TradingEngineStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            engine.GetOrderBook(pb.GetOrderBookRequest(symbol="NOPE"), timeout=5)
        assert info.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
        reply = engine.SubmitOrder(
            pb.OrderRequest(
                order_id=(1 << 62) + 17,
                account_id=999_999,
                symbol="AAPL",
                side=pb.SIDE_BUY,
                type=pb.ORDER_TYPE_LIMIT,
                time_in_force=pb.TIME_IN_FORCE_GTC,
                price=19_000,
                quantity=0,
            ),
            timeout=5,
        )
        assert not reply.accepted
        assert reply.reject_reason == pb.REJECT_REASON_INVALID_QUANTITY
        health = engine.HealthCheck(pb.HealthCheckRequest(), timeout=5)
        assert health.status == pb.HealthCheckResponse.STATUS_SERVING
