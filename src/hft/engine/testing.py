"""Run `hft engine` as a real subprocess for tests and benchmarks.

    with EngineProcess(tmp_path / "engine") as eng:
        client = EngineClient(eng.address)

The process listens on a free port (the engine binds port 0 and logs the port), uses
its own data directory, and is killed at exit. `kill()` is a kill -9; `stop()` sends
SIGTERM and waits for the clean shutdown (drain, snapshot, exit 0).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hft.engine.client import order_request, pb

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_CONFIG = REPO_ROOT / "config" / "default.yaml"


def default_core() -> str:
    """ "native" when the C++ extension is importable, else "reference"."""
    from hft.engine import core_available

    return "native" if core_available() else "reference"


def _installed() -> bool:
    """True when the hft distribution is installed (then the child finds it by itself,
    including the built extension)."""
    import importlib.metadata

    try:
        importlib.metadata.distribution("hft")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


class EngineProcess:
    """An engine subprocess on 127.0.0.1 with a free port and its own data directory."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        config: str | os.PathLike[str] | None = None,
        fsync: str | None = None,
        core: str | None = None,
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        metrics_port: int = 0,
        port: int = 0,
    ) -> None:
        """`port` 0 lets every start pick a free port; a fixed port is kept across
        restarts, so a client keeps its address."""
        self.data_dir = Path(data_dir)
        self.config = Path(config) if config is not None else DEFAULT_CONFIG
        self.fsync = fsync
        self.core = core or default_core()
        self.extra_args = list(extra_args)
        self.env = env or {}
        self.metrics_port = metrics_port
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = port
        self.fixed_port = port
        self._bound = False
        self._log_offset = 0
        self.starts = 0
        self._log_path = self.data_dir.parent / f"{self.data_dir.name}.engine.log"
        self._out_path = self.data_dir.parent / f"{self.data_dir.name}.engine.out"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "hft.cli",
            "engine",
            "--config",
            str(self.config),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.fixed_port),
            "--data-dir",
            str(self.data_dir),
            "--metrics-port",
            str(self.metrics_port),
            "--core",
            self.core,
        ]
        if self.fsync:
            cmd += ["--fsync", self.fsync]
        return cmd + self.extra_args

    def spawn(self) -> None:
        """Start the process without waiting for it to serve."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("engine already running")
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("HFT_")}
        env.update(self.env)
        if not _installed():
            src = str(REPO_ROOT / "src")
            env["PYTHONPATH"] = src + (
                os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
            )
        self._log_offset = self._log_path.stat().st_size if self._log_path.exists() else 0
        log = open(self._log_path, "ab")  # noqa: SIM115 - handed to the child
        out = open(self._out_path, "ab")  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                self.command(), stdout=out, stderr=log, env=env, start_new_session=True
            )
        finally:
            log.close()
            out.close()
        self.starts += 1
        self._bound = False

    def log_text(self, all_runs: bool = False) -> str:
        """The engine's stderr (JSON log lines and start-up errors) of the last run."""
        if not self._log_path.exists():
            return ""
        data = self._log_path.read_bytes()
        return (
            data.decode(errors="replace")
            if all_runs
            else data[self._log_offset :].decode(errors="replace")
        )

    def wait_bound(self, timeout: float = 30.0) -> int:
        """Wait for the gRPC port (bound before recovery); returns it."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log_text().splitlines():
                if '"grpc bound"' in line:
                    with contextlib.suppress(ValueError):
                        self.port = int(json.loads(line)["port"])
                        self._bound = True
                        return self.port
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"engine exited with {self.proc.returncode} before binding:\n{self.log_text()}"
                )
            time.sleep(0.02)
        raise TimeoutError(f"engine did not bind within {timeout}s:\n{self.log_text()}")

    def health_status(self) -> int:
        """grpc.health.v1 status of the whole server (health_pb2.HealthCheckResponse.*)."""
        with grpc.insecure_channel(self.address) as ch:
            resp = health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=2.0
            )
            return int(resp.status)

    def wait_serving(self, timeout: float = 60.0) -> None:
        """Wait until the health service reports SERVING."""
        assert self.proc is not None
        if not self._bound:
            self.wait_bound(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"engine exited with {self.proc.returncode}:\n{self.log_text()}")
            with contextlib.suppress(grpc.RpcError):
                if self.health_status() == health_pb2.HealthCheckResponse.SERVING:
                    return
            time.sleep(0.02)
        raise TimeoutError(f"engine not serving within {timeout}s:\n{self.log_text()}")

    def start(self, timeout: float = 60.0) -> EngineProcess:
        """Spawn and wait for SERVING."""
        self.spawn()
        self.wait_serving(timeout)
        return self

    def wait_exit(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """kill -9 (the whole process group)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait; kills after `timeout`. Returns the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return int(self.proc.returncode)

    def __enter__(self) -> EngineProcess:
        if self.proc is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()


# ---------------------------------------------------------------------- order flow


@functools.cache
def default_config() -> Any:
    from hft.engine.config import load_config

    return load_config(DEFAULT_CONFIG)


def reference_engine(config: Any = None) -> Any:
    """A ReferenceEngine with the instruments of `config` (default: config/default.yaml)."""
    from hft.engine import ReferenceEngine

    cfg = config or default_config()
    ref = ReferenceEngine(cfg.engine.max_orders, cfg.engine.default_max_open_orders)
    for spec in cfg.instruments:
        ref.add_instrument(spec.to_core())
    return ref


def _specs() -> dict[str, Any]:
    return {s.symbol: s for s in default_config().instruments}


@dataclass
class Cmd:
    """A command the test sent: kind "submit" or "cancel" and its request."""

    kind: str
    req: pb.OrderRequest | pb.CancelOrderRequest


class OrderFlow:
    """Seeded random orders around each symbol's reference price, with cancels."""

    def __init__(
        self, seed: int, symbols: tuple[str, ...] = ("AAPL", "BTC-USD"), first_id: int = 1
    ) -> None:
        self.rng = random.Random(seed)
        self.symbols = symbols
        self.next_id = first_id
        self.live: list[tuple[int, int]] = []

    def next(self) -> Cmd:
        r = self.rng
        if self.live and r.random() < 0.2:
            oid, acc = self.live.pop(r.randrange(len(self.live)))
            return Cmd("cancel", pb.CancelOrderRequest(order_id=oid, account_id=acc))
        sym = r.choice(self.symbols)
        ref = _specs()[sym].reference_price
        oid = self.next_id
        self.next_id += 1
        acc = r.randint(1, 6)
        side = r.choice((1, 2))
        kind = r.random()
        if kind < 0.08:
            otype, tif, price = 2, 3, 0
        else:
            otype = 1
            tif = r.choice((1, 1, 1, 2, 3, 4))
            off = r.randint(-20, 20)
            price = ref + (off if side == 1 else -off) - (5 if side == 1 else -5)
        qty = r.randint(1, 20)
        if otype == 1 and tif in (1, 2):
            self.live.append((oid, acc))
        return Cmd(
            "submit",
            order_request(oid, acc, sym, side, otype, tif, price, qty, stp_mode=r.randint(0, 3)),
        )


def apply_to_reference(ref: Any, cmd: Cmd, ts: int) -> list[Any]:
    """Feed one command to the reference book; returns its events."""
    if isinstance(cmd.req, pb.CancelOrderRequest):
        return list(ref.cancel(cmd.req.order_id, cmd.req.account_id, ts=ts))
    q = cmd.req
    specs = _specs()
    sid = specs[q.symbol].symbol_id if q.symbol in specs else 0
    events = ref.submit(
        q.order_id,
        q.account_id,
        sid,
        q.side,
        q.type,
        q.time_in_force,
        q.price,
        q.quantity,
        post_only=q.post_only,
        stp=q.stp_mode,
        ts=ts,
    )
    return list(events)
