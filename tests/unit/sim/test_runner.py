"""The simulation against an in-memory backend: start-up, pacing inputs, faults, config."""

from __future__ import annotations

import asyncio
import os
import random
import stat
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from hft.sim.agents import SymbolMarket, TokenBucket
from hft.sim.cli import load_sim_config
from hft.sim.client import ApiError, UserSession, derive_password, load_secret
from hft.sim.market import InstrumentSpec
from hft.sim.runner import SimConfig, Simulation, agent_names, per_agent_rates

SECRET = bytes(range(32))


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def small_config(**overrides: Any) -> SimConfig:
    data: dict[str, Any] = {
        "market_makers_per_symbol": 1,
        "noise_traders": 2,
        "momentum_traders": 1,
        "quote": {"requote_seconds": 0.05, "levels": 3},
        "momentum": {"interval_seconds": 0.05},
    }
    data.update(overrides)
    return SimConfig.from_mapping(data)


async def run_sim(backend: Any, seconds: float, **kwargs: Any) -> Simulation:
    sim = Simulation(
        "http://fake",
        kwargs.pop("config", small_config()),
        SECRET,
        seed=kwargs.pop("seed", 1),
        rate=kwargs.pop("rate", 400.0),
        duration=seconds,
        transport=backend.transport(),
        **kwargs,
    )
    assert await sim.run() == 0
    return sim


def test_token_bucket_paces_with_fake_clock() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10.0, burst=2.0, clock=clock)
    assert bucket.try_acquire() == 0.0
    assert bucket.try_acquire() == 0.0
    assert bucket.try_acquire() == pytest.approx(0.1)
    clock.now = 0.05
    assert bucket.try_acquire() == pytest.approx(0.05)
    clock.now = 0.1
    assert bucket.try_acquire() == 0.0
    clock.now = 100.0  # a long pause refills only up to the burst
    assert [bucket.try_acquire() for _ in range(3)][:2] == [0.0, 0.0]


def test_token_bucket_rejects_zero_rate() -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(0.0, 1.0)


def test_symbol_market_path_depends_on_seed_not_on_polling() -> None:
    spec = InstrumentSpec.from_api(
        {"symbol": "X", "tick_size": "0.01", "lot_size": "1", "reference_price": "100"}
    )
    clock_a, clock_b = FakeClock(), FakeClock()
    a = SymbolMarket(
        spec, random.Random("s"), volatility=0.001, reversion=0.0, dt=0.25, clock=clock_a
    )
    b = SymbolMarket(
        spec, random.Random("s"), volatility=0.001, reversion=0.0, dt=0.25, clock=clock_b
    )
    # a is polled often, b once: same seed, same elapsed time -> same fair value.
    for i in range(1, 41):
        clock_a.now = i * 0.1
        a.advance()
    clock_b.now = 4.0
    assert b.advance() == a.advance()
    assert a.steps == 16


def test_agent_names_and_rate_split() -> None:
    cfg = SimConfig.from_mapping(
        {"market_makers_per_symbol": 2, "noise_traders": 3, "momentum_traders": 0}
    )
    names = agent_names(cfg, ["AAPL", "BTC-USD"])
    assert [n for n, _, _ in names] == [
        "sim-mm-AAPL-1",
        "sim-mm-BTC-USD-1",
        "sim-mm-AAPL-2",
        "sim-mm-BTC-USD-2",
        "sim-noise-1",
        "sim-noise-2",
        "sim-noise-3",
    ]
    rates = per_agent_rates(cfg, {"mm": 4, "noise": 3, "momentum": 0}, 90.0)
    # Shares 0.6/0.3 renormalised over the kinds present: 60/30 orders/s.
    assert rates["mm"] == pytest.approx(60.0 / 4)
    assert rates["noise"] == pytest.approx(30.0 / 3)
    assert "momentum" not in rates


@pytest.mark.parametrize(
    "bad",
    [
        {"rate": "fast"},
        {"rate": -1},
        {"noise_traders": 1.5},
        {"quote": {"notional": "NaN"}},
        {"quote": []},
    ],
)
def test_config_rejects_bad_values(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="sim"):
        SimConfig.from_mapping(bad)


def test_shipped_config_parses() -> None:
    path = Path(__file__).resolve().parents[3] / "config" / "default.yaml"
    cfg = load_sim_config(path)
    assert cfg.rate > 0
    assert cfg.market_makers_per_symbol >= 1


def test_secret_is_created_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "sim" / "secret"
    first = load_secret(path)
    assert len(first) == 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_secret(path) == first
    pw = derive_password(first, "sim-noise-1")
    assert pw == derive_password(first, "sim-noise-1")
    assert pw != derive_password(first, "sim-noise-2")
    assert len(pw) == 32


def test_garbled_secret_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("not hex\n")
    with pytest.raises(ValueError, match="not a hex secret"):
        load_secret(path)


async def test_market_is_quoted_at_start_for_every_trading_symbol(backend: Any) -> None:
    sim = await run_sim(backend, 0.6)
    quotes = Counter(
        (o["user"], o["symbol"], o["side"])
        for o in backend.orders.values()
        if o["user"].startswith("sim-mm-")
    )
    for symbol in ("AAPL", "BTC-USD"):
        assert quotes[(f"sim-mm-{symbol}-1", symbol, "buy")] >= 3
        assert quotes[(f"sim-mm-{symbol}-1", symbol, "sell")] >= 3
    assert not any(o["symbol"] == "HALT" for o in backend.orders.values())
    # Everything the agents sent passed validation (tick, lot, min/max, band, price rules).
    assert backend.validation_errors == Counter()
    users = {u for u, _, _ in backend.log}
    assert users == {
        "sim-mm-AAPL-1",
        "sim-mm-BTC-USD-1",
        "sim-noise-1",
        "sim-noise-2",
        "sim-momentum-1",
    }
    assert sim.stats.orders > 20


async def test_market_makers_requote_with_amends(backend: Any) -> None:
    await run_sim(backend, 1.5, config=small_config(volatility_bps_per_minute=2000))
    methods = Counter(
        m for u, m, p in backend.log if u.startswith("sim-mm-") and p.startswith("/orders/")
    )
    assert methods["PATCH"] > 0


async def test_restart_logs_in_as_the_same_users(backend: Any) -> None:
    await run_sim(backend, 0.3)
    registered = dict(backend.users)
    await run_sim(backend, 0.3)
    assert backend.users == registered
    for name, password in registered.items():
        assert password == derive_password(SECRET, name)


async def test_errors_are_survived(backend: Any) -> None:
    backend.fail_rate = 0.3
    backend.expire_tokens_every = 25
    sim = await run_sim(backend, 1.5)
    assert sum(backend.injected.values()) > 10
    assert backend.injected["expired"] > 0
    # Every agent kept trading after the faults.
    late = {u for u, m, p in backend.log[-200:]}
    assert {"sim-noise-1", "sim-noise-2"} <= late
    assert sim.stats.errors["rate_limited"] + sim.stats.errors["engine_unavailable"] > 0


async def test_unknown_symbol_is_reported(backend: Any) -> None:
    sim = Simulation(
        "http://fake",
        small_config(),
        SECRET,
        symbols=["NOPE"],
        duration=0.5,
        transport=backend.transport(),
    )
    assert await sim.run() == 1


async def test_symbols_filter(backend: Any) -> None:
    await run_sim(backend, 0.4, symbols=["BTC-USD"])
    assert {o["symbol"] for o in backend.orders.values()} == {"BTC-USD"}


async def test_session_relogs_in_once_on_401(backend: Any) -> None:
    async with httpx.AsyncClient(base_url="http://fake", transport=backend.transport()) as http:
        session = UserSession(http, "alice", "pw-123456")
        await session.ensure_user()
        backend.tokens.clear()
        assert await session.call("GET", "/positions") == [{"symbol": "AAPL", "quantity": "3"}]
        with pytest.raises(ApiError) as info:
            await session.call("GET", "/nowhere")
        assert info.value.status == 404
        assert info.value.code == "not_found"
        assert not info.value.transient


async def test_wrong_password_for_existing_user_is_explained(backend: Any) -> None:
    backend.users["bob"] = "something-else"
    async with httpx.AsyncClient(base_url="http://fake", transport=backend.transport()) as http:
        with pytest.raises(ApiError) as info:
            await UserSession(http, "bob", "pw-123456").ensure_user()
    assert info.value.code == "credentials_mismatch"


async def test_unreachable_backend_ends_cleanly_when_stopped() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    sim = Simulation(
        "http://fake", small_config(), SECRET, duration=0.5, transport=httpx.MockTransport(refuse)
    )
    task = asyncio.create_task(sim.run())
    await asyncio.sleep(0.3)
    sim.stop.set()
    assert await asyncio.wait_for(task, 5) == 0


async def test_new_users_register_first_and_old_ones_log_in_first(backend: Any) -> None:
    sim = await run_sim(backend, 0.3, new_users=True)
    assert sim.agents
    # A fresh secret: one registration and one login per user, no wasted login attempt.
    assert backend.auth_calls == 2 * len(sim.agents)
    backend.auth_calls = 0
    again = await run_sim(backend, 0.3)
    assert backend.auth_calls == len(again.agents)
