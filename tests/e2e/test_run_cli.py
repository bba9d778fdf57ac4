"""`hft run` as a user runs it: one command, a live market, Ctrl-C, and the same market
after the next start."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from hft_e2e_support import REPO, Database, child_env, eventually, free_port, write_config

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]


class RunProcess:
    """`hft run` in its own session, its output collected in a file."""

    def __init__(self, tmp: Path, args: list[str], env: dict[str, str]) -> None:
        self.log = tmp / f"run-{time.monotonic_ns()}.log"
        self.out = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hft.cli", "run", *args],
            stdout=self.out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=REPO,
            start_new_session=True,
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, seconds: float = 120) -> re.Match[str]:
        def found() -> re.Match[str] | None:
            assert self.proc.poll() is None, (
                f"hft run exited with {self.proc.returncode}:\n{self.text()}"
            )
            return re.search(pattern, self.text())

        match: re.Match[str] = eventually(found, seconds=seconds, interval=0.2)
        return match

    def interrupt(self) -> int:
        """What Ctrl-C does: SIGINT to hft run (the children are in their own groups)."""
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(120)
        finally:
            self.out.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.out.close()


@pytest.fixture
def run_env(db_kind: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    db = Database(db_kind, tmp_path / "data") if db_kind == "postgres" else None
    env = child_env()
    if db is not None:
        env["HFT_DATABASE_URL"] = db.url
    yield {"env": env, "db": db}
    if db is not None:
        db.drop()


def test_one_command_live_market_ctrl_c_and_resume(tmp_path: Path, run_env: dict[str, Any]) -> None:
    api_port, engine_port = free_port(), free_port()
    data = tmp_path / "data"
    # The shipped config with cheap password hashing (see write_config): the simulation
    # registers a dozen users at start and this machine has two cores.
    config = write_config(tmp_path / "config.yaml")
    args = [
        "--data-dir", str(data), "--api-port", str(api_port), "--engine-port", str(engine_port),
        "--metrics-port", "0", "--sim-rate", "30", "--seed", "7", "--config", str(config),
    ]  # fmt: skip
    url = f"http://127.0.0.1:{api_port}"
    first = RunProcess(tmp_path, args, run_env["env"])
    try:
        login = first.wait_for(r"Log in as\s+demo / (\S+)")
        password = login.group(1)
        text = first.text()
        assert f"{url}/docs" in text
        assert f"127.0.0.1:{engine_port}" in text
        assert password not in (data / "demo-user.json").read_text()
        with httpx.Client(base_url=url, timeout=30) as http:
            token = http.post("/api/v1/auth/token", data={"username": "demo", "password": password})
            assert token.status_code == 200, token.text
            auth = {"Authorization": f"Bearer {token.json()['access_token']}"}

            # The simulation makes the market look alive within seconds: both sides quoted
            # on every symbol, then trades.
            def quoted() -> bool:
                for symbol in ("AAPL", "MSFT", "NVDA", "TSLA", "SPY", "BTC-USD"):
                    book = http.get(f"/api/v1/markets/{symbol}/book", headers=auth).json()
                    assert book["bids"], (symbol, book)
                    assert book["asks"], (symbol, book)
                return True

            eventually(quoted, seconds=45, interval=0.5)
            eventually(
                lambda: http.get("/api/v1/markets/AAPL/trades", headers=auth).json(), seconds=60
            )
            # The demo user trades too.
            ask = http.get("/api/v1/markets/AAPL/book", headers=auth).json()["asks"][0][0]
            order = http.post(
                "/api/v1/orders",
                headers=auth,
                json={
                    "symbol": "AAPL",
                    "side": "sell",
                    "type": "limit",
                    "quantity": "1",
                    "price": str((Decimal(ask) * Decimal("1.05")).quantize(Decimal("0.01"))),
                },
            )
            assert order.status_code == 201, order.text
            order_id = order.json()["id"]
        assert first.interrupt() == 0
    finally:
        first.kill()
    text = first.text()
    assert "stopping the sim" in text
    assert (
        text.index("stopping the sim")
        < text.index("stopping the api")
        < text.index("stopping the engine")
    )
    assert text.rstrip().endswith("stopped.")

    second = RunProcess(tmp_path, [*args, "--no-sim"], run_env["env"])
    try:
        second.wait_for(r"Press Ctrl-C")
        assert password not in second.text()
        assert "password printed when it was created" in second.text()
        with httpx.Client(base_url=url, timeout=30) as http:
            token = http.post("/api/v1/auth/token", data={"username": "demo", "password": password})
            assert token.status_code == 200, token.text
            auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
            same = http.get(f"/api/v1/orders/{order_id}", headers=auth).json()
            assert same["status"] == "new"
            trades = http.get("/api/v1/markets/AAPL/trades", headers=auth).json()
            assert trades
        assert second.interrupt() == 0
    finally:
        second.kill()


def test_port_in_use_is_reported(tmp_path: Path, run_env: dict[str, Any]) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable, "-m", "hft.cli", "run", "--data-dir", str(tmp_path / "d"),
                "--api-port", str(port), "--engine-port", str(free_port()), "--metrics-port", "0",
            ],
            capture_output=True, text=True, env=run_env["env"], cwd=REPO, timeout=120, check=False,
        )  # fmt: skip
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 (backend) is already in use" in result.stdout
