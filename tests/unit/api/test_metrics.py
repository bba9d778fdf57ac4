"""The memoized lookup of labeled metric children."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from hft.api.metrics import labeled


def test_labeled_hands_out_the_child_labels_would_and_counts_reach_the_registry() -> None:
    registry = CollectorRegistry()
    counter = Counter("t_requests_total", "test", ["method", "status"], registry=registry)
    by = labeled(counter)
    assert by("GET", "200") is counter.labels("GET", "200")
    assert by("GET", "200") is by("GET", "200")
    assert by("GET", "404") is not by("GET", "200")
    by("GET", "200").inc()
    by("GET", "200").inc(2)
    counter.labels("GET", "200").inc()
    assert registry.get_sample_value("t_requests_total", {"method": "GET", "status": "200"}) == 4
    assert registry.get_sample_value("t_requests_total", {"method": "GET", "status": "404"}) == 0
