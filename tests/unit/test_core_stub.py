"""The committed src/hft/_core.pyi is what nanobind.stubgen generates from the built module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STUB = ROOT / "src" / "hft" / "_core.pyi"


def test_core_stub_is_current(tmp_path: Path) -> None:
    out = tmp_path / "_core.pyi"
    subprocess.run(
        [sys.executable, "-m", "nanobind.stubgen", "-q", "-m", "hft._core", "-o", str(out)],
        check=True,
    )
    # The committed stub is the generated one after `ruff format` (line length 100).
    ruff = Path(sys.executable).with_name("ruff")
    subprocess.run(
        [str(ruff), "format", "--quiet", "--config", str(ROOT / "pyproject.toml"), str(out)],
        check=True,
    )
    assert out.read_text() == STUB.read_text(), (
        "src/hft/_core.pyi is stale: run `python -m nanobind.stubgen -m hft._core -o "
        "src/hft/_core.pyi && ruff format src/hft/_core.pyi`"
    )
