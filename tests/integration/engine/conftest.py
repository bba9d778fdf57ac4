"""Fixtures: a real `hft engine` subprocess on a free port with a temporary data dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hft.engine.testing import EngineProcess


@pytest.fixture
def engine_dir(tmp_path: Path) -> Path:
    return tmp_path / "engine"


@pytest.fixture
def engine(engine_dir: Path) -> Iterator[EngineProcess]:
    proc = EngineProcess(engine_dir)
    proc.start()
    try:
        yield proc
    finally:
        proc.kill()
