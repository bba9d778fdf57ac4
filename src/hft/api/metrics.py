"""Prometheus metrics of the backend's HTTP layer, and the /metrics exposition.

With several workers set PROMETHEUS_MULTIPROC_DIR (`hft api --workers N` does) so that
/metrics aggregates every worker. Gauges added by other modules should then pass a
`multiprocess_mode`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)


def labeled(metric: Any) -> Callable[..., Any]:
    """`metric.labels`, memoized: the child of each label combination is looked up once.

    `labels()` validates and locks on every call, a few microseconds that the hot paths
    pay several times per order; the children it returns live as long as the metric
    (nothing here removes one), so handing out the same object again changes nothing.
    Bounded, for label values that come from outside (methods, statuses).
    """
    return functools.lru_cache(maxsize=4096)(metric.labels)


HTTP_REQUESTS = Counter(
    "hft_http_requests_total",
    "HTTP requests by method, route template and status code",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "hft_http_request_duration_seconds",
    "HTTP request latency (until the response is sent), by method and route template",
    ["method", "route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RATE_LIMITED = Counter("hft_rate_limited_total", "Requests refused with 429, by scope", ["scope"])
AUTH_FAILURES = Counter("hft_auth_failures_total", "Rejected credentials by reason", ["reason"])
HTTP_REQUESTS_BY = labeled(HTTP_REQUESTS)
HTTP_LATENCY_BY = labeled(HTTP_LATENCY)


def render_metrics() -> tuple[bytes, str]:
    """(body, content type) of the Prometheus text exposition."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


__all__ = [
    "AUTH_FAILURES",
    "HTTP_LATENCY",
    "HTTP_LATENCY_BY",
    "HTTP_REQUESTS",
    "HTTP_REQUESTS_BY",
    "RATE_LIMITED",
    "labeled",
    "render_metrics",
]
