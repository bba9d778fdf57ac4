"""`hft api`: run the backend with uvicorn (uvloop when available, one or more workers).

Migrations run once here, before the workers start; the workers themselves skip them.
Every flag is passed to the workers through its HFT_* environment variable, so the
worker processes build the same settings.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import socket
import sys
from pathlib import Path
from types import FrameType

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from hft.api.logs import configure_logging
from hft.api.settings import Settings, load_settings
from hft.heap import tune_malloc

log = logging.getLogger("hft.api")

# CLI flag -> environment variable read by the workers' settings.
_ENV = {
    "config": "HFT_CONFIG",
    "host": "HFT_API_HOST",
    "port": "HFT_API_PORT",
    "engine_address": "HFT_ENGINE_ADDRESS",
    "database_url": "HFT_DATABASE_URL",
    "data_dir": "HFT_DATA_DIR",
    "web_dir": "HFT_WEB_DIR",
    "workers": "HFT_API_WORKERS",
    "log_level": "HFT_LOG_LEVEL",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hft api",
        description="Run the backend: REST + WebSocket API and the web UI.",
    )
    p.add_argument("--config", help="YAML config file (env HFT_CONFIG; config/default.yaml)")
    p.add_argument("--host", help="bind address (env HFT_API_HOST; 127.0.0.1)")
    p.add_argument("--port", type=int, help="bind port, 0 = any free (env HFT_API_PORT; 8000)")
    p.add_argument(
        "--engine-address", help="engine gRPC address (env HFT_ENGINE_ADDRESS; localhost:50051)"
    )
    p.add_argument(
        "--database-url",
        help="SQLAlchemy async URL (env HFT_DATABASE_URL; sqlite+aiosqlite:///<data-dir>/hft.db)",
    )
    p.add_argument("--data-dir", help="database, secrets (env HFT_DATA_DIR; ./data)")
    p.add_argument("--web-dir", help="built web UI to serve at / (env HFT_WEB_DIR; web/dist)")
    p.add_argument("--workers", type=int, help="worker processes (env HFT_API_WORKERS; 1)")
    p.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="(env HFT_LOG_LEVEL)"
    )
    return p


def app_factory() -> FastAPI:
    """Build the app in a worker from the environment (uvicorn `factory=True` target)."""
    from hft.api.app import create_app

    settings = load_settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    tune_malloc()
    return create_app(settings, server=True)


class _Server(uvicorn.Server):
    """Prints the contract's `api listening on ...` line once the app has started."""

    def __init__(self, config: uvicorn.Config, url: str) -> None:
        super().__init__(config)
        self._url = url

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # uvicorn re-raises the signal after its graceful shutdown, so the process would
        # die "by SIGTERM"; a requested, clean stop exits 0 instead (as the engine does).
        self._captured_signals.clear()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            print(f"api listening on {self._url}", flush=True)


def _migrate(settings: Settings) -> None:
    from hft.db.migrate import upgrade
    from hft.db.session import create_engine

    async def run() -> None:
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())


def _loop() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    for name, env in _ENV.items():
        value = getattr(args, name)
        if value is not None:
            os.environ[env] = str(value)
    try:
        settings = load_settings()
    except (ValidationError, ValueError) as exc:
        print(f"hft api: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, json_lines=settings.log_json)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Generated once here so that every worker reads the same secrets.
    settings.ensure_secrets()
    try:
        _migrate(settings)
    except Exception as exc:
        log.exception("database migration failed")
        print(f"hft api: database migration failed: {exc}", file=sys.stderr)
        return 1
    os.environ["HFT_RUN_MIGRATIONS"] = "false"
    if settings.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = Path(settings.data_dir) / "prometheus-multiproc"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)

    config = uvicorn.Config(
        "hft.api.main:app_factory",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop=_loop(),
        log_config=None,
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    try:
        sock = config.bind_socket()
    except SystemExit:
        print(f"hft api: cannot bind {settings.host}:{settings.port}", file=sys.stderr)
        return 1
    host, port = sock.getsockname()[:2]
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{port}"
    if settings.workers == 1:
        server = _Server(config, url)
        server.run(sockets=[sock])
        return 0 if server.started else 1
    from uvicorn.supervisors import Multiprocess

    # The workers only call listen() once their app has started (a second or two);
    # listening here already queues connections in the backlog for them, so a client
    # trusting the line below is never refused meanwhile.
    sock.listen(config.backlog)
    print(f"api listening on {url}", flush=True)
    Multiprocess(config, sockets=[sock]).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
