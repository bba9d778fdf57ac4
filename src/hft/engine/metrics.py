"""Engine statistics, Prometheus export and structured (JSON lines) logging.

Latencies are recorded in `hft.histogram.LatencyHistogram` (ns). Prometheus scrapes
run in the exporter's thread; they read a summary the event loop refreshes once a
second, so a scrape never touches the histograms while the sequencer records.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import queue
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from hft.engine.pb import engine_pb2 as pb
from hft.histogram import LatencyHistogram

_PERCENTILES = (("0.5", 50.0), ("0.99", 99.0), ("0.999", 99.9), ("1", 100.0))


@dataclass
class EngineStats:
    """Counters since the data directory was created (restored from snapshots and replay)
    and latency histograms since the process started."""

    commands: int = 0
    orders: int = 0
    trades: int = 0
    rejects: int = 0
    journal_batches: int = 0
    journal_bytes: int = 0
    snapshots: int = 0
    processing: LatencyHistogram = field(default_factory=LatencyHistogram)
    journal: LatencyHistogram = field(default_factory=LatencyHistogram)
    batch_sizes: LatencyHistogram = field(default_factory=LatencyHistogram)

    def persistent(self) -> dict[str, int]:
        return {
            "commands": self.commands,
            "orders": self.orders,
            "trades": self.trades,
            "rejects": self.rejects,
        }

    def restore(self, d: dict[str, Any]) -> None:
        for k in ("commands", "orders", "trades", "rejects"):
            setattr(self, k, int(d.get(k, 0)))


def latency_pb(h: LatencyHistogram) -> pb.LatencyStats:
    """Percentiles of a histogram in microseconds."""
    return pb.LatencyStats(
        count=h.count,
        p50_us=h.percentile(50.0) / 1000.0,
        p99_us=h.percentile(99.0) / 1000.0,
        p999_us=h.percentile(99.9) / 1000.0,
        max_us=h.max / 1000.0,
        mean_us=h.mean / 1000.0,
    )


class EngineCollector(Collector):
    """Prometheus view of the engine; `update()` is called from the event loop."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}

    def update(self, values: dict[str, Any]) -> None:
        self._values = values  # replaced atomically; the scrape thread reads a whole dict

    def collect(self) -> Iterator[Metric]:
        v = self._values
        if not v:
            return
        for name, help_text in (
            ("commands", "commands sequenced"),
            ("orders", "order submissions sequenced"),
            ("trades", "trades executed"),
            ("rejects", "commands rejected by the core"),
            ("journal_batches", "group commits written to the journal"),
            ("journal_bytes", "bytes written to the journal"),
            ("snapshots", "snapshots written"),
        ):
            yield CounterMetricFamily(f"hft_engine_{name}", help_text, value=v[name])
        yield GaugeMetricFamily(
            "hft_engine_last_sequence", "last journaled sequence", value=v["last_sequence"]
        )
        yield GaugeMetricFamily(
            "hft_engine_live_orders", "orders resting in the books", value=v["live_orders"]
        )
        yield GaugeMetricFamily(
            "hft_engine_queue_depth", "commands waiting for the sequencer", value=v["queue_depth"]
        )
        yield GaugeMetricFamily(
            "hft_engine_subscribers", "open streaming subscriptions", value=v["subscribers"]
        )
        yield GaugeMetricFamily("hft_engine_up", "1 when serving", value=v["serving"])
        for hist, help_text in (
            ("processing", "receipt to events ready inside the engine, seconds"),
            ("journal", "journal write (+fsync) per group commit, seconds"),
        ):
            g = GaugeMetricFamily(
                f"hft_engine_{hist}_latency_seconds", help_text, labels=["quantile"]
            )
            for label, value in v[hist]:
                g.add_metric([label], value)
            yield g
            yield CounterMetricFamily(
                f"hft_engine_{hist}_latency_count", f"{hist} samples", value=v[f"{hist}_count"]
            )


def quantiles(h: LatencyHistogram) -> list[tuple[str, float]]:
    return [(label, h.percentile(p) / 1e9) for label, p in _PERCENTILES]


def start_metrics_server(host: str, port: int, collector: EngineCollector) -> Any:
    """Serve /metrics on host:port in a daemon thread; returns the server."""
    from prometheus_client import start_http_server

    registry = CollectorRegistry()
    registry.register(collector)
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            out.update(extra)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    """`time level logger: message key=value ...` for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict) and extra:
            base += " " + " ".join(f"{k}={v}" for k, v in extra.items())
        return base


def setup_logging(level: str, *, json_lines: bool = True) -> logging.handlers.QueueListener:
    """JSON (or text) lines on stderr through a queue: the event loop only enqueues records."""
    q: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    listener = logging.handlers.QueueListener(q, handler, respect_handler_level=False)
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(logging.handlers.QueueHandler(q))
    root.setLevel(level.upper())
    logging.getLogger("grpc").setLevel(logging.WARNING)
    listener.start()
    return listener
