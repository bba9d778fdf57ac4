"""WebSocket `/api/v1/ws`: public market data and the caller's private streams.

Client ops: `auth` {token}, `subscribe`/`unsubscribe` {channels}, `ping`. Channels:
`book:SYM` (snapshot, then updates with contiguous `seq`), `trades:SYM`, `ticker:SYM`,
`candles:SYM:INTERVAL`, and after `auth` the private `orders`, `fills`, `account`, which
only ever carry the caller's own data.

Each connection has a bounded send queue drained by its own task: a client that falls
that far behind is disconnected (close code 1013) instead of slowing everyone else.
Malformed messages get an `error` message; the connection stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from sqlalchemy import select

from hft.api.deps import user_from_token
from hft.api.errors import ApiError
from hft.api.security import decode_token
from hft.api.trading.relay import BookState
from hft.api.trading.schemas import candle_public, fill_public, order_public
from hft.db.models.auth import Account
from hft.db.models.trading import OrderRow
from hft.engine.pb import engine_pb2 as pb
from hft.services.candles import INTERVALS
from hft.services.decimals import fmt

if TYPE_CHECKING:
    from hft.api.trading.projection import AppliedBatch
    from hft.api.trading.runtime import TradingRuntime

log = logging.getLogger("hft.api.trading.ws")

router = APIRouter(tags=["websocket"])

MAX_MESSAGE_CHARS = 4096
MAX_CHANNELS = 200
PRIVATE = ("orders", "fills", "account")
# Internal keys of the channels the projection's batches feed.
_APPLIED_CHANNELS = ("orders:", "fills:", "account:", "candles:")
_CLOSE = object()


class Connection:
    def __init__(self, ws: WebSocket, queue_size: int, ip: str | None) -> None:
        self.ws = ws
        self.ip = ip
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=queue_size)
        self.channels: set[str] = set()
        self.user_id: int | None = None
        self.account_id: int | None = None
        self.dropped = False
        self.auth_expiry: asyncio.TimerHandle | None = None

    def offer(self, text: str) -> None:
        """Queue a message; a full queue means the client is too slow: drop it."""
        if self.dropped:
            return
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.dropped = True
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.get_nowait()
                self.queue.put_nowait(_CLOSE)

    def send(self, payload: dict[str, Any]) -> None:
        self.offer(orjson.dumps(payload).decode())


class Hub:
    """Channel subscriptions and fan-out; fed by the relay and the projection."""

    def __init__(self, runtime: TradingRuntime) -> None:
        self.runtime = runtime
        self.subs: dict[str, set[Connection]] = {}
        self.connections: set[Connection] = set()
        self._tickers: dict[str, dict[str, Any]] = {}
        self.dropped_slow = 0

    # -- fan-out ------------------------------------------------------------------
    def publish(self, key: str, payload: dict[str, Any]) -> None:
        conns = self.subs.get(key)
        if not conns:
            return
        text = orjson.dumps(payload).decode()
        for conn in list(conns):
            conn.offer(text)

    def book_snapshot(self, book: BookState) -> None:
        channel = f"book:{book.symbol}"
        if self.subs.get(channel):
            self.publish(channel, self._snapshot_msg(book))
        self._ticker(book)

    def _snapshot_msg(self, book: BookState) -> dict[str, Any]:
        depth = self.runtime.settings.book_depth
        return {
            "channel": f"book:{book.symbol}",
            "type": "snapshot",
            "seq": book.seq,
            "data": book.view(depth),
        }

    def book_update(self, book: BookState, delta: pb.BookDelta) -> None:
        """A level changed (the relay already applied it to `book`). The message is built
        only when someone subscribes to the channel: most books have no viewer."""
        channel = f"book:{book.symbol}"
        if self.subs.get(channel):
            self.publish(
                channel,
                {
                    "channel": channel,
                    "type": "update",
                    "seq": book.seq,
                    "data": {
                        "side": "buy" if delta.side == pb.SIDE_BUY else "sell",
                        "price": book.price(delta.price),
                        "quantity": book.qty(max(delta.quantity, 0)),
                        "order_count": delta.order_count,
                        "sequence": book.sequence,
                    },
                },
            )
        self._ticker(book)

    def trade(self, book: BookState, trade: dict[str, Any]) -> None:
        channel = f"trades:{book.symbol}"
        self.publish(channel, {"channel": channel, "type": "trade", "data": trade})
        self._ticker(book)

    def _ticker(self, book: BookState) -> None:
        channel = f"ticker:{book.symbol}"
        if not self.subs.get(channel):
            # Nobody to tell; a new subscriber gets the current ticker on subscribing.
            self._tickers.pop(book.symbol, None)
            return
        data = book.ticker()
        if self._tickers.get(book.symbol) == data:
            return
        self._tickers[book.symbol] = data
        self.publish(channel, {"channel": channel, "type": "ticker", "data": data})

    def order_changed(self, order: OrderRow) -> None:
        key = f"orders:{order.account_id}"
        if not self.subs.get(key):
            return
        inst = self.runtime.instruments.get(order.symbol)
        self.publish(key, {"channel": "orders", "type": "order", "data": order_public(order, inst)})

    def wants_applied(self) -> bool:
        """Whether any connection subscribes to what the projection changes (orders,
        fills, balances, candles)."""
        return any(conns and key.startswith(_APPLIED_CHANNELS) for key, conns in self.subs.items())

    def on_applied(self, batch: AppliedBatch) -> None:
        """Projection listener: push what a committed batch changed."""
        for order in batch.orders.values():
            self.order_changed(order)
        for fill in batch.fills:
            if not self.subs.get(f"fills:{fill.account_id}"):
                continue
            self.publish(
                f"fills:{fill.account_id}",
                {"channel": "fills", "type": "fill", "data": fill_public(fill)},
            )
        for account_id, (cash, reserved) in batch.account_values.items():
            self.publish(
                f"account:{account_id}",
                {
                    "channel": "account",
                    "type": "account",
                    "data": {
                        "cash": fmt(cash),
                        "reserved_cash": fmt(reserved),
                        "buying_power": fmt(cash - reserved),
                    },
                },
            )
        for candle in batch.candles:
            channel = f"candles:{candle.symbol}:{candle.interval}"
            self.publish(
                channel, {"channel": channel, "type": "candle", "data": candle_public(candle)}
            )

    async def close(self) -> None:
        for conn in list(self.connections):
            with contextlib.suppress(asyncio.QueueFull):
                conn.queue.put_nowait(_CLOSE)

    # -- subscriptions --------------------------------------------------------------
    def _key(self, conn: Connection, channel: str) -> str:
        """Internal key of a channel (private channels are per account) or ApiError."""
        if channel in PRIVATE:
            if conn.account_id is None:
                raise ApiError(401, "not_authenticated", f"{channel} needs auth first", channel)
            return f"{channel}:{conn.account_id}"
        parts = channel.split(":")
        kind = parts[0]
        if kind in ("book", "trades", "ticker") and len(parts) == 2:
            symbol = parts[1]
        elif kind == "candles" and len(parts) == 3:
            symbol = parts[1]
            if parts[2] not in INTERVALS:
                raise ApiError(
                    422,
                    "invalid_interval",
                    f"interval must be one of {', '.join(INTERVALS)}",
                    channel,
                )
        else:
            raise ApiError(422, "invalid_channel", f"unknown channel {channel[:64]!r}", channel)
        if symbol not in self.runtime.instruments:
            raise ApiError(422, "unknown_symbol", f"unknown symbol {symbol[:32]!r}", channel)
        return channel

    def subscribe(self, conn: Connection, channel: str) -> None:
        key = self._key(conn, channel)
        if key in conn.channels:
            return
        if len(conn.channels) >= MAX_CHANNELS:
            raise ApiError(422, "too_many_channels", f"at most {MAX_CHANNELS} channels", channel)
        # Snapshot and registration happen without an await in between, so no update can
        # slip past: the first update a client gets is seq = snapshot seq + 1.
        if channel.startswith("book:"):
            book = self.runtime.relay.books.get(channel[5:]) if self.runtime.relay else None
            if book is not None:
                conn.send(self._snapshot_msg(book))
        elif channel.startswith("ticker:"):
            book = self.runtime.relay.books.get(channel[7:]) if self.runtime.relay else None
            if book is not None:
                data = book.ticker()
                self._tickers[book.symbol] = data
                conn.send({"channel": channel, "type": "ticker", "data": data})
        conn.channels.add(key)
        self.subs.setdefault(key, set()).add(conn)

    def unsubscribe(self, conn: Connection, channel: str) -> None:
        key = self._key(conn, channel)
        conn.channels.discard(key)
        subs = self.subs.get(key)
        if subs is not None:
            subs.discard(conn)
            if not subs:
                del self.subs[key]

    def expire_auth(self, conn: Connection) -> None:
        """The connection's token expired: its private channels stop, public ones go on."""
        for channel in PRIVATE:
            if conn.account_id is not None and f"{channel}:{conn.account_id}" in conn.channels:
                self.unsubscribe(conn, channel)
        conn.user_id = conn.account_id = None
        conn.auth_expiry = None
        conn.send(
            _error(
                "token_expired",
                "the access token has expired: private channels stopped; send auth again",
                "token",
            )
        )

    def drop(self, conn: Connection) -> None:
        if conn.auth_expiry is not None:
            conn.auth_expiry.cancel()
        self.connections.discard(conn)
        for key in list(conn.channels):
            subs = self.subs.get(key)
            if subs is not None:
                subs.discard(conn)
                if not subs:
                    del self.subs[key]
        conn.channels.clear()


def _error(code: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"type": "error", "error": {"code": code, "message": message, "field": field}, **extra}


async def _sender(conn: Connection) -> None:
    while True:
        item = await conn.queue.get()
        if item is _CLOSE:
            code = 1013 if conn.dropped else 1001
            with contextlib.suppress(Exception):
                await conn.ws.close(code=code, reason="slow consumer" if conn.dropped else "")
            return
        await conn.ws.send_text(item)


async def _heartbeat(conn: Connection, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        conn.send({"type": "heartbeat", "time": time.time()})


async def _authenticate(ws: WebSocket, conn: Connection, token: object) -> dict[str, Any]:
    if not isinstance(token, str) or not token or len(token) > 4096:
        return _error("invalid_token", "token must be a non-empty string", "token")
    app = ws.app
    async with app.state.db.session() as session:
        try:
            user = await user_from_token(token, app.state.settings, session, app.state.user_cache)
        except ApiError as exc:
            return _error(exc.code, exc.message, "token")
        account_id = (
            await session.execute(select(Account.id).where(Account.user_id == user.id))
        ).scalar_one_or_none()
    if conn.user_id is not None and conn.user_id != user.id:
        return _error("already_authenticated", "this connection belongs to another user")
    conn.user_id = user.id
    conn.account_id = None if account_id is None else int(account_id)
    # Private data flows only while the token is valid: stop it when the token expires.
    settings = app.state.settings
    expires_at = decode_token(token, settings.jwt_key(), issuer=settings.jwt_issuer).expires_at
    if conn.auth_expiry is not None:
        conn.auth_expiry.cancel()
    hub: Hub = app.state.trading.hub
    conn.auth_expiry = asyncio.get_running_loop().call_later(
        max(0.0, expires_at - time.time()), hub.expire_auth, conn
    )
    return {"type": "auth", "user_id": str(user.id), "username": user.username}


def _channels(msg: dict[str, Any]) -> list[str] | dict[str, Any]:
    channels = msg.get("channels")
    if isinstance(channels, str):
        channels = [channels]
    if not isinstance(channels, list) or not channels or len(channels) > MAX_CHANNELS:
        return _error(
            "invalid_channels", "channels must be a non-empty list of strings", "channels"
        )
    if not all(isinstance(c, str) and 0 < len(c) <= 64 for c in channels):
        return _error("invalid_channels", "every channel must be a short string", "channels")
    return channels


async def _handle(ws: WebSocket, hub: Hub, conn: Connection, raw: str) -> dict[str, Any] | None:
    if len(raw) > MAX_MESSAGE_CHARS:
        return _error("message_too_large", f"messages are limited to {MAX_MESSAGE_CHARS} chars")
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _error("malformed_json", "message is not valid JSON")
    if not isinstance(msg, dict):
        return _error("invalid_message", "message must be a JSON object")
    op = msg.get("op")
    req_id = msg.get("id") if isinstance(msg.get("id"), str | int) else None
    extra = {} if req_id is None else {"id": req_id}
    if op == "ping":
        return {"type": "pong", "time": time.time(), **extra}
    if op == "auth":
        return {**(await _authenticate(ws, conn, msg.get("token"))), **extra}
    if op in ("subscribe", "unsubscribe"):
        channels = _channels(msg)
        if isinstance(channels, dict):
            return {**channels, **extra}
        done: list[str] = []
        errors: list[dict[str, Any]] = []
        for channel in channels:
            try:
                if op == "subscribe":
                    hub.subscribe(conn, channel)
                else:
                    hub.unsubscribe(conn, channel)
                done.append(channel)
            except ApiError as exc:
                errors.append({"code": exc.code, "message": exc.message, "field": channel})
        reply: dict[str, Any] = {"type": f"{op}d", "channels": done, **extra}
        if errors:
            conn.send({"type": "error", "error": errors[0], "errors": errors, **extra})
        return reply
    return _error(
        "invalid_op", "op must be one of auth, subscribe, unsubscribe, ping", "op", **extra
    )


@router.websocket("/ws")
async def websocket_endpoint(ws: WebSocket) -> None:
    """The trading WebSocket (see the module docstring for the protocol)."""
    runtime: TradingRuntime | None = getattr(ws.app.state, "trading", None)
    limiter = getattr(ws.app.state, "rate_limiter", None)
    ip = ws.client.host if ws.client else None
    if runtime is None or runtime.hub is None:
        await ws.close(code=1011)
        return
    if limiter is not None and limiter.ws_connect_wait(ip) > 0:
        await ws.close(code=1008, reason="too many connections")
        return
    await ws.accept()
    hub: Hub = runtime.hub
    conn = Connection(ws, runtime.settings.ws_queue_size, ip)
    hub.connections.add(conn)
    sender = asyncio.create_task(_sender(conn))
    beat = asyncio.create_task(_heartbeat(conn, runtime.settings.ws_heartbeat_s))
    strikes = 0
    try:
        while not sender.done():
            receive = asyncio.create_task(ws.receive())
            done, _ = await asyncio.wait({receive, sender}, return_when=asyncio.FIRST_COMPLETED)
            if receive not in done:
                receive.cancel()
                break
            message = receive.result()
            if message["type"] == "websocket.disconnect":
                break
            raw = message.get("text")
            if raw is None:
                data = message.get("bytes") or b""
                raw = data.decode("utf-8", "replace")
            wait = limiter.ws_message_wait(conn.user_id, ip) if limiter is not None else 0.0
            if wait > 0:
                strikes += 1
                conn.send(
                    _error(
                        "rate_limited",
                        f"too many messages; retry in {wait:.1f} s",
                        retry_after=wait,
                    )
                )
                if strikes > 100:
                    break
                continue
            strikes = 0
            reply = await _handle(ws, hub, conn, raw)
            if reply is not None:
                conn.send(reply)
    except WebSocketDisconnect:
        pass
    except Exception:
        log.exception("websocket connection failed")
    finally:
        hub.drop(conn)
        if conn.dropped:
            hub.dropped_slow += 1
        beat.cancel()
        if not sender.done():
            with contextlib.suppress(asyncio.QueueFull):
                conn.queue.put_nowait(_CLOSE)
            try:
                await asyncio.wait_for(sender, 1.0)
            except (TimeoutError, asyncio.CancelledError, Exception):
                sender.cancel()
        with contextlib.suppress(Exception):
            await ws.close()
