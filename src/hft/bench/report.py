"""Markdown report of benchmark results, with the machine they ran on."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
from typing import Any

import numpy as np


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _compiler() -> str:
    for cc in ("c++", "g++", "clang++"):
        path = shutil.which(cc)
        if path:
            out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
            first = out.stdout.splitlines()[0] if out.stdout else ""
            if first:
                return first
    return "unknown"


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"') + f" ({platform.release()})"
    except OSError:
        pass
    return platform.platform()


def machine_info() -> dict[str, str]:
    """CPU model, cores, RAM, OS, Python, numpy and C++ compiler of this machine."""
    import psutil

    return {
        "CPU": _cpu_model(),
        "cores (logical)": str(os.cpu_count()),
        "RAM": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "OS": _os_name(),
        "Python": platform.python_version(),
        "numpy": np.__version__,
        "C++ compiler": _compiler(),
    }


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.1f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v).replace("|", "\\|")


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """A markdown table of flat dicts (columns: the keys of all rows, in first-seen order)."""
    if not rows:
        return ""
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(_cell(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def render(results: dict[str, dict[str, Any]], command: str) -> str:
    """The whole report: machine, command, one section per benchmark module."""
    out = [
        "# Benchmarks",
        "",
        "Measured numbers, written by `hft bench all` (`make bench`); they are not "
        "asserted anywhere. Re-run on your machine to compare.",
        "",
        f"Run at {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} with:",
        "",
        "```",
        command,
        "```",
        "",
        "## Machine",
        "",
        markdown_table([{"": k, "value": v} for k, v in machine_info().items()]),
        "",
    ]
    for name, result in results.items():
        out += [f"## {result.get('title', name)}", ""]
        if "error" in result:
            out += [f"Failed: `{result['error']}`", ""]
            continue
        table = markdown_table(result.get("rows") or [])
        if table:
            out += [table, ""]
        out += [f"* {note}" for note in result.get("notes", [])]
        out += [
            "",
            "<details><summary>raw results</summary>",
            "",
            "```json",
            json.dumps(result, indent=2, default=str),
            "```",
            "",
            "</details>",
            "",
        ]
    return "\n".join(out)
