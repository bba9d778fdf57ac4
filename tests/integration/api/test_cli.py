"""`hft user ...` and `hft db ...` against a real database, and `hft api` as a process."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from hft.api.security import Passwords
from hft.cli import main as hft
from hft.db.migrate import head_revision
from hft.db.models.auth import Account, AuditEntry, User
from hft.db.session import Database

REPO = Path(__file__).resolve().parents[3]
CHEAP_HASH = Passwords(time_cost=1, memory_kib=8192)


@pytest.fixture(autouse=True)
def _cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HFT_ARGON2_TIME_COST", "1")
    monkeypatch.setenv("HFT_ARGON2_MEMORY_KIB", "8192")


def _args(db_url: str, tmp_path: Path) -> list[str]:
    return ["--database-url", db_url, "--data-dir", str(tmp_path / "data")]


def _users(db_url: str) -> list[tuple[User, Account]]:
    async def fetch() -> list[tuple[User, Account]]:
        db = Database(db_url, pool_size=1)
        try:
            async with db.session() as session:
                rows = await session.execute(
                    select(User, Account)
                    .join(Account, Account.user_id == User.id)
                    .order_by(User.id)
                )
                return [(u, a) for u, a in rows.all()]
        finally:
            await db.dispose()

    return asyncio.run(fetch())


def test_user_create_generates_password_and_account(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert hft(["user", "create", "Operator", "--admin", *_args(db_url, tmp_path)]) == 0
    out = capsys.readouterr().out
    password = re.search(r"^password: (\S+)$", out, re.M)
    assert password is not None
    ((user, account),) = _users(db_url)
    assert user.username == "Operator"
    assert user.role == "admin"
    assert account.cash == 1_000_000
    assert CHEAP_HASH.verify_sync(user.password_hash, password.group(1))

    assert (
        hft(["user", "create", "trader1", "--password", "pw-123456789", *_args(db_url, tmp_path)])
        == 0
    )
    users = _users(db_url)
    assert [(u.username, u.role) for u, _ in users] == [
        ("Operator", "admin"),
        ("trader1", "trader"),
    ]
    assert CHEAP_HASH.verify_sync(users[1][0].password_hash, "pw-123456789")
    assert "password:" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["operator"], "is taken"),
        (["newbie", "--password", "short"], "at least 8"),
        (["no spaces"], "username must be"),
    ],
)
def test_user_create_errors_change_nothing(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert hft(["user", "create", "Operator", *_args(db_url, tmp_path)]) == 0
    capsys.readouterr()
    assert hft(["user", "create", *args, *_args(db_url, tmp_path)]) == 1
    assert message in capsys.readouterr().err
    assert [u.username for u, _ in _users(db_url)] == ["Operator"]


def test_user_list_set_role_set_active(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = _args(db_url, tmp_path)
    hft(["user", "create", "ann", "--password", "pw-123456789", *a])
    hft(["user", "create", "ben", "--password", "pw-123456789", "--admin", *a])
    capsys.readouterr()
    assert hft(["user", "list", "--json", *a]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["username"], r["role"], r["is_active"]) for r in rows] == [
        ("ann", "trader", True),
        ("ben", "admin", True),
    ]
    assert hft(["user", "set-role", "ANN", "admin", *a]) == 0
    assert hft(["user", "set-active", "ben", "false", *a]) == 0
    assert hft(["user", "set-role", "nobody", "admin", *a]) == 1
    assert hft(["user", "set-role", "ann", "root", *a]) == 2
    users = {u.username: u for u, _ in _users(db_url)}
    assert users["ann"].role == "admin"
    assert users["ben"].is_active is False

    async def audit_actions() -> list[str]:
        db = Database(db_url, pool_size=1)
        try:
            async with db.session() as session:
                return list(
                    (
                        await session.execute(select(AuditEntry.action).order_by(AuditEntry.id))
                    ).scalars()
                )
        finally:
            await db.dispose()

    assert asyncio.run(audit_actions()) == [
        "user.create",
        "user.create",
        "user.update",
        "user.update",
    ]


def test_user_set_password(db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _args(db_url, tmp_path)
    hft(["user", "create", "cara", "--password", "pw-123456789", *a])
    assert hft(["user", "set-password", "cara", "--password", "short", *a]) == 1
    assert hft(["user", "set-password", "nobody", *a]) == 1
    ((user, _),) = _users(db_url)
    assert CHEAP_HASH.verify_sync(user.password_hash, "pw-123456789")
    capsys.readouterr()
    assert hft(["user", "set-password", "CARA", *a]) == 0
    new = re.search(r"^password: (\S+)$", capsys.readouterr().out, re.M)
    assert new is not None
    ((user, _),) = _users(db_url)
    assert CHEAP_HASH.verify_sync(user.password_hash, new.group(1))
    assert not CHEAP_HASH.verify_sync(user.password_hash, "pw-123456789")


def test_db_upgrade_and_current(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = _args(db_url, tmp_path)
    assert hft(["db", "upgrade", *a]) == 0
    assert hft(["db", "current", *a]) == 0
    out = capsys.readouterr().out
    assert f"{head_revision()}  up to date" in out


def test_bad_database_url_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = hft(["db", "current", "--database-url", "sqlite+aiosqlite:////proc/nope/x.db"])
    assert code == 1
    assert "database error" in capsys.readouterr().err
    assert hft(["db", "current", "--database-url", "mysql://x"]) in (1, 2)


def _api_env(tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "HFT_DATA_DIR": str(tmp_path / "data"),
        "HFT_WEB_DIR": str(tmp_path / "no-web"),
        "HFT_ENGINE_ADDRESS": "127.0.0.1:1",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("HFT_DATABASE_URL", None)
    return env


def _start_api(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    env = _api_env(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hft.cli", "api", "--port", "0", *extra],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.match(r"api listening on (http://\S+)", line)
        if m:
            return proc, m.group(1)
    proc.kill()
    raise AssertionError(f"hft api did not report listening (exit {proc.wait()})")


@pytest.mark.timeout(120)
def test_hft_api_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    proc, url = _start_api(tmp_path)
    try:
        r = httpx.post(
            f"{url}/api/v1/auth/register", json={"username": "proc", "password": "pw-123456789"}
        )
        assert r.status_code == 201, r.text
        health = httpx.get(f"{url}/health")
        assert health.json()["database"] == "ok"
        # No engine at 127.0.0.1:1, so the backend is up but degraded.
        assert health.status_code == 503
        assert health.json()["engine"] != "ok"
        assert "hft_http_requests_total" in httpx.get(f"{url}/metrics").text
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0
    assert (tmp_path / "data" / "hft.db").exists()
    assert (tmp_path / "data" / "jwt_secret").stat().st_mode & 0o777 == 0o600


@pytest.mark.timeout(120)
def test_hft_api_reports_a_busy_port_and_bad_configuration(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "hft.cli", "api", "--port", str(port)],
            cwd=REPO,
            env=_api_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=100,
        )
    assert done.returncode == 1
    assert f"cannot bind 127.0.0.1:{port}" in done.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "hft.cli", "api", "--database-url", "mysql://x/y"],
        cwd=REPO,
        env=_api_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert bad.returncode == 2
    assert "database_url" in bad.stderr


@pytest.mark.timeout(180)
def test_hft_api_with_two_workers_shares_secrets_and_metrics(tmp_path: Path) -> None:
    proc, url = _start_api(tmp_path, "--workers", "2")
    try:
        creds = {"username": "multi", "password": "pw-123456789"}
        # Right after the line, while the workers are still starting: the connection
        # waits in the listen backlog instead of being refused.
        r = httpx.post(f"{url}/api/v1/auth/register", json=creds, timeout=30)
        assert r.status_code == 201, r.text
        token = httpx.post(f"{url}/api/v1/auth/token", data=creds).json()["access_token"]
        # Whichever worker answers, it knows the token (one generated secret for all).
        for _ in range(10):
            me = httpx.get(f"{url}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200
        text = httpx.get(f"{url}/metrics").text
        line = next(
            ln
            for ln in text.splitlines()
            if ln.startswith('hft_http_requests_total{method="GET",route="/api/v1/auth/me"')
        )
        # Counted across both workers, not only by the one that served /metrics.
        assert float(line.rsplit(" ", 1)[1]) == 10.0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


@pytest.mark.timeout(240)
async def test_two_workers_push_every_private_update_to_each_websocket(
    db_url: str, tmp_path: Path
) -> None:
    """With two workers both projections follow the engine, and each batch is applied
    by one of them; a WebSocket client on either worker still gets every change to its
    orders and every fill, whichever worker applied it or took the order."""
    import websockets

    from hft.engine.testing import EngineProcess

    with EngineProcess(tmp_path / "engine") as engine:
        proc, url = await asyncio.to_thread(
            _start_api,
            tmp_path,
            "--workers",
            "2",
            "--engine-address",
            engine.address,
            "--database-url",
            db_url,
            "--config",
            str(REPO / "config" / "default.yaml"),
        )
        try:
            async with httpx.AsyncClient(base_url=url, timeout=30) as c:
                tokens = []
                for name in ("ws_alice", "ws_bob"):
                    creds = {"username": name, "password": "pw-123456789"}
                    r = await c.post("/api/v1/auth/register", json=creds)
                    assert r.status_code == 201, r.text
                    r = await c.post("/api/v1/auth/token", data=creds)
                    tokens.append(r.json()["access_token"])
            sockets = []
            for _ in range(4):  # a few connections, so both workers hold some
                ws = await websockets.connect(url.replace("http", "ws") + "/api/v1/ws")
                await ws.send(json.dumps({"op": "auth", "token": tokens[0]}))
                await ws.send(json.dumps({"op": "subscribe", "channels": ["orders", "fills"]}))
                sockets.append(ws)
            await asyncio.sleep(0.5)
            placed = []
            for i in range(16):
                # A new connection per order, so orders land on both workers.
                async with httpx.AsyncClient(base_url=url, timeout=30) as c:
                    token = tokens[i % 2]
                    side = "buy" if i % 2 == 0 else "sell"
                    r = await c.post(
                        "/api/v1/orders",
                        json={
                            "symbol": "AAPL",
                            "side": side,
                            "type": "limit",
                            "quantity": "1",
                            "price": "190.00",
                        },
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    assert r.status_code == 201, r.text
                    if i % 2 == 0:
                        placed.append(r.json()["id"])
            async with httpx.AsyncClient(base_url=url, timeout=30) as c:
                r = await c.get("/api/v1/fills", headers={"Authorization": f"Bearer {tokens[0]}"})
                fill_ids = {(f["trade_id"], f["order_id"]) for f in r.json()}
            assert len(placed) == 8
            assert len(fill_ids) == 8
            for ws in sockets:
                orders: dict[str, str] = {}
                fills: set[tuple[str, str]] = set()
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and not (
                    set(placed) <= {o for o, s in orders.items() if s == "filled"}
                    and fill_ids <= fills
                ):
                    try:
                        msg = json.loads(await asyncio.wait_for(ws.recv(), 1.0))
                    except TimeoutError:
                        continue
                    if msg.get("channel") == "orders":
                        orders[msg["data"]["id"]] = msg["data"]["status"]
                    elif msg.get("channel") == "fills":
                        fills.add((msg["data"]["trade_id"], msg["data"]["order_id"]))
                assert {o: orders.get(o) for o in placed} == dict.fromkeys(placed, "filled")
                assert fills == fill_ids
                await ws.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(proc.wait, 60)
