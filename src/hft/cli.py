"""The `hft` command: a thin dispatcher; each area owns its subcommand's parser."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

# name -> (module, one-line help). Each module exposes `main(argv: list[str]) -> int`.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("hft.run", "run the whole platform: engine, backend + UI, market simulation"),
    "engine": ("hft.engine.server", "run the engine service (gRPC, journal, snapshots)"),
    "api": ("hft.api.main", "run the backend (REST, WebSocket, web UI)"),
    "simulate": ("hft.sim.cli", "run the market simulation against a running backend"),
    "user": ("hft.db.cli", "manage users (create, list, set role)"),
    "db": ("hft.db.cli", "database schema: upgrade, current revision"),
    "bench": ("hft.bench.cli", "run benchmarks and write reports"),
    "demo": ("hft.engine.demo", "replay a generated order stream through the core"),
}


def _usage() -> str:
    lines = ["usage: hft COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<10} {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "Run `hft COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    if args[0] in {"-V", "--version"}:
        from hft import __version__

        print(f"hft {__version__}")
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"hft: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    entry: Callable[[list[str]], int] = module.main
    # `hft user ...` and `hft db ...` share a module; it gets its own name first.
    if COMMANDS[name][0] == "hft.db.cli":
        rest = [name, *rest]
    try:
        return int(entry(rest) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
