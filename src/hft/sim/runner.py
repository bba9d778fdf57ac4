"""The simulation as a whole: configuration, agents per symbol, pacing, status lines."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import random
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

from hft.sim.agents import (
    Agent,
    MarketMaker,
    MomentumTrader,
    NoiseTrader,
    SimStats,
    SymbolMarket,
    TokenBucket,
)
from hft.sim.client import API_PREFIX, ApiError, UserSession, derive_password, wait_for_backend
from hft.sim.market import InstrumentSpec, MomentumParams, NoiseParams, QuoteParams

log = logging.getLogger("hft.sim")


def _section(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"sim.{key}: expected a mapping")
    return value


def _number(data: Mapping[str, Any], key: str, default: float, *, minimum: float = 0.0) -> float:
    raw = data.get(key, default)
    try:
        value = float(raw)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"sim: {key} must be a number, got {raw!r}") from exc
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"sim: {key} must be a finite number >= {minimum}, got {raw!r}")
    return value


def _count(data: Mapping[str, Any], key: str, default: int) -> int:
    value = _number(data, key, default)
    if value != int(value):
        raise ValueError(f"sim: {key} must be a whole number")
    return int(value)


def _money(data: Mapping[str, Any], key: str, default: str) -> Decimal:
    raw = data.get(key, default)
    try:
        value = Decimal(str(raw))
    except ArithmeticError as exc:
        raise ValueError(f"sim: {key} must be a decimal, got {raw!r}") from exc
    if not value.is_finite() or value <= 0:
        raise ValueError(f"sim: {key} must be positive, got {raw!r}")
    return value


@dataclass(frozen=True)
class SimConfig:
    """The `sim:` section of the platform config; money in the quote currency."""

    rate: float = 40.0
    market_makers_per_symbol: int = 2
    noise_traders: int = 4
    momentum_traders: int = 2
    volatility_bps_per_minute: float = 15.0
    reversion_half_life_minutes: float = 60.0
    share: Mapping[str, float] = field(
        default_factory=lambda: {"mm": 0.6, "noise": 0.3, "momentum": 0.1}
    )
    quote: QuoteParams = field(default_factory=QuoteParams)
    quote_notional: Decimal = Decimal(5000)
    max_inventory_notional: Decimal = Decimal(100000)
    requote_seconds: float = 0.5
    noise: NoiseParams = field(default_factory=NoiseParams)
    noise_notional: Decimal = Decimal(3000)
    noise_max_position_notional: Decimal = Decimal(50000)
    noise_order_lifetime_seconds: float = 30.0
    noise_max_open_orders: int = 10
    momentum: MomentumParams = field(default_factory=MomentumParams)
    momentum_notional: Decimal = Decimal(5000)
    momentum_max_position_notional: Decimal = Decimal(40000)
    momentum_interval_seconds: float = 2.0

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> SimConfig:
        """Parse the `sim:` mapping; missing keys keep their defaults; ValueError on bad values."""
        data = data or {}
        base = cls()
        quote = _section(data, "quote")
        noise = _section(data, "noise")
        momentum = _section(data, "momentum")
        share_in = _section(data, "share")
        share = {k: _number(share_in, k, base.share[k]) for k in ("mm", "noise", "momentum")}
        if sum(share.values()) <= 0:
            raise ValueError("sim.share: at least one share must be positive")
        return cls(
            rate=_number(data, "rate", base.rate, minimum=0.1),
            market_makers_per_symbol=_count(
                data, "market_makers_per_symbol", base.market_makers_per_symbol
            ),
            noise_traders=_count(data, "noise_traders", base.noise_traders),
            momentum_traders=_count(data, "momentum_traders", base.momentum_traders),
            volatility_bps_per_minute=_number(
                data, "volatility_bps_per_minute", base.volatility_bps_per_minute
            ),
            reversion_half_life_minutes=_number(
                data, "reversion_half_life_minutes", base.reversion_half_life_minutes
            ),
            share=share,
            quote=QuoteParams(
                half_spread_bps=_number(quote, "half_spread_bps", base.quote.half_spread_bps),
                levels=max(1, _count(quote, "levels", base.quote.levels)),
                level_step_bps=_number(quote, "level_step_bps", base.quote.level_step_bps),
                skew_bps=_number(quote, "skew_bps", base.quote.skew_bps),
            ),
            quote_notional=_money(quote, "notional", str(base.quote_notional)),
            max_inventory_notional=_money(
                quote, "max_inventory_notional", str(base.max_inventory_notional)
            ),
            requote_seconds=_number(quote, "requote_seconds", base.requote_seconds, minimum=0.05),
            noise=NoiseParams(
                market_probability=_number(
                    noise, "market_probability", base.noise.market_probability
                ),
                ioc_probability=_number(noise, "ioc_probability", base.noise.ioc_probability),
                max_offset_bps=_number(noise, "max_offset_bps", base.noise.max_offset_bps),
                cross_probability=_number(noise, "cross_probability", base.noise.cross_probability),
            ),
            noise_notional=_money(noise, "notional", str(base.noise_notional)),
            noise_max_position_notional=_money(
                noise, "max_position_notional", str(base.noise_max_position_notional)
            ),
            noise_order_lifetime_seconds=_number(
                noise, "order_lifetime_seconds", base.noise_order_lifetime_seconds, minimum=0.1
            ),
            noise_max_open_orders=_count(noise, "max_open_orders", base.noise_max_open_orders),
            momentum=MomentumParams(
                short_window=max(1, _count(momentum, "short_window", base.momentum.short_window)),
                long_window=max(2, _count(momentum, "long_window", base.momentum.long_window)),
                threshold_bps=_number(momentum, "threshold_bps", base.momentum.threshold_bps),
            ),
            momentum_notional=_money(momentum, "notional", str(base.momentum_notional)),
            momentum_max_position_notional=_money(
                momentum, "max_position_notional", str(base.momentum_max_position_notional)
            ),
            momentum_interval_seconds=_number(
                momentum, "interval_seconds", base.momentum_interval_seconds, minimum=0.05
            ),
        )

    @property
    def volatility_per_sqrt_second(self) -> float:
        return self.volatility_bps_per_minute / 1e4 / math.sqrt(60.0)

    @property
    def reversion_per_second(self) -> float:
        if self.reversion_half_life_minutes <= 0:
            return 0.0
        return math.log(2.0) / (self.reversion_half_life_minutes * 60.0)


def agent_names(config: SimConfig, symbols: Sequence[str]) -> list[tuple[str, str, str | None]]:
    """(username, kind, symbol) of every simulated trader, in a stable order."""
    names: list[tuple[str, str, str | None]] = []
    # One maker per symbol first: logins are queued in this order, so every book gets
    # quotes before any symbol gets its second maker.
    for i in range(1, config.market_makers_per_symbol + 1):
        for symbol in symbols:
            names.append((f"sim-mm-{symbol}-{i}", "mm", symbol))
    names += [(f"sim-noise-{i}", "noise", None) for i in range(1, config.noise_traders + 1)]
    names += [
        (f"sim-momentum-{i}", "momentum", None) for i in range(1, config.momentum_traders + 1)
    ]
    return names


def per_agent_rates(config: SimConfig, counts: Mapping[str, int], rate: float) -> dict[str, float]:
    """Orders/s for one agent of each kind: the total split by share over kinds present."""
    present = {k: config.share.get(k, 0.0) for k, n in counts.items() if n > 0}
    total = sum(present.values())
    if total <= 0:
        present = {k: 1.0 for k, n in counts.items() if n > 0}
        total = float(len(present)) or 1.0
    return {k: rate * s / total / counts[k] for k, s in present.items()}


class Simulation:
    """Runs every agent against the backend at `api_url` until `stop` is set or time is up."""

    def __init__(
        self,
        api_url: str,
        config: SimConfig,
        secret: bytes,
        *,
        seed: int | None = None,
        rate: float | None = None,
        symbols: Sequence[str] | None = None,
        duration: float | None = None,
        status_interval: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        new_users: bool = False,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.config = config
        self.secret = secret
        self.seed = seed if seed is not None else secrets.randbits(63)
        self.rate = rate if rate is not None else config.rate
        if not math.isfinite(self.rate) or self.rate <= 0:
            raise ValueError("rate must be a positive number of orders per second")
        self.symbols = [s.strip() for s in symbols or () if s.strip()]
        self.duration = duration
        self.status_interval = status_interval
        self.transport = transport
        self.new_users = new_users
        self.stop = asyncio.Event()
        self.stats = SimStats()
        self.agents: list[Agent] = []
        self.markets: dict[str, SymbolMarket] = {}

    def rng(self, name: str) -> random.Random:
        """The RNG of one agent or symbol: a function of the seed and the name only."""
        return random.Random(f"{self.seed}:{name}")

    async def instruments(self, http: httpx.AsyncClient) -> list[InstrumentSpec]:
        """GET /instruments (logging in as a simulated user if the backend requires it)."""
        while not self.stop.is_set():
            try:
                resp = await http.get(API_PREFIX + "/instruments")
                if resp.status_code == 401:
                    session = self.session(http, "sim-noise-1")
                    rows = await session.call("GET", "/instruments")
                else:
                    resp.raise_for_status()
                    rows = resp.json()
                return [InstrumentSpec.from_api(r) for r in rows]
            except (httpx.HTTPError, ApiError) as exc:
                log.warning("cannot load instruments yet: %s", exc)
                await asyncio.sleep(1.0)
        return []

    def session(self, http: httpx.AsyncClient, username: str) -> UserSession:
        session = UserSession(http, username, derive_password(self.secret, username))
        session.register_first = self.new_users
        return session

    def build(self, http: httpx.AsyncClient, specs: Sequence[InstrumentSpec]) -> None:
        """Create the markets and agents for `specs` (filtered by --symbols)."""
        cfg = self.config
        by_symbol = {s.symbol: s for s in specs}
        if self.symbols:
            unknown = [s for s in self.symbols if s not in by_symbol]
            if unknown:
                raise ValueError(
                    f"unknown symbols: {', '.join(unknown)} (known: {', '.join(sorted(by_symbol))})"
                )
            chosen = [by_symbol[s] for s in self.symbols]
        else:
            chosen = list(specs)
        trading = [s for s in chosen if s.status == "trading"]
        for s in chosen:
            if s.status != "trading":
                log.info("%s is %s: not simulated", s.symbol, s.status)
        if not trading:
            raise ValueError("no trading instruments to simulate")
        for spec in trading:
            self.markets[spec.symbol] = SymbolMarket(
                spec,
                self.rng(f"fair:{spec.symbol}"),
                volatility=cfg.volatility_per_sqrt_second,
                reversion=cfg.reversion_per_second,
            )
        names = agent_names(cfg, list(self.markets))
        counts = {
            k: sum(1 for _, kind, _ in names if kind == k) for k in ("mm", "noise", "momentum")
        }
        rates = per_agent_rates(cfg, counts, self.rate)
        noise_params: dict[str, NoiseParams] = {}
        momentum_params: dict[str, MomentumParams] = {}
        for symbol, market in self.markets.items():
            spec, anchor = market.spec, int(market.fair.ticks)
            noise_params[symbol] = dataclasses.replace(
                cfg.noise,
                size_lots=spec.lots_for_notional(cfg.noise_notional, anchor),
                max_position_lots=spec.lots_for_notional(cfg.noise_max_position_notional, anchor),
            )
            momentum_params[symbol] = dataclasses.replace(
                cfg.momentum,
                size_lots=spec.lots_for_notional(cfg.momentum_notional, anchor),
                max_position_lots=spec.lots_for_notional(
                    cfg.momentum_max_position_notional, anchor
                ),
            )
        # Agents queue for login in list order, market makers first: quotes appear soonest.
        gate = asyncio.Semaphore(3)
        for username, kind, mm_symbol in names:
            session = self.session(http, username)
            rng = self.rng(username)
            limiter = TokenBucket(rates[kind], burst=max(2.0, 2 * cfg.quote.levels + 2))
            agent: Agent
            if kind == "mm" and mm_symbol is not None:
                market = self.markets[mm_symbol]
                anchor = int(market.fair.ticks)
                params = dataclasses.replace(
                    cfg.quote,
                    size_lots=market.spec.lots_for_notional(cfg.quote_notional, anchor),
                    max_inventory_lots=market.spec.lots_for_notional(
                        cfg.max_inventory_notional, anchor
                    ),
                )
                agent = MarketMaker(
                    username,
                    session,
                    rng,
                    limiter,
                    self.stats,
                    self.stop,
                    market,
                    params,
                    requote_interval=cfg.requote_seconds,
                )
            elif kind == "noise":
                agent = NoiseTrader(
                    username,
                    session,
                    rng,
                    limiter,
                    self.stats,
                    self.stop,
                    self.markets,
                    noise_params,
                    order_lifetime=cfg.noise_order_lifetime_seconds,
                    max_open=cfg.noise_max_open_orders,
                )
            else:
                agent = MomentumTrader(
                    username,
                    session,
                    rng,
                    limiter,
                    self.stats,
                    self.stop,
                    self.markets,
                    momentum_params,
                    interval=cfg.momentum_interval_seconds,
                )
            agent.login_gate = gate
            self.agents.append(agent)

    async def run(self) -> int:
        """Run until stopped or `duration` has passed; 0 on a normal end, 1 if nothing could run."""
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(
            base_url=self.api_url, timeout=15.0, limits=limits, transport=self.transport
        ) as http:
            log.info("waiting for the backend at %s", self.api_url)
            if not await wait_for_backend(http, self.stop):
                return 0
            specs = await self.instruments(http)
            if self.stop.is_set():
                return 0
            try:
                self.build(http, specs)
            except ValueError as exc:
                log.error("cannot start the simulation: %s", exc)
                return 1
            log.info(
                "simulating %s with %d traders at %.0f orders/s (seed %d)",
                ", ".join(self.markets),
                len(self.agents),
                self.rate,
                self.seed,
            )
            started = time.monotonic()
            tasks = [asyncio.create_task(a.run(), name=a.name) for a in self.agents]
            reporter = asyncio.create_task(self._report(started))
            try:
                if self.duration is not None:
                    try:
                        await asyncio.wait_for(self.stop.wait(), self.duration)
                    except TimeoutError:
                        self.stop.set()
                else:
                    await self.stop.wait()
            finally:
                self.stop.set()
                # Agents notice `stop` between requests; in-flight requests get a moment.
                _, pending = await asyncio.wait(tasks, timeout=5.0)
                for task in [*pending, reporter]:
                    task.cancel()
                await asyncio.gather(*pending, reporter, return_exceptions=True)
            log.info(
                "simulation stopped after %.0f s: %s",
                time.monotonic() - started,
                self.stats.summary(),
            )
        return 0

    async def _report(self, started: float) -> None:
        last_at, last_sent = started, 0
        while not self.stop.is_set():
            await asyncio.sleep(self.status_interval)
            now = time.monotonic()
            sent = self.stats.orders + self.stats.amends + self.stats.cancels
            rate = (sent - last_sent) / max(1e-9, now - last_at)
            last_at, last_sent = now, sent
            log.info(
                "%.0f s: %.1f orders/s (target %.0f); %s",
                now - started, rate, self.rate, self.stats.summary(),
            )  # fmt: skip
