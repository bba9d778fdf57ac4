"""`hft bench`: generate workloads and run benchmark modules (see `hft.bench`)."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import shlex
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import hft.bench
from hft.bench import report, workload
from hft.bench._baseline import BaselineError
from hft.engine import CoreUnavailableError

# Helper modules of the package, never benchmarks themselves.
_NOT_BENCHMARKS = {"cli", "workload", "report"}


def available_modules() -> list[str]:
    """Names of the benchmark modules present in hft.bench, core first."""
    names = [
        m.name
        for m in pkgutil.iter_modules(hft.bench.__path__)
        if m.name not in _NOT_BENCHMARKS and not m.name.startswith("_")
    ]
    return sorted(names, key=lambda n: (n != "core", n))


def _load(name: str) -> ModuleType | None:
    try:
        module = importlib.import_module(f"hft.bench.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"hft.bench.{name}":
            return None
        raise
    return module if callable(getattr(module, "run", None)) else None


def _parser_for(modules: list[ModuleType], prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog)
    for m in modules:
        add: Callable[[argparse.ArgumentParser], None] | None = getattr(m, "add_arguments", None)
        if add is not None:
            add(parser)
    return parser


def _table(result: dict[str, Any]) -> str:
    rows = result.get("rows") or []
    return report.markdown_table(rows) if rows else ""


def _workload_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="hft bench workload", description="Write a seeded order-flow workload (.npy + .csv)."
    )
    p.add_argument("--ops", type=int, default=1_000_000, help="number of operations")
    p.add_argument("--symbols", type=int, default=1, help="number of symbols (ids 1..K)")
    p.add_argument("--seed", type=int, default=1, help="random seed")
    p.add_argument("--out", required=True, help="output file; FILE.npy and FILE.csv are written")
    args = p.parse_args(argv)
    if args.ops < 0 or args.symbols < 1:
        p.error("--ops must be >= 0 and --symbols >= 1")
    t0 = time.perf_counter()
    cmds = workload.generate(args.ops, args.symbols, args.seed)
    paths = workload.save(cmds, args.out)
    print(
        json.dumps(
            {
                "ops": len(cmds),
                "symbols": args.symbols,
                "seed": args.seed,
                "files": [str(x) for x in paths],
                "seconds": round(time.perf_counter() - t0, 2),
            }
        )
    )
    return 0


def _run_one(name: str, argv: list[str]) -> int:
    module = _load(name)
    if module is None:
        print(f"hft bench: no benchmark module {name!r}", file=sys.stderr)
        return 2
    args = _parser_for([module], f"hft bench {name}").parse_args(argv)
    try:
        result = module.run(args)
    except CoreUnavailableError as exc:
        print(f"hft bench {name}: {exc}", file=sys.stderr)
        return 1
    except BaselineError as exc:
        print(f"hft bench {name}: {exc}", file=sys.stderr)
        return 2
    table = _table(result)
    if table:
        print(table, file=sys.stderr)
    print(json.dumps(result, indent=2, default=str))
    return 0


def _all_main(argv: list[str]) -> int:
    modules = [(n, m) for n in available_modules() if (m := _load(n)) is not None]
    top = argparse.ArgumentParser(
        prog="hft bench all",
        description="Run every benchmark module; each takes the options it knows "
        "(the same option may mean something to several modules, e.g. --ops).",
    )
    top.add_argument("--report", help="write a markdown report to this file")
    top.add_argument("--only", help="comma-separated modules to run (default: all of them)")
    top.add_argument("--skip", default="", help="comma-separated modules not to run")
    if any(a in {"-h", "--help"} for a in argv):
        top.print_help()
        for name, module in modules:
            print(f"\n{name}:")
            _parser_for([module], f"hft bench {name}").print_help()
        return 0
    known, rest = top.parse_known_args(argv)
    names = [n for n, _ in modules]
    chosen = known.only.split(",") if known.only else names
    skipped = {n for n in known.skip.split(",") if n}
    missing = sorted((set(chosen) | skipped) - set(names))
    if missing:
        top.error(f"no benchmark module {', '.join(missing)} (have: {', '.join(names)})")
    modules = [(n, m) for n, m in modules if n in chosen and n not in skipped]
    parsed: list[tuple[str, ModuleType, argparse.Namespace]] = []
    unknown_to_all: set[str] | None = None
    for name, module in modules:
        ns, unknown = _parser_for([module], f"hft bench {name}").parse_known_args(rest)
        parsed.append((name, module, ns))
        unknown_to_all = set(unknown) if unknown_to_all is None else unknown_to_all & set(unknown)
    stray = sorted(a for a in unknown_to_all or () if a.startswith("-"))
    if stray:
        top.error(f"unrecognized arguments: {' '.join(stray)}")
    results: dict[str, dict[str, Any]] = {}
    for name, module, ns in parsed:
        print(f"hft bench: running {name} ...", file=sys.stderr, flush=True)
        try:
            results[name] = module.run(ns)
        except Exception as exc:  # one failing benchmark must not lose the others
            results[name] = {"title": name, "error": f"{type(exc).__name__}: {exc}"}
        table = _table(results[name])
        if table:
            print(table, file=sys.stderr)
    print(json.dumps(results, indent=2, default=str))
    if known.report:
        command = "hft bench all " + shlex.join(argv)
        report.write(known.report, results, command)
        print(f"hft bench: report written to {known.report}", file=sys.stderr)
    return 0 if all("error" not in r for r in results.values()) else 1


def main(argv: list[str]) -> int:
    """Entry point of `hft bench`."""
    names = available_modules()
    if not argv or argv[0] in {"-h", "--help"}:
        print("usage: hft bench {workload,all," + ",".join(names) + "} [options]")
        print("\n  workload   write a seeded workload (.npy + .csv)")
        print("  all        run every benchmark module; --report FILE writes markdown")
        for n in names:
            print(f"  {n:<10} run the {n} benchmark (JSON on stdout, table on stderr)")
        return 0
    what, rest = argv[0], argv[1:]
    if what == "workload":
        return _workload_main(rest)
    if what == "all":
        return _all_main(rest)
    return _run_one(what, rest)
