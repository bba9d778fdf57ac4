"""Failures of the parts around the backend: the engine goes away, the database goes away,
and both come back. Reads keep working where they can, writes fail with 503 (never a 500
or a hang), /health tells, and everything resumes by itself."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hft_e2e_support import Stack, eventually, pg_exec

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]


def test_engine_down_gives_503_and_recovers(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack().start()
    # The simulation trades through the outage too: it must ride it out, not crash.
    sim = stack.start_sim("--rate", "20", "--seed", "3", "--symbols", "MSFT")
    t = stack.trader()
    resting = t.placed(symbol="AAPL", side="buy", type="limit", quantity="2", price="185.00")
    stack.engine.kill()

    def unavailable() -> bool:
        resp = t.order(symbol="AAPL", side="buy", type="limit", quantity="1", price="185.01")
        assert resp.status_code == 503, resp.text
        assert resp.json()["error"]["code"] == "engine_unavailable"
        return True

    eventually(unavailable, seconds=30)
    health = stack.http.get("/health")
    assert health.status_code == 503
    assert health.json()["status"] == "degraded"
    assert health.json()["engine"] != "ok"
    # Reads keep working while the engine is away.
    assert t.get(f"/orders/{resting['id']}")["status"] == "new"
    assert t.get("/portfolio")["cash"]
    cancel = t.req("DELETE", f"/orders/{resting['id']}")
    assert cancel.status_code == 503, cancel.text

    stack.start_engine()
    stack.wait_api()
    again = eventually(
        lambda: t.order(symbol="AAPL", side="buy", type="limit", quantity="1", price="185.02")
    )
    assert again.status_code == 201, again.text
    # The order that was resting before the outage is still live in the engine.
    assert t.get(f"/orders/{resting['id']}")["status"] == "new"
    assert t.req("DELETE", f"/orders/{resting['id']}").status_code == 200
    # Nothing stays pending: the refused orders were never accepted.
    eventually(
        lambda: (
            not [
                o
                for o in t.get("/orders", params={"status": "all"})
                if o["status"] == "pending_new"
            ]
        )
    )
    # The simulation is still alive and trading again (new orders after the recovery).
    after_id = int(again.json()["id"])

    def sim_trading() -> bool:
        rows = stack.db.query(
            "SELECT count(*) AS n FROM orders o JOIN accounts a ON a.id = o.account_id "
            f"JOIN users u ON u.id = a.user_id WHERE u.username LIKE 'sim-%' AND o.id > {after_id}"
        )
        return int(rows[0]["n"]) > 0

    eventually(sim_trading, seconds=60)
    assert sim.running, sim.tail()
    assert "Traceback" not in sim.tail(10_000)


@contextmanager
def database_outage(stack: Stack) -> Iterator[str]:
    """Make the database unusable for the backend, then give it back.

    PostgreSQL: new connections to the database are refused and the backend's existing
    ones are terminated (what a restart or failover of the server looks like).
    SQLite has no server to stop; the closest honest equivalent is another process
    holding the write lock (`BEGIN EXCLUSIVE`), so every write times out as `database
    is locked` until it lets go.
    """
    db = stack.db
    if db.kind == "postgres":
        pg_exec(f'ALTER DATABASE "{db.name}" ALLOW_CONNECTIONS false')
        pg_exec(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{db.name}' AND pid <> pg_backend_pid()"
        )
        try:
            yield "refused"
        finally:
            pg_exec(f'ALTER DATABASE "{db.name}" ALLOW_CONNECTIONS true')
    else:
        conn = sqlite3.connect(db.path, timeout=30, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        try:
            yield "locked"
        finally:
            conn.execute("ROLLBACK")
            conn.close()


def test_database_down_and_back(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack().start()
    t = stack.trader()
    before = t.placed(symbol="MSFT", side="sell", type="limit", quantity="2", price="425.00")
    with database_outage(stack):
        started = time.monotonic()
        body = {
            "symbol": "MSFT",
            "side": "sell",
            "type": "limit",
            "quantity": "1",
            "price": "425.01",
        }
        # SQLite waits out its busy timeout (30 s) before giving up on the lock.
        resp = t.req("POST", "/orders", json=body, timeout=120)
        assert resp.status_code == 503, (
            f"{resp.status_code} {resp.text} after {time.monotonic() - started:.1f} s"
        )
        assert resp.json()["error"]["code"]
        if stack.db.kind == "postgres":
            health = stack.http.get("/health")
            assert health.status_code == 503
            assert health.json()["database"] != "ok"
    eventually(lambda: stack.http.get("/health").status_code == 200, seconds=60)
    after = eventually(
        lambda: t.order(symbol="MSFT", side="sell", type="limit", quantity="1", price="425.02"), 60
    )
    assert after.status_code == 201, after.text
    ids = {o["id"] for o in t.get("/orders", params={"status": "open"})}
    assert before["id"] in ids
    assert after.json()["id"] in ids
    # The refused order left nothing behind.
    assert len(ids) == 2
    # The engine's executions that happened meanwhile still reach the database.
    taker = stack.trader()
    fill = taker.placed(symbol="MSFT", side="buy", type="market", quantity="3")
    assert fill["status"] == "filled"
    eventually(lambda: t.get(f"/orders/{before['id']}")["status"] == "filled")


def test_backend_restart_with_engine_up_keeps_serving(make_stack: Callable[..., Stack]) -> None:
    """The backend crashing is the other half: kill -9 it with orders resting, bring it
    back, and the engine's executions made while it was away land in the database."""
    stack = make_stack().start()
    maker, taker = stack.trader(), stack.trader()
    ask = maker.placed(symbol="SPY", side="sell", type="limit", quantity="5", price="561.00")
    stack.api.kill()
    # While the backend is down the engine keeps the book; another backend-less client
    # could trade, but here we simply restart and trade through the backend.
    stack.start_api()
    maker.login()
    taker.login()
    taker.placed(symbol="SPY", side="buy", type="market", quantity="5")
    done: dict[str, Any] = eventually(
        lambda: (
            maker.get(f"/orders/{ask['id']}")
            if maker.get(f"/orders/{ask['id']}")["status"] == "filled"
            else None
        )
    )
    assert done["filled_quantity"] == "5"
