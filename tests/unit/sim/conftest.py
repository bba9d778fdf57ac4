"""A small in-memory stand-in for the backend's REST API, served through httpx.MockTransport.

It validates orders the way the real backend does (tick, lot, min/max, band, required
price) and can inject failures (429, 503, unreachable, expired tokens), so the agents'
request logic and error handling can be tested without processes.
"""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

INSTRUMENTS = [
    {
        "symbol": "AAPL",
        "tick_size": "0.01",
        "lot_size": "1",
        "min_quantity": "1",
        "max_quantity": "100000",
        "price_band_pct": "10",
        "reference_price": "190.00",
        "last_price": None,
        "status": "trading",
    },
    {
        "symbol": "BTC-USD",
        "tick_size": "0.01",
        "lot_size": "0.0001",
        "min_quantity": "0.0001",
        "max_quantity": "100",
        "price_band_pct": "10",
        "reference_price": "65000.00",
        "last_price": "64000.00",
        "status": "trading",
    },
    {
        "symbol": "HALT",
        "tick_size": "0.01",
        "lot_size": "1",
        "min_quantity": "1",
        "max_quantity": "100",
        "price_band_pct": "10",
        "reference_price": "10.00",
        "last_price": None,
        "status": "halted",
    },
]


def _err(
    status: int, code: str, message: str = "", headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"code": code, "message": message or code}}, headers=headers
    )


@dataclass
class FakeBackend:
    """The fake; `fail_rate` injects 429/503/transport errors into order requests."""

    fail_rate: float = 0.0
    expire_tokens_every: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    users: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    log: list[tuple[str, str, str]] = field(default_factory=list)  # (user, method, path)
    validation_errors: Counter[str] = field(default_factory=Counter)
    injected: Counter[str] = field(default_factory=Counter)
    auth_calls: int = 0
    requests: int = 0
    ids: Any = field(default_factory=lambda: itertools.count(1))

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def spec(self, symbol: str) -> dict[str, Any] | None:
        return next((i for i in INSTRUMENTS if i["symbol"] == symbol), None)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        path = request.url.path
        if path == "/health":
            return httpx.Response(200, json={"status": "ok"})
        assert path.startswith("/api/v1/"), path
        path = path[len("/api/v1") :]
        if path == "/auth/register":
            self.auth_calls += 1
            body = json.loads(request.content)
            if body["username"] in self.users:
                return _err(409, "username_taken")
            self.users[body["username"]] = body["password"]
            return httpx.Response(201, json={"id": body["username"], "username": body["username"]})
        if path == "/auth/token":
            self.auth_calls += 1
            form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
            if self.users.get(form.get("username", "")) != form.get("password"):
                return _err(401, "invalid_credentials")
            token = f"t{next(self.ids)}"
            self.tokens[token] = form["username"]
            return httpx.Response(
                200, json={"access_token": token, "token_type": "bearer", "expires_in": 3600}
            )
        if path == "/instruments":
            return httpx.Response(200, json=INSTRUMENTS)
        auth = request.headers.get("authorization", "")
        user = self.tokens.get(auth.removeprefix("Bearer "))
        if user is None:
            return _err(401, "not_authenticated")
        if self.expire_tokens_every and self.requests % self.expire_tokens_every == 0:
            del self.tokens[auth.removeprefix("Bearer ")]
            self.injected["expired"] += 1
            return _err(401, "token_expired")
        self.log.append((user, request.method, path))
        if (
            path.startswith("/orders")
            and request.method != "GET"
            and self.rng.random() < self.fail_rate
        ):
            kind = self.rng.choice(["429", "503", "unreachable"])
            self.injected[kind] += 1
            if kind == "429":
                return _err(429, "rate_limited", headers={"Retry-After": "0.01"})
            if kind == "503":
                return _err(503, "engine_unavailable", headers={"Retry-After": "0.01"})
            raise httpx.ConnectError("connection refused", request=request)
        return self.route(user, request, path)

    def route(self, user: str, request: httpx.Request, path: str) -> httpx.Response:
        method = request.method
        params = dict(request.url.params)
        if path == "/orders" and method == "POST":
            return self.place(user, json.loads(request.content))
        if path == "/orders" and method == "GET":
            rows = [
                o
                for o in self.orders.values()
                if o["user"] == user
                and (params.get("status") != "open" or o["status"] in ("new", "partially_filled"))
                and (not params.get("symbol") or o["symbol"] == params["symbol"])
            ]
            return httpx.Response(200, json=[self.public(o) for o in rows])
        if path == "/orders" and method == "DELETE":
            n = 0
            for o in self.orders.values():
                if (
                    o["user"] == user
                    and o["status"] == "new"
                    and params.get("symbol") in (None, o["symbol"])
                ):
                    o["status"] = "canceled"
                    n += 1
            return httpx.Response(200, json={"canceled": n, "orders": []})
        if path.startswith("/orders/"):
            order = self.orders.get(path.split("/")[2])
            if order is None or order["user"] != user:
                return _err(404, "order_not_found")
            if order["status"] != "new":
                return _err(409, "order_not_open")
            if method == "DELETE":
                order["status"] = "canceled"
                return httpx.Response(200, json=self.public(order))
            if method == "PATCH":
                body = json.loads(request.content)
                spec = self.spec(order["symbol"])
                assert spec is not None
                if "price" in body:
                    if error := self.check_price(spec, body["price"]):
                        return error
                    order["price"] = body["price"]
                if "quantity" in body:
                    if error := self.check_quantity(spec, body["quantity"]):
                        return error
                    order["quantity"] = body["quantity"]
                return httpx.Response(200, json=self.public(order))
        if path == "/positions":
            return httpx.Response(200, json=[{"symbol": "AAPL", "quantity": "3"}])
        if path.startswith("/markets/") and path.endswith("/trades"):
            spec = self.spec(path.split("/")[2])
            assert spec is not None
            base = Decimal(spec["last_price"] or spec["reference_price"])
            trades = [
                {
                    "trade_id": str(i),
                    "price": str(base + Decimal(i) / 20),
                    "quantity": "1",
                    "taker_side": "buy",
                    "time": f"t{i:03d}",
                }
                for i in range(int(params.get("limit", 20)))
            ]
            return httpx.Response(200, json=list(reversed(trades)))
        return _err(404, "not_found")

    def check_price(self, spec: dict[str, Any], price: Any) -> httpx.Response | None:
        p = Decimal(str(price))
        if p <= 0:
            return self.invalid("invalid_price")
        if p % Decimal(spec["tick_size"]) != 0:
            return self.invalid("price_not_on_tick")
        ref = Decimal(spec["last_price"] or spec["reference_price"])
        if abs(p - ref) * 100 > ref * Decimal(spec["price_band_pct"]):
            return self.invalid("price_out_of_band")
        return None

    def check_quantity(self, spec: dict[str, Any], quantity: Any) -> httpx.Response | None:
        q = Decimal(str(quantity))
        if q % Decimal(spec["lot_size"]) != 0:
            return self.invalid("quantity_not_on_lot")
        if not Decimal(spec["min_quantity"]) <= q <= Decimal(spec["max_quantity"]):
            return self.invalid("quantity_out_of_range")
        return None

    def invalid(self, code: str) -> httpx.Response:
        self.validation_errors[code] += 1
        return _err(422, code)

    def place(self, user: str, body: dict[str, Any]) -> httpx.Response:
        spec = self.spec(body["symbol"])
        if spec is None:
            return self.invalid("unknown_symbol")
        if spec["status"] != "trading":
            return _err(422, "symbol_halted")
        if error := self.check_quantity(spec, body["quantity"]):
            return error
        if body["type"] == "limit":
            if "price" not in body:
                return self.invalid("price_required")
            if error := self.check_price(spec, body["price"]):
                return error
        elif "price" in body:
            return self.invalid("price_not_allowed")
        oid = str(next(self.ids))
        final = body["type"] == "market" or body.get("time_in_force") in ("ioc", "fok")
        order = {
            **body,
            "id": oid,
            "user": user,
            "status": "filled" if final else "new",
            "filled_quantity": body["quantity"] if final else "0",
        }
        self.orders[oid] = order
        resp = self.public(order)
        if final:
            resp["fills"] = [
                {
                    "trade_id": oid,
                    "price": body.get("price", spec["last_price"] or spec["reference_price"]),
                    "quantity": body["quantity"],
                    "liquidity": "taker",
                    "fee": "0",
                }
            ]
        return httpx.Response(201, json=resp)

    def public(self, order: dict[str, Any]) -> dict[str, Any]:
        filled = Decimal(order["filled_quantity"])
        return {
            "id": order["id"],
            "symbol": order["symbol"],
            "side": order["side"],
            "type": order["type"],
            "price": order.get("price"),
            "quantity": order["quantity"],
            "filled_quantity": order["filled_quantity"],
            "remaining_quantity": str(Decimal(order["quantity"]) - filled),
            "status": order["status"],
        }


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()
