"""Prometheus metrics of the trading layer (on the process-wide default registry)."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from hft.api.metrics import labeled


def _build(
    registry: CollectorRegistry,
) -> tuple[Counter, Histogram, Gauge, Histogram, Counter, Histogram]:
    orders = Counter(
        "hft_orders_total",
        "Order status transitions (pending_new on entry, then each status reached)",
        ["status"],
        registry=registry,
    )
    engine_rtt = Histogram(
        "hft_engine_round_trip_seconds",
        "Engine gRPC round trip seen by the backend, per call",
        ["call"],
        buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1, 5),
        registry=registry,
    )
    lag = Gauge(
        "hft_projection_lag_events",
        "Execution commands received from the engine but not yet applied to the database",
        registry=registry,
        multiprocess_mode="max",
    )
    lag_seconds = Histogram(
        "hft_projection_lag_seconds",
        "Time from an execution event's engine timestamp to its database commit",
        buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 5, 30),
        registry=registry,
    )
    events = Counter(
        "hft_projection_events_total",
        "Execution events applied by the projection",
        ["type"],
        registry=registry,
    )
    batch_size = Histogram(
        "hft_batch_size",
        "Items per group commit: orders per entry transaction (entry), orders per engine "
        "call (engine_submit), execution events per projection transaction (projection)",
        ["stage"],
        buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024),
        registry=registry,
    )
    return orders, engine_rtt, lag, lag_seconds, events, batch_size


(
    ORDERS,
    ENGINE_RTT,
    PROJECTION_LAG,
    PROJECTION_LAG_SECONDS,
    PROJECTION_EVENTS,
    BATCH_SIZE,
) = _build(REGISTRY)

# The hot paths' lookups of labeled children (see `labeled`).
ORDERS_BY = labeled(ORDERS)
ENGINE_RTT_BY = labeled(ENGINE_RTT)
PROJECTION_EVENTS_BY = labeled(PROJECTION_EVENTS)
BATCH_SIZE_BY = labeled(BATCH_SIZE)
