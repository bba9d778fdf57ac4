"""Full-stack test support: real `hft engine` and `hft api` processes on free ports in a temp dir.

Every stack gets its own data directory and its own database: a SQLite file, or (when
HFT_TEST_POSTGRES_URL is set) a freshly created PostgreSQL database that is dropped when
the stack is closed. Tests talk to the stack the way users do: REST, WebSocket and gRPC.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import yaml

REPO = Path(__file__).resolve().parents[2]
PG_URL = os.environ.get("HFT_TEST_POSTGRES_URL", "")
START_SECONDS = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def eventually(check: Callable[[], Any], seconds: float = 20.0, interval: float = 0.1) -> Any:
    """Call `check` until it returns a truthy value (returned) or raises no AssertionError."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            result = check()
            if result:
                return result
            err: BaseException | None = None
        except AssertionError as exc:
            err = exc
        if time.monotonic() > deadline:
            if err is not None:
                raise err
            raise AssertionError(f"condition not met within {seconds} s")
        time.sleep(interval)


def write_config(
    path: Path, api: dict[str, Any] | None = None, sim: dict[str, Any] | None = None
) -> Path:
    """The shipped config with test settings for the backend.

    argon2 is made cheap (registering dozens of users must not take minutes on two cores)
    and loopback is exempt from the per-IP rate limits (all test clients share 127.0.0.1);
    per-user limits and every trading rule stay as shipped.
    """
    data = yaml.safe_load((REPO / "config" / "default.yaml").read_text()) or {}
    section = dict(data.get("api") or {})
    section.update({"argon2_time_cost": 1, "argon2_memory_kib": 8192})
    limits = dict(section.get("rate_limits") or {})
    limits["exempt_ips"] = ["127.0.0.1"]
    section["rate_limits"] = limits
    section.update(api or {})
    data["api"] = section
    if sim:
        data["sim"] = {**(data.get("sim") or {}), **sim}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# ---------------------------------------------------------------------------- databases


def _pg_dsn(url: str, database: str | None = None) -> str:
    """asyncpg DSN from a SQLAlchemy URL, optionally for another database."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+")[0]
    path = f"/{database}" if database else parts.path
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def pg_url_for(database: str) -> str:
    parts = urlsplit(PG_URL)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, ""))


async def _pg_exec(sql: str, database: str | None = None) -> None:
    import asyncpg

    conn = await asyncpg.connect(_pg_dsn(PG_URL, database))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def pg_exec(sql: str, database: str | None = None) -> None:
    """Run one statement as the server's admin user (on the admin database by default)."""
    asyncio.run(_pg_exec(sql, database))


async def _pg_fetch(sql: str, database: str) -> list[dict[str, Any]]:
    import asyncpg

    conn = await asyncpg.connect(_pg_dsn(PG_URL, database))
    try:
        return [dict(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


class Database:
    """One test database: a SQLite file or a fresh PostgreSQL database."""

    def __init__(self, kind: str, root: Path) -> None:
        self.kind = kind
        if kind == "sqlite":
            self.path = root / "hft.db"
            self.name = str(self.path)
            self.url = f"sqlite+aiosqlite:///{self.path}"
        else:
            self.name = f"hft_e2e_{uuid.uuid4().hex[:12]}"
            pg_exec(f'CREATE DATABASE "{self.name}"')
            self.url = pg_url_for(self.name)

    def query(self, sql: str) -> list[dict[str, Any]]:
        """Rows of a read-only query, as dicts (decimals come back as str or Decimal)."""
        if self.kind == "sqlite":
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
            conn.row_factory = sqlite3.Row
            try:
                return [dict(r) for r in conn.execute(sql).fetchall()]
            finally:
                conn.close()
        return asyncio.run(_pg_fetch(sql, self.name))

    def drop(self) -> None:
        if self.kind == "postgres":
            with contextlib.suppress(Exception):
                pg_exec(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def dec(value: Any) -> Decimal:
    return Decimal(str(value))


# ---------------------------------------------------------------------------- processes


class Proc:
    """A child process with its output in a log file."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str]) -> None:
        self.name = name
        self.argv = argv
        self.log = log
        self.env = env
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            out.write(f"---- start {' '.join(self.argv)}\n".encode())
            out.flush()
            self.popen = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
                cwd=REPO,
            )

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def stop(self, sig: int = signal.SIGTERM, grace: float = 60.0) -> int | None:
        """Signal the process and wait; SIGKILL after `grace` seconds. Its exit code."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(sig)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode

    def kill(self) -> None:
        self.stop(signal.SIGKILL, 10)

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO / "src"), env.get("PYTHONPATH", "")) if p
    )
    for var in (
        "HFT_DATABASE_URL",
        "HFT_CONFIG",
        "HFT_DATA_DIR",
        "HFT_API_PORT",
        "HFT_ENGINE_PORT",
    ):
        env.pop(var, None)
    env.update(extra or {})
    return env


async def _engine_serving(address: str) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with grpc.aio.insecure_channel(address) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=2
            )
        except grpc.aio.AioRpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


class Trader:
    """A registered user with a token; `req` adds the bearer header."""

    def __init__(self, stack: Stack, username: str, password: str) -> None:
        self.stack = stack
        self.username = username
        self.password = password
        self.token = ""
        self.login()

    def login(self) -> None:
        resp = self.stack.http.post(
            "/api/v1/auth/token", data={"username": self.username, "password": self.password}
        )
        assert resp.status_code == 200, resp.text
        self.token = resp.json()["access_token"]

    def req(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return self.stack.http.request(method, "/api/v1" + path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        resp = self.req("GET", path, **kwargs)
        assert resp.status_code == 200, f"GET {path}: {resp.status_code} {resp.text}"
        return resp.json()

    def order(self, **body: Any) -> httpx.Response:
        return self.req("POST", "/orders", json=body)

    def placed(self, **body: Any) -> dict[str, Any]:
        resp = self.order(**body)
        assert resp.status_code == 201, f"POST /orders {body}: {resp.status_code} {resp.text}"
        return dict(resp.json())


class Stack:
    """engine + api (+ sim) for one test or module; see the module docstring."""

    def __init__(
        self, root: Path, db_kind: str, *, api_config: dict[str, Any] | None = None
    ) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.data_dir = root / "data"
        self.data_dir.mkdir(exist_ok=True)
        self.db = Database(db_kind, self.data_dir)
        self.config = write_config(root / "config.yaml", api_config)
        self.engine_port = free_port()
        self.api_port = free_port()
        self.url = f"http://127.0.0.1:{self.api_port}"
        self.engine_address = f"127.0.0.1:{self.engine_port}"
        env = child_env()
        py = sys.executable
        self.engine = Proc(
            "engine",
            [
                py, "-m", "hft.cli", "engine", "--config", str(self.config), "--host", "127.0.0.1",
                "--port", str(self.engine_port), "--data-dir", str(self.data_dir / "engine"),
                "--metrics-port", "0",
            ],
            root / "engine.log",
            env,
        )  # fmt: skip
        self.api = Proc(
            "api",
            [
                py, "-m", "hft.cli", "api", "--config", str(self.config), "--host", "127.0.0.1",
                "--port", str(self.api_port), "--engine-address", self.engine_address,
                "--data-dir", str(self.data_dir), "--database-url", self.db.url,
                "--web-dir", str(root / "no-web"),
            ],
            root / "api.log",
            child_env({"HFT_ACCESS_LOG": "false"}),
        )  # fmt: skip
        self.sim: Proc | None = None
        self.http = httpx.Client(base_url=self.url, timeout=30.0)
        self._users = 0

    # -- lifecycle

    def start(self) -> Stack:
        self.start_engine()
        self.start_api()
        return self

    def start_engine(self, wait: bool = True) -> None:
        self.engine.start()
        if wait:
            self.wait_engine()

    def wait_engine(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while not asyncio.run(_engine_serving(self.engine_address)):
            if not self.engine.running or time.monotonic() > deadline:
                raise AssertionError(f"engine did not start:\n{self.engine.tail()}")
            time.sleep(0.1)

    def start_api(self, wait: bool = True) -> None:
        self.api.start()
        if wait:
            self.wait_api()

    def wait_api(self, status: int = 200) -> None:
        deadline = time.monotonic() + START_SECONDS
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if self.http.get("/health").status_code == status:
                    return
            if not self.api.running or time.monotonic() > deadline:
                raise AssertionError(f"api did not start:\n{self.api.tail()}")
            time.sleep(0.1)

    def start_sim(self, *args: str) -> Proc:
        self.sim = Proc(
            "sim",
            [
                sys.executable, "-m", "hft.cli", "simulate", "--api", self.url,
                "--config", str(self.config), "--data-dir", str(self.data_dir),
                "--status-interval", "5", *args,
            ],
            self.root / "sim.log",
            child_env(),
        )  # fmt: skip
        self.sim.start()
        return self.sim

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop sim, api, engine in that order (SIGKILL: all at once, no grace)."""
        for proc in (self.sim, self.api, self.engine):
            if proc is not None:
                proc.stop(sig)

    def close(self) -> None:
        self.stop()
        self.http.close()
        self.db.drop()

    # -- helpers

    def trader(self, prefix: str = "t") -> Trader:
        self._users += 1
        username = f"{prefix}{self._users}-{uuid.uuid4().hex[:6]}"
        password = f"pw-{uuid.uuid4().hex}"
        resp = self.http.post(
            "/api/v1/auth/register", json={"username": username, "password": password}
        )
        assert resp.status_code == 201, resp.text
        return Trader(self, username, password)

    def admin(self) -> Trader:
        """A user with the admin role, created with `hft user create --admin`."""
        username = f"admin-{uuid.uuid4().hex[:6]}"
        password = f"pw-{uuid.uuid4().hex}"
        result = subprocess.run(
            [
                sys.executable, "-m", "hft.cli", "user", "create", username, "--password", password,
                "--admin", "--database-url", self.db.url, "--config", str(self.config),
                "--data-dir", str(self.data_dir),
            ],
            capture_output=True, text=True, env=child_env(), cwd=REPO, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        return Trader(self, username, password)

    def logs(self) -> str:
        parts = [
            f"== {p.name}\n{p.tail()}" for p in (self.engine, self.api, self.sim) if p is not None
        ]
        return "\n".join(parts)
