"""Simulated traders: market makers, noise traders and momentum traders.

Each agent is an ordinary user of the backend: it registers, logs in and trades through
the REST API. Decisions come from the pure functions in `hft.sim.market` fed with the
agent's own `random.Random`, so a given seed gives the same stream of decisions; what the
market does with them depends on timing, which is not reproducible. API errors never end
an agent: it backs off (429/503/unreachable) or logs the rejection once and goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Generic, TypeVar

from hft.sim.client import ApiError, UserSession
from hft.sim.market import (
    Amend,
    Cancel,
    FairValue,
    InstrumentSpec,
    LiveQuote,
    MomentumParams,
    NoiseParams,
    OrderIntent,
    Place,
    Quote,
    QuoteParams,
    Side,
    compute_quotes,
    momentum_order,
    momentum_signal,
    noise_order,
    plan_requote,
)

log = logging.getLogger("hft.sim")

OPEN_STATUSES = frozenset({"pending_new", "new", "partially_filled"})
P = TypeVar("P")  # per-symbol parameters of a MultiSymbolAgent


class TokenBucket:
    """Allows `rate` acquisitions per second on average, with bursts up to `burst`."""

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = max(1.0, burst)
        self.tokens = self.burst
        self.clock = clock
        self.stamp = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def try_acquire(self) -> float:
        """Take one token if there is one and return 0; else the seconds until one is due."""
        self._refill()
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate

    async def acquire(self) -> None:
        """Wait until a token is available and take it."""
        wait = self.try_acquire()
        while wait > 0:
            # Pacing, not waiting for a condition: the next token is due at a known time.
            await asyncio.sleep(wait)
            wait = self.try_acquire()


@dataclass
class SimStats:
    """Counters shared by all agents, printed periodically by the runner."""

    requests: int = 0
    orders: int = 0
    amends: int = 0
    cancels: int = 0
    fills: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        errs = ", ".join(f"{k}={v}" for k, v in self.errors.most_common(6))
        return (
            f"orders={self.orders} amends={self.amends} cancels={self.cancels} "
            f"taker_fills={self.fills}" + (f" errors: {errs}" if errs else "")
        )


class SymbolMarket:
    """What the simulation believes about one symbol: its spec and a drifting fair value.

    The fair value advances in fixed steps of `dt` seconds, as many as wall-clock time
    allows, each with one draw from the symbol's own RNG: the path is a function of the
    seed; only how far along it the market is at a given moment depends on timing.
    """

    def __init__(
        self,
        spec: InstrumentSpec,
        rng: random.Random,
        *,
        volatility: float,
        reversion: float,
        dt: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.rng = rng
        anchor = float(spec.to_ticks(spec.anchor_price)) if spec.anchor_price > 0 else 100.0
        self.fair = FairValue(anchor, anchor, volatility, reversion)
        self.dt = dt
        self.clock = clock
        self.start = clock()
        self.steps = 0
        self.last_trade_ticks = int(anchor)

    def advance(self) -> float:
        """Step the fair value up to now; returns it in ticks."""
        due = int((self.clock() - self.start) / self.dt)
        # After a long stall (suspended laptop) do not replay hours of steps at once.
        if due - self.steps > 10_000:
            self.steps = due - 10_000
        while self.steps < due:
            self.fair.step(self.rng, self.dt)
            self.steps += 1
        return self.fair.ticks

    def band(self) -> tuple[int, int]:
        """Prices (ticks) safely inside the engine's band around the last known trade."""
        return self.spec.band_ticks(self.last_trade_ticks)

    def observe_trade(self, price: Decimal) -> None:
        """Remember a trade price (the engine's band follows the last trade)."""
        self.last_trade_ticks = self.spec.to_ticks(price)


class Agent:
    """Common machinery: login with retries, guarded requests, back-off, error logging."""

    kind = "agent"
    # Concurrent step loops: a trader with one request in flight at a time cannot keep
    # its share of the rate when the backend answers slowly.
    lanes = 1

    def __init__(
        self,
        name: str,
        session: UserSession,
        rng: random.Random,
        limiter: TokenBucket,
        stats: SimStats,
        stop: asyncio.Event,
    ) -> None:
        self.name = name
        self.session = session
        self.rng = rng
        self.limiter = limiter
        self.stats = stats
        self.stop = stop
        self.failures = 0
        self.logged: set[str] = set()
        self.positions: dict[str, int] = {}
        self.positions_at = -math.inf
        # Shared by all agents: logins are expensive (argon2) and rate-limited per IP.
        self.login_gate: asyncio.Semaphore | None = None

    async def sleep(self, seconds: float) -> None:
        """Sleep unless the simulation is stopping."""
        if seconds <= 0 or self.stop.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    def note_error(self, err: ApiError, what: str) -> None:
        """Count an error; log the first of each (kind of request, code) per agent."""
        self.stats.errors[err.code] += 1
        key = f"{what}:{err.code}"
        if key not in self.logged:
            self.logged.add(key)
            log.warning(
                "%s: %s failed: %s (further %s errors are counted, not logged)",
                self.name,
                what,
                err,
                err.code,
            )

    async def guarded(self, what: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run one request; on ApiError log/back off and return None instead of raising."""
        self.stats.requests += 1
        try:
            result = await call()
        except ApiError as err:
            self.note_error(err, what)
            if err.transient:
                self.failures += 1
                backoff = min(30.0, 0.5 * 2 ** min(self.failures, 6))
                await self.sleep(
                    max(err.retry_after or 0.0, backoff * (0.5 + self.rng.random() / 2))
                )
            return None
        self.failures = 0
        return result

    async def login(self) -> bool:
        """Register/log in, retrying transient failures until it works or the sim stops."""
        while not self.stop.is_set():
            try:
                if self.login_gate is None:
                    await self.session.ensure_user()
                else:
                    async with self.login_gate:
                        await self.session.ensure_user()
                return True
            except ApiError as err:
                self.note_error(err, "login")
                if not err.transient:
                    log.error("%s: cannot log in as %s: %s", self.name, self.session.username, err)
                    return False
                self.failures += 1
                await self.sleep(min(30.0, err.retry_after or 0.5 * 2 ** min(self.failures, 6)))
        return False

    async def refresh_positions(self, max_age: float) -> None:
        """Reload GET /positions (lots per symbol) when older than `max_age` seconds."""
        now = time.monotonic()
        if now - self.positions_at < max_age:
            return
        self.positions_at = now
        rows = await self.guarded("positions", lambda: self.session.call("GET", "/positions"))
        if isinstance(rows, list):
            self.positions = {}
            for row in rows:
                spec = self.spec_for(str(row.get("symbol", "")))
                if spec is not None:
                    self.positions[spec.symbol] = spec.to_lots(
                        Decimal(str(row.get("quantity", "0")))
                    )

    def spec_for(self, symbol: str) -> InstrumentSpec | None:
        return None

    async def cancel_leftovers(self, symbol: str | None) -> None:
        """Cancel open orders left by an earlier run (on `symbol`, or all).

        Looks first and cancels only when there is something: a cancel-all is an engine
        command, journaled like any other, and most starts have nothing to cancel.
        """
        params: dict[str, Any] = {"status": "open", "limit": 1}
        if symbol is not None:
            params["symbol"] = symbol
        rows = await self.guarded(
            "open_orders", lambda: self.session.call("GET", "/orders", params=params)
        )
        if not rows:
            return
        cancel_params = {"symbol": symbol} if symbol is not None else None
        await self.guarded(
            "cancel_all", lambda: self.session.call("DELETE", "/orders", params=cancel_params)
        )

    async def place(self, intent: OrderIntent, spec: InstrumentSpec) -> dict[str, Any] | None:
        """POST /orders after taking a token; returns the order or None on error."""
        await self.limiter.acquire()
        order = await self.guarded(
            "order", lambda: self.session.call("POST", "/orders", json=intent.to_request(spec))
        )
        if isinstance(order, dict):
            self.stats.orders += 1
            self.count_fills(order)
            return order
        return None

    def count_fills(self, order: dict[str, Any]) -> None:
        for fill in order.get("fills") or ():
            if fill.get("liquidity") == "taker":
                self.stats.fills += 1

    async def run(self) -> None:
        """Log in, then step until the simulation stops; never raises on API errors."""
        if not await self.login():
            return
        try:
            await self.start()
            await asyncio.gather(*(self._loop() for _ in range(max(1, self.lanes))))
        except asyncio.CancelledError:
            raise
        except Exception:
            # A bug in an agent must not take the market down with it: report and retire.
            log.exception("%s: stopped by an unexpected error", self.name)

    async def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                await self.step()
            except ApiError as err:
                self.note_error(err, "step")
                await self.sleep(1.0)

    async def start(self) -> None:
        """First actions after login (e.g. initial quotes)."""

    async def step(self) -> None:
        """One decision; subclasses pace themselves with the limiter and `sleep`."""
        raise NotImplementedError


class MarketMaker(Agent):
    """Quotes a ladder on both sides of one symbol around the drifting fair value."""

    kind = "mm"

    def __init__(
        self,
        name: str,
        session: UserSession,
        rng: random.Random,
        limiter: TokenBucket,
        stats: SimStats,
        stop: asyncio.Event,
        market: SymbolMarket,
        params: QuoteParams,
        *,
        requote_interval: float = 0.5,
        sync_interval: float = 5.0,
        tolerance_ticks: int = 0,
    ) -> None:
        super().__init__(name, session, rng, limiter, stats, stop)
        self.market = market
        self.params = params
        self.requote_interval = requote_interval
        self.sync_interval = sync_interval
        self.tolerance_ticks = tolerance_ticks
        self.live: dict[tuple[Side, int], LiveQuote] = {}
        self.synced_at = -math.inf

    def spec_for(self, symbol: str) -> InstrumentSpec | None:
        return self.market.spec if symbol == self.market.spec.symbol else None

    @property
    def inventory(self) -> int:
        return self.positions.get(self.market.spec.symbol, 0)

    async def start(self) -> None:
        # Quotes left over from an earlier run are replaced by a fresh ladder.
        await self.cancel_leftovers(self.market.spec.symbol)
        await self.refresh_positions(0.0)
        self.synced_at = time.monotonic()
        # The first ladder goes out at once, outside the rate budget, so the book fills in
        # within a second of start.
        target = compute_quotes(
            self.market.advance(), self.inventory, self.params, self.market.spec, self.market.band()
        )
        await asyncio.gather(*(self._send_place(q, throttle=False) for q in target))

    async def step(self) -> None:
        await self.sleep(self.requote_interval * (0.75 + self.rng.random() / 2))
        if self.stop.is_set():
            return
        await self.sync()
        fair = self.market.advance()
        target = compute_quotes(
            fair, self.inventory, self.params, self.market.spec, self.market.band()
        )
        actions = plan_requote(self.live, target, self.tolerance_ticks)
        # Cancels first (they may make room under position and open-order limits), then the
        # amends and places together: a round trip per ladder, not per quote.
        cancels = [a for a in actions if isinstance(a, Cancel)]
        if cancels:
            await asyncio.gather(*(self._send_cancel(a) for a in cancels))
        if self.stop.is_set():
            return
        sends = [self._send_place(a.quote, throttle=True) for a in actions if isinstance(a, Place)]
        sends += [self._send_amend(a) for a in actions if isinstance(a, Amend)]
        if sends:
            await asyncio.gather(*sends)

    async def sync(self) -> None:
        """Every `sync_interval`: reload inventory and drop quotes that are no longer open."""
        if time.monotonic() - self.synced_at < self.sync_interval:
            return
        self.synced_at = time.monotonic()
        await self.refresh_positions(0.0)
        symbol = self.market.spec.symbol
        rows = await self.guarded(
            "open_orders",
            lambda: self.session.call(
                "GET", "/orders", params={"status": "open", "symbol": symbol, "limit": 200}
            ),
        )
        if not isinstance(rows, list):
            return
        open_ids = {str(r.get("id")): r for r in rows}
        for slot, lq in list(self.live.items()):
            row = open_ids.get(lq.order_id)
            if row is None:
                del self.live[slot]
            else:
                self.live[slot] = self._live_from(row, lq.price)
        tracked = {lq.order_id for lq in self.live.values()}
        for oid in open_ids.keys() - tracked:
            # An order we lost track of (e.g. an amend response that never arrived).
            await self._cancel_untracked(oid)

    async def _cancel_untracked(self, order_id: str) -> None:
        await self.guarded("cancel", lambda: self.session.call("DELETE", f"/orders/{order_id}"))

    def _live_from(self, order: dict[str, Any], price: int) -> LiveQuote:
        spec = self.market.spec
        filled = Decimal(str(order.get("filled_quantity") or "0"))
        remaining = order.get("remaining_quantity")
        if remaining is None:
            remaining = Decimal(str(order.get("quantity", "0"))) - filled
        return LiveQuote(
            str(order["id"]), price, spec.to_lots(Decimal(str(remaining))), spec.to_lots(filled)
        )

    def _track(self, slot: tuple[Side, int], order: dict[str, Any], price: int) -> None:
        self.count_fills(order)
        for fill in order.get("fills") or ():
            if fill.get("price") is not None:
                self.market.observe_trade(Decimal(str(fill["price"])))
        if str(order.get("status")) in OPEN_STATUSES:
            self.live[slot] = self._live_from(order, price)
        else:
            self.live.pop(slot, None)

    async def _send_place(self, quote: Quote, *, throttle: bool) -> None:
        spec = self.market.spec
        intent = OrderIntent(spec.symbol, quote.side, "limit", "gtc", quote.price, quote.lots)
        if throttle:
            await self.limiter.acquire()
        order = await self.guarded(
            "quote", lambda: self.session.call("POST", "/orders", json=intent.to_request(spec))
        )
        if isinstance(order, dict):
            self.stats.orders += 1
            self._track((quote.side, quote.level), order, quote.price)

    async def _send_amend(self, action: Amend) -> None:
        spec = self.market.spec
        slot = (action.quote.side, action.quote.level)
        current = self.live.get(slot)
        body: dict[str, Any] = {"price": spec.price_str(action.quote.price)}
        if current is None or current.lots != action.quote.lots:
            # PATCH takes the new total quantity: what is filled stays filled.
            filled = current.filled_lots if current is not None else 0
            body["quantity"] = spec.qty_str(filled + action.quote.lots)
        await self.limiter.acquire()
        self.stats.requests += 1
        try:
            order = await self.session.call("PATCH", f"/orders/{action.order_id}", json=body)
        except ApiError as err:
            if err.status in (404, 409):
                # Filled or canceled meanwhile: the slot is free for a new quote next round.
                self.live.pop(slot, None)
                return
            self.note_error(err, "amend")
            if err.transient:
                await self.sleep(err.retry_after or 1.0)
            return
        self.stats.amends += 1
        if isinstance(order, dict):
            self._track(slot, order, action.quote.price)

    async def _send_cancel(self, action: Cancel) -> None:
        await self.limiter.acquire()
        self.stats.requests += 1
        try:
            await self.session.call("DELETE", f"/orders/{action.order_id}")
        except ApiError as err:
            if err.status not in (404, 409):
                self.note_error(err, "cancel")
                if err.transient:
                    await self.sleep(err.retry_after or 1.0)
                    return
        self.stats.cancels += 1
        self.live.pop(action.slot, None)


class MultiSymbolAgent(Agent, Generic[P]):
    """An agent trading every symbol of `markets`, with parameters per symbol."""

    def __init__(
        self,
        name: str,
        session: UserSession,
        rng: random.Random,
        limiter: TokenBucket,
        stats: SimStats,
        stop: asyncio.Event,
        markets: dict[str, SymbolMarket],
        params: dict[str, P],
    ) -> None:
        super().__init__(name, session, rng, limiter, stats, stop)
        self.markets = markets
        self.symbols = sorted(markets)
        self.params = params

    def spec_for(self, symbol: str) -> InstrumentSpec | None:
        market = self.markets.get(symbol)
        return market.spec if market else None


class NoiseTrader(MultiSymbolAgent[NoiseParams]):
    """Sends random market and limit orders on random symbols; cancels stale limit orders."""

    kind = "noise"
    lanes = 3

    def __init__(
        self, *args: Any, order_lifetime: float = 30.0, max_open: int = 10, **kwargs: Any
    ) -> None:
        """MultiSymbolAgent's arguments, plus how long a limit order may rest and how many
        may be open before the oldest is canceled."""
        super().__init__(*args, **kwargs)
        self.order_lifetime = order_lifetime
        self.max_open = max_open
        self.open: deque[tuple[float, str]] = deque()

    async def start(self) -> None:
        await self.cancel_leftovers(None)

    async def step(self) -> None:
        await self.retire_old_orders()
        await self.refresh_positions(5.0)
        symbol = self.rng.choice(self.symbols)
        market = self.markets[symbol]
        intent = noise_order(
            self.rng,
            market.spec,
            market.advance(),
            self.positions.get(symbol, 0),
            self.params[symbol],
            market.band(),
        )
        order = await self.place(intent, market.spec)
        if order is not None:
            for fill in order.get("fills") or ():
                if fill.get("price") is not None:
                    market.observe_trade(Decimal(str(fill["price"])))
            if str(order.get("status")) in OPEN_STATUSES:
                self.open.append((time.monotonic(), str(order["id"])))

    async def retire_old_orders(self) -> None:
        now = time.monotonic()
        while self.open and (
            len(self.open) > self.max_open or now - self.open[0][0] > self.order_lifetime
        ):
            _, oid = self.open.popleft()
            await self.limiter.acquire()
            self.stats.requests += 1
            try:
                await self.session.call("DELETE", f"/orders/{oid}")
                self.stats.cancels += 1
            except ApiError as err:
                if err.status not in (404, 409):
                    self.note_error(err, "cancel")


class MomentumTrader(MultiSymbolAgent[MomentumParams]):
    """Follows short-vs-long moving averages of recent trade prices with market orders."""

    kind = "momentum"

    def __init__(self, *args: Any, interval: float = 2.0, **kwargs: Any) -> None:
        """MultiSymbolAgent's arguments, plus the mean pause between decisions."""
        super().__init__(*args, **kwargs)
        self.interval = interval

    async def step(self) -> None:
        await self.sleep(self.interval * (0.5 + self.rng.random()))
        if self.stop.is_set():
            return
        await self.refresh_positions(5.0)
        symbol = self.rng.choice(self.symbols)
        market = self.markets[symbol]
        params = self.params[symbol]
        trades = await self.guarded(
            "trades",
            lambda: self.session.call(
                "GET", f"/markets/{symbol}/trades", params={"limit": params.long_window}
            ),
        )
        if not isinstance(trades, list) or not trades:
            return
        prices = [Decimal(str(t["price"])) for t in sorted(trades, key=_trade_order)]
        market.observe_trade(prices[-1])
        intent = momentum_order(
            market.spec, momentum_signal(prices, params), self.positions.get(symbol, 0), params
        )
        if intent is not None:
            order = await self.place(intent, market.spec)
            if order is not None:
                # Our own trade changed the position; do not wait for the next refresh.
                self.positions_at = -math.inf


def _trade_order(trade: dict[str, Any]) -> tuple[str, int]:
    tid = trade.get("trade_id")
    try:
        num = int(str(tid))
    except ValueError:
        num = 0
    return str(trade.get("time", "")), num
