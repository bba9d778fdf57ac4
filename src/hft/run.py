"""`hft run`: the whole platform from one command.

Starts the engine, waits until its gRPC health says SERVING, starts the backend (serving
the web UI when it is built), waits for /health, creates the demo user on first start,
starts the market simulation, and then supervises the three as child processes:
their output is printed with a prefix, a child that dies is restarted with back-off, and
one that keeps dying ends the run with its last log lines. Ctrl-C or SIGTERM stops the
simulation, then the backend, then the engine (which writes a snapshot), and exits 0.
Everything lives in one data directory, so the next `hft run` resumes the same market.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import fcntl
import json
import os
import secrets
import signal
import socket
import string
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

import httpx

DEMO_USERNAME = "demo"
DEMO_MARKER = "demo-user.json"
LOG_TAIL = 40
RESTART_BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0)
# A child that exits this many times within the window is not restarted again.
MAX_FAILURES = 5
FAILURE_WINDOW = 300.0
STOP_TIMEOUTS = {"sim": 10.0, "api": 20.0, "engine": 60.0}


class StartError(Exception):
    """The platform cannot start; the message says why and what to do."""


def source_root() -> Path:
    """The checkout this package runs from (where config/ and web/ live in development)."""
    return Path(__file__).resolve().parents[2]


def find_file(relative: str) -> Path | None:
    """`relative` under the working directory, else under the source checkout; None if neither."""
    for base in (Path.cwd(), source_root()):
        candidate = base / relative
        if candidate.exists():
            return candidate.resolve()
    return None


def connect_host(host: str) -> str:
    """The address to reach a server bound to `host` from this machine."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def port_available(host: str, port: int) -> bool:
    """True when a TCP server could bind `host:port` now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def describe_database(url: str) -> str:
    """A printable description of a database URL, without its password."""
    parts = urlsplit(url)
    if parts.scheme.startswith("sqlite"):
        return f"SQLite {url.split(':///', 1)[-1]}"
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    return f"{parts.scheme.split('+')[0]} {user}{host}{port}{parts.path}"


def generate_password(length: int = 16) -> str:
    """A random password with lower, upper case and digits, in groups of four for reading."""
    alphabet = string.ascii_letters + string.digits
    rng = secrets.SystemRandom()
    while True:
        chars = "".join(rng.choice(alphabet) for _ in range(length))
        if (
            any(c.islower() for c in chars)
            and any(c.isupper() for c in chars)
            and any(c.isdigit() for c in chars)
        ):
            return "-".join(chars[i : i + 4] for i in range(0, length, 4))


def _child_preexec() -> None:  # pragma: no cover - runs in the forked child
    # Own process group: the terminal's Ctrl-C reaches only the supervisor, which then
    # stops the children in order. PDEATHSIG: if the supervisor is killed outright, the
    # children get SIGTERM instead of living on as orphans holding the ports.
    os.setpgid(0, 0)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    """One supervised process: how to start it, its recent output, its failures."""

    name: str
    argv: list[str]
    env: dict[str, str]
    ready: Callable[[Child], Awaitable[bool]] | None = None
    out: TextIO = sys.stdout
    proc: asyncio.subprocess.Process | None = None
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_TAIL))
    failures: deque[float] = field(default_factory=deque)
    pump: asyncio.Task[None] | None = None
    starts: int = 0

    async def start(self) -> None:
        """Spawn the process and start copying its output with a `name |` prefix."""
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self.env,
            preexec_fn=_child_preexec,
            limit=1 << 20,
        )
        self.starts += 1
        self.pump = asyncio.create_task(self._pump(self.proc))

    async def _pump(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        prefix = f"{self.name:<6}| "
        while True:
            try:
                raw = await proc.stdout.readline()
            except (ValueError, asyncio.LimitOverrunError):
                raw = await proc.stdout.read(1 << 16)
            if not raw:
                return
            line = raw.decode(errors="replace").rstrip("\n")
            self.tail.append(line)
            self.out.write(prefix + line + "\n")
            self.out.flush()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def wait(self) -> int:
        """Wait for the process to exit (and its output to be copied); its exit code."""
        assert self.proc is not None
        code = await self.proc.wait()
        if self.pump is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.pump), 2.0)
        return code

    async def stop(self, grace: float) -> int | None:
        """SIGTERM, wait `grace` seconds, then SIGKILL; the exit code (None if never started)."""
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
            except TimeoutError:
                self.out.write(f"{self.name:<6}| did not stop within {grace:.0f} s: killed\n")
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        return await self.wait()

    def last_lines(self) -> str:
        if not self.tail:
            return "    (no output)"
        return "\n".join(f"    {line}" for line in self.tail)

    def record_failure(self, now: float) -> int:
        """Remember an unexpected exit; how many happened within the failure window."""
        self.failures.append(now)
        while self.failures and now - self.failures[0] > FAILURE_WINDOW:
            self.failures.popleft()
        return len(self.failures)


@dataclass
class RunOptions:
    data_dir: Path
    config: Path
    host: str
    api_port: int
    engine_port: int
    metrics_port: int
    database_url: str
    web_dir: Path | None
    sim: bool
    sim_rate: float | None
    seed: int | None
    demo_password: str | None
    start_timeout: float
    python: str = sys.executable

    @property
    def engine_address(self) -> str:
        return f"{connect_host(self.host)}:{self.engine_port}"

    @property
    def api_url(self) -> str:
        return f"http://{url_host(connect_host(self.host))}:{self.api_port}"


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    # The package may run from a source checkout that is not installed; children must
    # import the same code as the supervisor.
    src = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    return env


def engine_argv(opts: RunOptions) -> list[str]:
    return [
        opts.python, "-m", "hft.cli", "engine",
        "--config", str(opts.config),
        "--host", opts.host,
        "--port", str(opts.engine_port),
        "--data-dir", str(opts.data_dir / "engine"),
        "--metrics-port", str(opts.metrics_port),
    ]  # fmt: skip


def api_argv(opts: RunOptions) -> list[str]:
    argv = [
        opts.python, "-m", "hft.cli", "api",
        "--config", str(opts.config),
        "--host", opts.host,
        "--port", str(opts.api_port),
        "--engine-address", opts.engine_address,
        "--data-dir", str(opts.data_dir),
        "--database-url", opts.database_url,
    ]  # fmt: skip
    if opts.web_dir is not None:
        argv += ["--web-dir", str(opts.web_dir)]
    return argv


def sim_argv(opts: RunOptions) -> list[str]:
    argv = [
        opts.python, "-m", "hft.cli", "simulate",
        "--api", opts.api_url,
        "--config", str(opts.config),
        "--data-dir", str(opts.data_dir),
    ]  # fmt: skip
    if opts.sim_rate is not None:
        argv += ["--rate", str(opts.sim_rate)]
    if opts.seed is not None:
        argv += ["--seed", str(opts.seed)]
    return argv


async def engine_serving(address: str, rpc_seconds: float = 2.0) -> bool:
    """True when the engine at `address` answers grpc.health.v1 Check with SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=rpc_seconds)
        except grpc.aio.AioRpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


async def api_healthy(url: str, request_seconds: float = 2.0) -> bool:
    """True when GET {url}/health answers 200."""
    try:
        async with httpx.AsyncClient(timeout=request_seconds) as http:
            return (await http.get(url + "/health")).status_code == 200
    except httpx.HTTPError:
        return False


async def wait_ready(child: Child, probe: Callable[[], Awaitable[bool]], limit: float) -> None:
    """Wait until `probe` succeeds; StartError with the child's last lines on exit or timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        if not child.running:
            code = await child.wait()
            raise StartError(
                f"the {child.name} exited with code {code} while starting. Last lines:\n"
                + child.last_lines()
            )
        if await probe():
            return
        if loop.time() > deadline:
            raise StartError(
                f"the {child.name} did not become ready within {limit:.0f} s "
                f"(raise --start-timeout if it is recovering a large journal). Last lines:\n"
                + child.last_lines()
            )
        await asyncio.sleep(0.2)


def read_demo_marker(data_dir: Path) -> dict[str, str] | None:
    try:
        data = json.loads((data_dir / DEMO_MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_demo_marker(data_dir: Path, note: str) -> None:
    """Remember that the demo user exists; the password itself is never written down."""
    marker = {"username": DEMO_USERNAME, "created_at": datetime.now(UTC).isoformat(), "note": note}
    tmp = data_dir / (DEMO_MARKER + ".tmp")
    tmp.write_text(json.dumps(marker) + "\n")
    tmp.replace(data_dir / DEMO_MARKER)


async def ensure_demo_user(opts: RunOptions) -> str:
    """Create the demo user on first start; the login hint to print."""
    if read_demo_marker(opts.data_dir) is not None:
        hint = f"{DEMO_USERNAME} with the password printed when it was created"
        if opts.demo_password:
            hint += " (--demo-password only applies when the user is created)"
        return hint
    password = opts.demo_password or generate_password()
    async with httpx.AsyncClient(base_url=opts.api_url, timeout=15.0) as http:
        for attempt in range(10):
            try:
                resp = await http.post(
                    "/api/v1/auth/register",
                    json={"username": DEMO_USERNAME, "password": password},
                )
            except httpx.HTTPError as exc:
                resp = None
                error = repr(exc)
            if resp is not None and resp.status_code in (200, 201):
                write_demo_marker(opts.data_dir, "created by hft run")
                shown = "" if opts.demo_password else "   (shown only this once: note it)"
                return f"{DEMO_USERNAME} / {password}{shown}"
            if resp is not None and resp.status_code == 409:
                write_demo_marker(opts.data_dir, "existed already in the database")
                return f"{DEMO_USERNAME} (existed already in this database; password unchanged)"
            if resp is not None and resp.status_code not in (429, 503):
                error = f"{resp.status_code} {resp.text[:300]}"
                break
            if resp is not None:
                error = f"{resp.status_code} {resp.text[:300]}"
            await asyncio.sleep(min(5.0, 0.5 * 2**attempt))
    return f"(the demo user could not be created: {error}; register one in the UI)"


class Supervisor:
    """Starts, watches and stops the children; see the module docstring."""

    def __init__(self, opts: RunOptions, out: TextIO = sys.stdout) -> None:
        self.opts = opts
        self.out = out
        self.stopping = asyncio.Event()
        self.failed: str | None = None
        env = child_env()
        api_env = dict(env)
        # One terminal shows three services: the backend's per-request access log would
        # drown everything else, and plain lines read better than JSON here. All of it can
        # be turned back on through the environment.
        api_env.setdefault("HFT_ACCESS_LOG", "false")
        api_env.setdefault("HFT_LOG_JSON", "false")
        engine_env = dict(env)
        engine_env.setdefault("HFT_ENGINE_LOG_JSON", "false")
        self.engine = Child("engine", engine_argv(opts), engine_env, out=out)
        self.api = Child("api", api_argv(opts), api_env, out=out)
        self.sim = Child("sim", sim_argv(opts), dict(env), out=out) if opts.sim else None
        self.watchers: list[asyncio.Task[None]] = []

    @property
    def children(self) -> list[Child]:
        return [c for c in (self.engine, self.api, self.sim) if c is not None]

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def check_ports(self) -> None:
        opts = self.opts
        wanted = [
            ("backend", opts.api_port, "--api-port"),
            ("engine", opts.engine_port, "--engine-port"),
        ]
        if opts.metrics_port:
            wanted.append(("engine metrics", opts.metrics_port, "--metrics-port"))
        ports = [p for _, p, _ in wanted]
        if len(set(ports)) != len(ports):
            raise StartError(f"two services would share a port: {ports}")
        for what, port, flag in wanted:
            if not port_available(opts.host, port):
                raise StartError(
                    f"port {port} on {opts.host} ({what}) is already in use: is another "
                    f"`hft run` or `hft {what.split()[0].replace('backend', 'api')}` running? "
                    f"Stop it or choose another port with {flag}."
                )

    async def start(self) -> None:
        """Start engine, backend, demo user and simulation in order; StartError on failure."""
        opts = self.opts
        self.check_ports()
        (opts.data_dir / "engine").mkdir(parents=True, exist_ok=True)
        self.say(
            f"starting the engine (gRPC {opts.engine_address}, data {opts.data_dir / 'engine'})"
        )
        await self.engine.start()
        await wait_ready(
            self.engine, lambda: engine_serving(opts.engine_address), opts.start_timeout
        )
        self.say(f"starting the backend ({opts.api_url}, {describe_database(opts.database_url)})")
        await self.api.start()
        await wait_ready(self.api, lambda: api_healthy(opts.api_url), opts.start_timeout)
        login = await ensure_demo_user(opts)
        if self.sim is not None:
            await self.sim.start()
        self.banner(login)

    def banner(self, login: str) -> None:
        opts = self.opts
        ui = (
            f"{opts.api_url}/"
            if opts.web_dir is not None
            else "(web UI not built: make run builds it)"
        )
        sim = "on: simulated traders quote every symbol" if self.sim else "off (--no-sim)"
        lines = [
            "",
            "The HFT platform is running.",
            f"  Web UI      {ui}",
            f"  API docs    {opts.api_url}/docs",
            f"  gRPC        {opts.engine_address}  (grpcurl -plaintext {opts.engine_address} list)",
            f"  Log in as   {login}",
            f"  Data        {opts.data_dir}  ({describe_database(opts.database_url)})",
            f"  Simulation  {sim}",
            "Press Ctrl-C to stop (the engine writes a snapshot; the next `hft run` resumes).",
            "",
        ]
        self.say("\n".join(lines))

    async def watch(self, child: Child) -> None:
        """Restart `child` whenever it exits unexpectedly; give up after repeated failures."""
        while not self.stopping.is_set():
            code = await child.wait()
            if self.stopping.is_set():
                return
            count = child.record_failure(time.monotonic())
            if count >= MAX_FAILURES:
                self.failed = (
                    f"the {child.name} exited {count} times in {FAILURE_WINDOW / 60:.0f} minutes "
                    f"(last exit code {code}); giving up. Last lines:\n{child.last_lines()}"
                )
                self.stopping.set()
                return
            delay = RESTART_BACKOFF[min(count, len(RESTART_BACKOFF)) - 1]
            self.say(f"{child.name:<6}| exited with code {code}; restarting in {delay:.0f} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
            if self.stopping.is_set():
                return
            try:
                await child.start()
            except OSError as exc:
                self.failed = f"cannot restart the {child.name}: {exc}"
                self.stopping.set()
                return

    async def shutdown(self) -> None:
        """Stop the simulation, then the backend, then the engine (snapshot), each bounded."""
        for child in (self.sim, self.api, self.engine):
            if child is None or child.proc is None:
                continue
            was_running = child.running
            if was_running:
                self.say(f"stopping the {child.name}")
            code = await child.stop(STOP_TIMEOUTS[child.name])
            clean = code in (0, None, -signal.SIGTERM, 128 + signal.SIGTERM)
            # An engine that had already died was reported when it did.
            if was_running and not clean and child is self.engine:
                self.say(
                    f"engine exited with code {code} while stopping. "
                    f"Last lines:\n{child.last_lines()}"
                )
        for task in self.watchers:
            task.cancel()
        await asyncio.gather(*self.watchers, return_exceptions=True)

    async def run(self) -> int:
        """The whole life of the platform; the exit code of `hft run`."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stopping.set)
        try:
            starting = asyncio.create_task(self.start())
            stop_wait = asyncio.create_task(self.stopping.wait())
            done, _ = await asyncio.wait({starting, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if starting not in done:
                # Ctrl-C while starting: stop whatever is already up.
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError, StartError):
                    await starting
                await self.shutdown()
                return 0
            stop_wait.cancel()
            try:
                starting.result()
            except StartError as exc:
                self.say(f"hft run: {exc}")
                await self.shutdown()
                return 1
            self.watchers = [asyncio.create_task(self.watch(c)) for c in self.children]
            await self.stopping.wait()
            if self.failed:
                self.say(f"hft run: {self.failed}")
            await self.shutdown()
            if self.failed:
                return 1
            self.say("stopped.")
            return 0
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from exc
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="hft run",
        description="Run the whole platform: engine, backend with the web UI, market simulation.",
    )
    add = p.add_argument
    add(
        "--data-dir",
        type=Path,
        default=Path(env("HFT_DATA_DIR", "data")),
        help="journal, snapshots, SQLite database, secrets (env HFT_DATA_DIR; ./data)",
    )
    add(
        "--database-url",
        default=env("HFT_DATABASE_URL"),
        help="postgresql+asyncpg://user@host/db (env HFT_DATABASE_URL; default SQLite)",
    )
    add(
        "--config",
        type=Path,
        default=None,
        help="platform config (env HFT_CONFIG; default config/default.yaml)",
    )
    add(
        "--host",
        default=env("HFT_HOST", "127.0.0.1"),
        help="address the backend and engine bind (127.0.0.1; 0.0.0.0 = every interface)",
    )
    add(
        "--api-port",
        type=_port,
        default=_port(env("HFT_API_PORT", "8000")),
        help="backend port (8000)",
    )
    add(
        "--engine-port",
        type=_port,
        default=_port(env("HFT_ENGINE_PORT", "50051")),
        help="engine gRPC port (50051)",
    )
    add(
        "--metrics-port",
        type=_port,
        default=_port(env("HFT_ENGINE_METRICS_PORT", "9101")),
        help="engine Prometheus port (9101; 0 = off)",
    )
    add("--web-dir", type=Path, default=None, help="built web UI (default web/dist if built)")
    add("--no-sim", action="store_true", help="start an empty market: no simulated traders")
    add("--sim-rate", type=float, default=None, help="simulation orders/s (config sim.rate)")
    add("--seed", type=int, default=None, help="seed of the simulation's decisions")
    add(
        "--demo-password",
        default=env("HFT_DEMO_PASSWORD"),
        help="demo user's password on first start (default: generated, printed once)",
    )
    add(
        "--start-timeout",
        type=float,
        default=300.0,
        help="seconds to wait for each service to become ready (300)",
    )
    return p  # fmt: skip


def options_from_args(args: argparse.Namespace) -> RunOptions:
    """Resolve paths and defaults; StartError for a missing config or web dir."""
    data_dir = args.data_dir.expanduser().resolve()
    config = args.config or (
        Path(os.environ["HFT_CONFIG"]) if os.environ.get("HFT_CONFIG") else None
    )
    if config is None:
        config = find_file("config/default.yaml")
        if config is None:
            raise StartError("no config/default.yaml here or in the source tree; pass --config")
    elif not config.exists():
        raise StartError(f"config file not found: {config}")
    if args.web_dir is not None:
        if not (args.web_dir / "index.html").exists():
            raise StartError(f"--web-dir {args.web_dir}: no index.html there (build the UI first)")
        web_dir: Path | None = args.web_dir.resolve()
    else:
        found = find_file("web/dist/index.html")
        web_dir = found.parent if found is not None else None
    database_url = args.database_url or f"sqlite+aiosqlite:///{data_dir / 'hft.db'}"
    return RunOptions(
        data_dir=data_dir,
        config=config.resolve(),
        host=args.host,
        api_port=args.api_port,
        engine_port=args.engine_port,
        metrics_port=args.metrics_port,
        database_url=database_url,
        web_dir=web_dir,
        sim=not args.no_sim,
        sim_rate=args.sim_rate,
        seed=args.seed,
        demo_password=args.demo_password,
        start_timeout=args.start_timeout,
    )


def lock_data_dir(data_dir: Path) -> TextIO:
    """Hold an exclusive lock on `data_dir` for the life of the process.

    Two platforms on one data directory would write one journal from two engines; the
    second `hft run` is refused with the first one's pid. The returned file must stay open.
    """
    path = data_dir / "run.lock"
    fh = path.open("a+")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.seek(0)
        owner = fh.read().strip() or "unknown"
        fh.close()
        raise StartError(
            f"{data_dir} is in use by another `hft run` (pid {owner}); stop it first "
            "or choose another --data-dir"
        ) from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    return fh


def main(argv: list[str]) -> int:
    """Entry point of `hft run`; returns the exit code (0 after a clean Ctrl-C)."""
    args = build_parser().parse_args(argv)
    try:
        opts = options_from_args(args)
        opts.data_dir.mkdir(parents=True, exist_ok=True)
        lock = lock_data_dir(opts.data_dir)
    except (StartError, OSError) as exc:
        print(f"hft run: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(Supervisor(opts).run())
    except StartError as exc:
        print(f"hft run: {exc}", file=sys.stderr)
        return 1
    finally:
        lock.close()
