"""Prometheus scrape targets, Grafana provisioning and the dashboard's metric names."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import DEPLOY, REPO, free_port

DASHBOARD = DEPLOY / "grafana" / "dashboards" / "hft-overview.json"
PROMQL_WORDS = {
    "sum", "by", "rate", "max", "min", "avg", "histogram_quantile", "le", "up",
    "irate", "increase", "without", "count",
}  # fmt: skip


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def _exprs() -> list[str]:
    return [t["expr"] for p in _dashboard()["panels"] for t in p["targets"]]


def _series(expr: str) -> set[str]:
    """The hft_ series names a PromQL expression reads, as written (with _bucket)."""
    without_labels = re.sub(r"\{[^}]*\}", "", expr)
    without_strings = re.sub(r'"[^"]*"', "", without_labels)
    names = set(re.findall(r"\b[a-z_][a-z0-9_]*\b", without_strings)) - PROMQL_WORDS
    return {n for n in names if n.startswith("hft_")}


def _metric_names(expr: str) -> set[str]:
    return {re.sub(r"_(bucket|count|sum)$", "", n) for n in _series(expr)}


def test_prometheus_scrapes_engine_and_backend(compose_config: dict[str, Any]) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: (job.get("metrics_path", "/metrics"), job["static_configs"][0]["targets"])
        for job in config["scrape_configs"]
    }
    assert targets["hft-engine"] == ("/metrics", ["engine:9101"])
    assert targets["hft-backend"] == ("/metrics", ["backend:8000"])
    services = compose_config["services"]
    assert "9101" in services["engine"]["expose"]
    mounted = services["prometheus"]["volumes"][0]
    assert mounted.startswith("./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml")


def test_grafana_datasource_is_the_one_the_dashboard_uses() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())
    (source,) = sources["datasources"]
    assert source["url"] == "http://prometheus:9090"
    uids = {p["datasource"]["uid"] for p in _dashboard()["panels"]}
    uids |= {t["datasource"]["uid"] for p in _dashboard()["panels"] for t in p["targets"]}
    assert uids == {source["uid"]}
    providers = yaml.safe_load((provisioning / "dashboards" / "hft.yaml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_dashboard_panels_are_well_formed() -> None:
    dashboard = _dashboard()
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("order rate", "latency", "projection lag", "errors"):
        assert topic in titles
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0
        assert pos["x"] + pos["w"] <= 24
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert ref_ids
        assert len(ref_ids) == len(set(ref_ids))
    for expr in _exprs():
        depth = 0
        for char in expr:
            depth += {"(": 1, ")": -1}.get(char, 0)
            assert depth >= 0, expr
        assert depth == 0, expr
        assert expr.count("{") == expr.count("}"), expr


def test_dashboard_metrics_are_documented() -> None:
    used = set().union(*(_metric_names(e) for e in _exprs()))
    assert {"hft_engine_processing_latency_seconds", "hft_orders_total"} <= used
    docs = (REPO / "docs" / "deployment.md").read_text()
    section = docs.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(hft_[a-z0-9_]+)", section, flags=re.MULTILINE))
    assert used <= documented, f"undocumented: {sorted(used - documented)}"


def _engine_exposition(tmp_path: Path) -> str:
    """/metrics of a real `hft engine` started on free ports with the default config."""
    port = free_port()
    command = [sys.executable, "-m", "hft.cli", "engine", "--port", "0"]
    command += ["--metrics-port", str(port), "--data-dir", str(tmp_path / "engine")]
    command += ["--config", str(REPO / "config" / "default.yaml")]
    # The exported names do not depend on the core; the reference one needs no build.
    command += ["--core", "reference"]
    engine = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert engine.stdout is not None
        for line in engine.stdout:
            if line.startswith("engine listening on"):
                break
        else:
            pytest.fail(f"engine exited with {engine.wait()} before listening")
        text = ""
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    text = r.read().decode()
            except OSError:
                text = ""
            if "hft_engine_up" in text:
                return text
            time.sleep(0.1)
        pytest.fail(f"engine metrics never showed hft_engine_up: {text[:500]}")
    finally:
        engine.terminate()
        engine.wait(timeout=30)


def _backend_exposition() -> str:
    """The backend's registry as its modules define it (a fresh interpreter, no app)."""
    code = (
        "import hft.api.metrics, hft.api.trading.metrics\n"
        "from prometheus_client import REGISTRY, generate_latest\n"
        "print(generate_latest(REGISTRY).decode())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return result.stdout


def test_dashboard_metrics_are_what_engine_and_backend_export(tmp_path: Path) -> None:
    exposition = _engine_exposition(tmp_path) + _backend_exposition()
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", exposition, flags=re.MULTILINE))
    samples = set(re.findall(r"^(hft_[a-z0-9_]+)", exposition, flags=re.MULTILINE))
    missing = []
    for series in set().union(*(_series(e) for e in _exprs())):
        if series.endswith("_bucket"):
            if types.get(series.removesuffix("_bucket")) != "histogram":
                missing.append(series)
        elif series not in samples and series not in types:
            missing.append(series)
    assert missing == [], f"the dashboard reads series nobody exports: {sorted(missing)}"
