"""Health while recovering, configuration errors at start, TLS and mutual TLS, metrics."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2

from hft.engine.client import EngineUnavailable, SyncEngineClient, TlsConfig, order_request, pb
from hft.engine.journal import KIND_COMMANDS, KIND_INSTRUMENTS, SegmentLog
from hft.engine.testing import DEFAULT_CONFIG, EngineProcess, default_config
from hft.engine.types import COMMAND_DTYPE, CommandKind

pytestmark = pytest.mark.timeout(180)


def write_journal(data_dir: Path, n: int) -> None:
    """A journal of n resting limit orders, as the engine would have written it."""
    log = SegmentLog(data_dir / "journal", "journal", 1 << 30)
    log.open()
    specs = default_config().instruments
    import json

    log.append(KIND_INSTRUMENTS, 1, 0, json.dumps([s.to_json() for s in specs]).encode())
    cmds = np.zeros(n, dtype=COMMAND_DTYPE)
    i = np.arange(n)
    cmds["kind"] = CommandKind.SUBMIT
    cmds["side"] = 1 + i % 2
    cmds["type"] = 1
    cmds["tif"] = 1
    cmds["symbol_id"] = 1
    cmds["order_id"] = i + 1
    cmds["account_id"] = 1 + i % 50
    cmds["price"] = np.where(i % 2 == 0, 18000 - i % 500, 20000 + i % 500)
    cmds["qty"] = 1
    cmds["ts"] = 1_700_000_000_000_000_000 + i
    for start in range(0, n, 10_000):
        part = cmds[start : start + 10_000]
        log.append(KIND_COMMANDS, start + 1, start + len(part), part.view(np.uint8))
    log.close()


def test_not_serving_until_recovery_completes(tmp_path: Path) -> None:
    data = tmp_path / "engine"
    n = 150_000
    write_journal(data, n)
    # The pure-Python reference core replays slowly enough to watch the recovery.
    engine = EngineProcess(data, core="reference")
    engine.spawn()
    try:
        engine.wait_bound()
        saw_recovering = False
        with SyncEngineClient(engine.address) as c:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    h = c.health()
                    if h.status == pb.HealthCheckResponse.STATUS_SERVING:
                        break
                    assert h.status == pb.HealthCheckResponse.STATUS_RECOVERING
                    if engine.health_status() == health_pb2.HealthCheckResponse.SERVING:
                        # Recovery completed between the two probes.
                        assert c.health().status == pb.HealthCheckResponse.STATUS_SERVING
                        break
                    try:
                        c.submit_order(order_request(1, 1, "AAPL", 1, 1, 1, 19000, 1))
                    except EngineUnavailable as exc:
                        assert "recovering" in str(exc)  # noqa: PT017
                        saw_recovering = True
                    else:  # recovery finished between the two calls
                        assert c.health().status == pb.HealthCheckResponse.STATUS_SERVING
                        break
                except (EngineUnavailable, grpc.RpcError) as exc:
                    # A busy machine may let a probe time out; only the answers count.
                    if "deadline" not in str(exc).lower():
                        raise
                time.sleep(0.05)
            assert saw_recovering
            assert engine.health_status() == health_pb2.HealthCheckResponse.SERVING
            stats = c.get_stats()
            assert stats.replayed_commands == n
            assert stats.last_sequence in (n, n + 1)  # + the probe order if it got through
            assert stats.live_orders == n
    finally:
        engine.kill()


def run_engine(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hft.cli", "engine", "--port", "0", "--metrics-port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("replace", "needle"),
    [
        (
            'max_quantity: "100000", price_band_pct: "10", reference_price: "190.00"',
            "instruments[0].reference_price",
        ),
        ("{symbol_id: 2, symbol: MSFT", "instruments[1].symbol_id"),
        ("symbol: MSFT", "instruments[1].symbol"),
        ('lot_size: "0.0001", min_quantity: "0.0001"', "instruments[5].min_quantity"),
        ('price_band_pct: "5"', "instruments[4].price_band_pct"),
        (
            'symbol: SPY, tick_size: "0.01"',
            "instruments[4].tick_size",
        ),
        ("engine: {}", "engine.fsync"),
    ],
)
def test_invalid_config_names_the_field(tmp_path: Path, replace: str, needle: str) -> None:
    text = DEFAULT_CONFIG.read_text()
    bad = {
        "instruments[0].reference_price": replace.replace('"190.00"', '"190.005"'),
        "instruments[1].symbol_id": "{symbol_id: 1, symbol: MSFT",
        "instruments[1].symbol": "symbol: AAPL",
        "instruments[5].min_quantity": 'lot_size: "0.0001", min_quantity: "0.00015"',
        "instruments[4].price_band_pct": 'price_band_pct: "5.001"',
        "instruments[4].tick_size": 'symbol: SPY, tick_size: "-0.01"',
        "engine.fsync": "engine: {fsync: sometimes}",
    }[needle]
    assert replace in text
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text.replace(replace, bad, 1))
    res = run_engine("--config", str(cfg), "--data-dir", str(tmp_path / "d"))
    assert res.returncode == 2
    assert "invalid configuration" in res.stderr
    assert needle in res.stderr
    assert not (tmp_path / "d").exists()


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    d = tmp_path / "pki"
    d.mkdir()
    ext = d / "san.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        cwd=d,
    )
    for name in ("server", "client"):
        openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN={'localhost' if name == 'server' else 'backend'}",
            cwd=d,
        )
        openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            cwd=d,
        )
    return d


def test_mutual_tls(tmp_path: Path, pki: Path) -> None:
    engine = EngineProcess(
        tmp_path / "engine",
        extra_args=[
            "--tls-cert",
            str(pki / "server.pem"),
            "--tls-key",
            str(pki / "server.key"),
            "--tls-client-ca",
            str(pki / "ca.pem"),
        ],
    )
    engine.spawn()
    try:
        engine.wait_bound()
        tls = TlsConfig(
            ca_cert=pki / "ca.pem", client_cert=pki / "client.pem", client_key=pki / "client.key"
        )
        with SyncEngineClient(engine.address, tls=tls) as c:
            c.wait_ready(60)
            assert c.submit_order(order_request(1, 1, "AAPL", 1, 1, 1, 19000, 1)).accepted
        # No client certificate: the handshake fails.
        with (
            SyncEngineClient(engine.address, tls=TlsConfig(ca_cert=pki / "ca.pem"), timeout=2) as c,
            pytest.raises(EngineUnavailable),
        ):
            c.health()
        # Plaintext against a TLS port fails too.
        with SyncEngineClient(engine.address, timeout=2) as c, pytest.raises(EngineUnavailable):
            c.health()
    finally:
        engine.kill()


def test_metrics_endpoint(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    engine = EngineProcess(tmp_path / "engine", metrics_port=port)
    engine.start()
    try:
        with SyncEngineClient(engine.address) as c:
            for i in range(20):
                c.submit_order(order_request(i + 1, 1, "AAPL", 1, 1, 1, 18990 + i, 1))
        deadline = time.monotonic() + 10
        body = ""
        while time.monotonic() < deadline:
            body = (
                urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
                .read()
                .decode()
            )
            if "hft_engine_commands_total 20.0" in body:
                break
            time.sleep(0.2)
        assert "hft_engine_commands_total 20.0" in body
        assert 'hft_engine_processing_latency_seconds{quantile="0.99"}' in body
        assert 'hft_engine_journal_latency_seconds{quantile="0.5"}' in body
        assert "hft_engine_live_orders 20.0" in body
    finally:
        engine.kill()


def test_sigterm_drains_snapshots_and_exits_zero(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path / "engine")
    engine.start()
    with SyncEngineClient(engine.address) as c:
        for i in range(10):
            c.submit_order(order_request(i + 1, 1, "AAPL", 1, 1, 1, 18990 + i, 1))
    assert engine.stop() == 0
    snaps = list((tmp_path / "engine" / "snapshots").glob("snapshot-*.snap"))
    assert [p.name for p in snaps] == ["snapshot-00000000000000000010.snap"]
    out = (tmp_path / "engine.engine.out").read_text()
    assert "engine listening on 127.0.0.1:" in out
    with pytest.raises(grpc.RpcError):
        engine.health_status()
