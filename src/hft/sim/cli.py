"""`hft simulate`: a live market of simulated traders against a running backend."""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import signal
import sys
from pathlib import Path
from typing import Any

import yaml

from hft.sim.client import load_secret
from hft.sim.runner import SimConfig, Simulation

log = logging.getLogger("hft.sim")


def default_config_path() -> Path:
    """config/default.yaml in the working directory, else the one beside the sources."""
    local = Path("config/default.yaml")
    if local.exists():
        return local
    return Path(__file__).resolve().parents[3] / "config" / "default.yaml"


def load_sim_config(path: Path) -> SimConfig:
    """The `sim:` section of the platform config file; ValueError with the file name on errors."""
    try:
        data: Any = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    try:
        return SimConfig.from_mapping(data.get("sim"))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from exc
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hft simulate",
        description="Market makers, noise and momentum traders trading through the backend's "
        "REST API as ordinary users (sim-mm-<SYMBOL>-<n>, sim-noise-<n>, sim-momentum-<n>).",
    )
    p.add_argument(
        "--api",
        default=os.environ.get("HFT_SIM_API", "http://127.0.0.1:8000"),
        help="backend base URL",
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="platform config (env HFT_CONFIG); uses its sim: section",
    )
    p.add_argument(
        "--seed", type=int, default=None, help="seed of every decision (random when not given)"
    )
    p.add_argument(
        "--rate",
        type=_positive,
        default=None,
        help="orders/s of all traders together (config: sim.rate)",
    )
    p.add_argument(
        "--symbols", default="", help="comma-separated symbols (default: every trading instrument)"
    )
    p.add_argument("--duration", type=_positive, default=None, help="stop after this many seconds")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("HFT_DATA_DIR", "data")),
        help="where the traders' secret is kept (env HFT_DATA_DIR, default ./data)",
    )
    p.add_argument(
        "--secret-file",
        type=Path,
        default=None,
        help="hex secret the traders' passwords derive from (default DATA_DIR/sim/secret)",
    )
    p.add_argument(
        "--status-interval", type=_positive, default=10.0, help="seconds between status lines"
    )
    p.add_argument("--log-level", default=os.environ.get("HFT_LOG_LEVEL", "INFO"))
    return p


def main(argv: list[str]) -> int:
    """Entry point of `hft simulate`; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Requests are logged by the backend; one line per request here would drown the rest.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    config_path = args.config or Path(os.environ.get("HFT_CONFIG") or default_config_path())
    try:
        config = load_sim_config(config_path)
        secret_file = args.secret_file or Path(
            os.environ.get("HFT_SIM_SECRET_FILE") or args.data_dir / "sim" / "secret"
        )
        # A new secret means new users: register them first instead of failing a login.
        new_users = not secret_file.exists()
        secret = load_secret(secret_file)
        sim = Simulation(
            args.api,
            config,
            secret,
            seed=args.seed,
            rate=args.rate,
            symbols=[s for s in args.symbols.split(",") if s.strip()],
            duration=args.duration,
            status_interval=args.status_interval,
            new_users=new_users,
        )
    except (ValueError, OSError) as exc:
        print(f"hft simulate: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_run(sim))


async def _run(sim: Simulation) -> int:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, sim.stop.set)
    return await sim.run()
