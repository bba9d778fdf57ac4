"""Concurrent orders racing for the same cash: exactly the affordable ones get through."""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal

import pytest
from sqlalchemy import select, text

from hft.api.trading import entry
from hft.api.trading.testing import (  # noqa: F401 - fixtures
    TRADING_TEST_SETTINGS,
    engine_fixture,
    place,
    with_trading_fixture,
)
from hft.db.models.auth import Account, AuditEntry
from hft.db.session import create_engine

D = Decimal


@pytest.fixture
def settings_overrides(engine):
    return {
        "engine_address": engine.address,
        "starting_cash": "1000",
        "trading": {**TRADING_TEST_SETTINGS, "maker_fee_bps": "0", "taker_fee_bps": "2"},
    }


async def test_exactly_the_affordable_orders_are_accepted(make_user):
    alice = await make_user()
    # each reserves 190 + 0.038 fee; 1000 / 190.038 -> 5 fit
    body = {"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": "1", "price": "190.00"}
    results = await asyncio.gather(*(alice.post("/api/v1/orders", json=body) for _ in range(20)))
    codes = sorted(r.status_code for r in results)
    assert codes.count(201) == 5, [r.text for r in results]
    assert codes.count(403) == 15
    assert {r.json()["error"]["code"] for r in results if r.status_code == 403} == {
        "insufficient_buying_power"
    }
    account = (await alice.get("/api/v1/account")).json()
    assert D(account["reserved_cash"]) == 5 * D("190.038")
    assert D(account["buying_power"]) == D(1000) - 5 * D("190.038")
    assert len((await alice.get("/api/v1/orders?status=open")).json()) == 5


async def test_concurrent_retries_of_one_client_order_id_make_one_order(make_user):
    alice = await make_user()
    body = {
        "symbol": "AAPL",
        "side": "buy",
        "quantity": "1",
        "price": "185.00",
        "client_order_id": "retry-me",
    }
    results = await asyncio.gather(*(alice.post("/api/v1/orders", json=body) for _ in range(8)))
    assert {r.status_code for r in results} <= {200, 201}
    assert len({r.json()["id"] for r in results}) == 1
    assert len((await alice.get("/api/v1/orders")).json()) == 1
    account = (await alice.get("/api/v1/account")).json()
    assert D(account["reserved_cash"]) == D("185.037")


async def test_crossing_orders_from_many_users_settle_consistently(make_user):
    users = [await make_user() for _ in range(4)]
    sellers, buyers = users[:2], users[2:]
    jobs = []
    for i in range(10):
        jobs.append(
            place(
                sellers[i % 2], side="sell", quantity="1", price="19.00", symbol="NVDA", expect=None
            )
        )
        jobs.append(
            place(
                buyers[i % 2], side="buy", quantity="1", price="125.00", symbol="NVDA", expect=None
            )
        )
    await asyncio.gather(*jobs)
    total_qty = D(0)
    total_cash = D(0)
    for u in users:
        for p in (await u.get("/api/v1/positions")).json():
            total_qty += D(p["quantity"])
        pf = (await u.get("/api/v1/portfolio")).json()
        total_cash += D(pf["cash"])
        fees = D(pf["fees"])
        total_cash += fees
    assert total_qty == 0
    # money only changes hands (plus fees): the sum of cash before fees is conserved
    assert total_cash == 4 * D(1000)


async def test_each_order_of_a_concurrent_batch_has_its_own_audit_entry(make_user, db):
    # Sent at once, these share entry transactions: each order's audit entry must still
    # name that order and carry that request's details.
    users = [await make_user() for _ in range(3)]
    sent = []
    for i in range(24):
        user = users[i % 3]
        body = {
            "symbol": "AAPL",
            "side": "buy" if i % 2 else "sell",
            "quantity": "1",  # four buys of a user fit its 1000 of cash
            # Within the price band, buys below sells: nothing trades.
            "price": f"{(172 if i % 2 else 200) + i % 8}.50",
            "client_order_id": f"batch-{i}",
        }
        sent.append((user, body, f"req-{i}"))
    results = await asyncio.gather(
        *(u.post("/api/v1/orders", json=b, headers={"X-Request-ID": rid}) for u, b, rid in sent)
    )
    assert [r.status_code for r in results] == [201] * 24, [r.text for r in results]
    async with db.session() as session:
        entries = {
            e.target: e
            for e in (
                await session.execute(select(AuditEntry).where(AuditEntry.action == "order.create"))
            ).scalars()
        }
    assert len(entries) == 24
    for (user, body, rid), resp in zip(sent, results, strict=True):
        order = resp.json()
        assert (order["client_order_id"], D(order["price"])) == (
            body["client_order_id"],
            D(body["price"]),
        )
        entry = entries[f"order:{order['id']}"]
        assert entry.user_id == int(user.user_id)
        assert entry.request_id == rid
        assert entry.details["client_order_id"] == body["client_order_id"]
        assert entry.details["quantity"] == body["quantity"]
        assert D(entry.details["price"]) == D(body["price"])
        assert entry.details["side"] == body["side"]


async def test_orders_another_writer_commits_while_entry_waits_count_against_limits(make_user, db):
    # Another backend process's order entry holds the account's lock and commits open
    # orders while this one's batch waits for that lock: the batch must count them
    # (PostgreSQL reads the open orders in the statement that waits for the lock, whose
    # snapshot predates that commit, and so must notice it and read them again).
    admin, alice = await make_user(admin=True), await make_user()
    r = await admin.put("/api/v1/risk/limits", json={"max_open_orders": 2})
    assert r.status_code == 200, r.text
    placed = [await place(alice, side="sell", price=f"20{i}.00") for i in range(2)]
    for order in placed:
        r = await alice.delete(f"/api/v1/orders/{order['id']}")
        assert r.status_code == 200, r.text
    account_id = int((await alice.get("/api/v1/account")).json()["account_id"])
    other = create_engine(db.url, pool_size=1)
    try:
        async with other.connect() as conn:
            await conn.begin()
            # What that entry writes: its account's entry_version (every entry raises
            # it), then its orders.
            await conn.execute(
                text("UPDATE accounts SET entry_version = entry_version + 1 WHERE id = :a"),
                {"a": account_id},
            )
            await conn.execute(
                text(
                    "UPDATE orders SET status = 'new', leaves_lots = quantity_lots"
                    " WHERE id IN (:x, :y)"
                ),
                {"x": int(placed[0]["id"]), "y": int(placed[1]["id"])},
            )
            sent = asyncio.create_task(place(alice, side="sell", price="202.00", expect=None))
            await asyncio.sleep(0.5)
            assert not sent.done()  # waiting for the account (SQLite: for the writer)
            await conn.commit()
        answer = await asyncio.wait_for(sent, 10)
    finally:
        await other.dispose()
    assert answer.get("error", {}).get("code") == "max_open_orders", answer


async def test_order_entry_writes_the_account_of_every_order_it_accepts(make_user, db, monkeypatch):
    # What the test above relies on from every backend process: a sell reserves no cash,
    # and its account's entry_version is raised anyway (so a concurrent batch notices
    # the order).
    alice = await make_user()
    account_id = int((await alice.get("/api/v1/account")).json()["account_id"])
    written: list[list[dict[str, object]]] = []
    for name in ("_write_postgres", "_write_each"):
        real = getattr(entry, name)

        def spy(conn, accepted, reserved, real=real):
            written.append(reserved)
            return real(conn, accepted, reserved)

        monkeypatch.setattr(entry, name, spy)
    await place(alice, side="sell", price="201.00")
    assert D((await alice.get("/api/v1/account")).json()["reserved_cash"]) == 0
    assert [[row["b_id"] for row in rows] for rows in written] == [[account_id]]
    async with db.session() as session:
        account = await session.get(Account, account_id)
        assert account is not None
        assert account.entry_version == 1


async def test_an_order_goes_to_the_engine_once_written_even_if_its_request_is_gone(
    make_user, monkeypatch
):
    # Order entry hands each committed order to the engine sender itself, before the
    # requests resume: an order whose client went away while its batch was committing is
    # pending_new with a reservation, and the engine's answer settles it (it rests), rather
    # than reconciliation rejecting it later as never sent.
    alice = await make_user()
    written = asyncio.Event()
    real = entry.OrderEntry._write_sync

    def write_then_signal(self, *args):
        out = real(self, *args)
        written.set()
        return out

    monkeypatch.setattr(entry.OrderEntry, "_write_sync", write_then_signal)
    body = {
        "symbol": "AAPL",
        "side": "buy",
        "quantity": "1",
        "price": "185.00",
        "client_order_id": "gone",
    }
    request = asyncio.create_task(alice.post("/api/v1/orders", json=body))
    await written.wait()
    request.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await request
    monkeypatch.undo()

    async def status() -> str:
        return (await alice.get("/api/v1/orders/by-client-id/gone")).json()["status"]

    for _ in range(100):
        if await status() != "pending_new":
            break
        await asyncio.sleep(0.05)
    assert await status() == "new"
    assert D((await alice.get("/api/v1/account")).json()["reserved_cash"]) > 0
