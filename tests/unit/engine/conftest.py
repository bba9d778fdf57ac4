"""Fixtures for the engine tests: every book test runs on the C++ core and the reference."""

from __future__ import annotations

import os

import pytest

from hft.engine import Engine, Instrument, ReferenceEngine, core_available

EngineLike = Engine | ReferenceEngine


def _engine_params() -> list[object]:
    marks: list[pytest.MarkDecorator] = []
    # In CI the extension is always built: a missing core is a failure there, not a skip.
    if not core_available() and not os.environ.get("CI"):
        marks.append(pytest.mark.skip(reason="hft._core is not built (make build)"))
    return [pytest.param(Engine, id="core", marks=marks), pytest.param(ReferenceEngine, id="ref")]


@pytest.fixture(params=_engine_params())
def engine_cls(request: pytest.FixtureRequest) -> type[EngineLike]:
    cls: type[EngineLike] = request.param
    return cls


# Symbol 1: plain. Symbol 2: min/max quantity and a 10 % band around 10_000 ticks.
SYM = 1
BANDED = 2


@pytest.fixture
def eng(engine_cls: type[EngineLike]) -> EngineLike:
    e = engine_cls()
    e.add_instrument(Instrument(SYM, "AAA"))
    e.add_instrument(
        Instrument(BANDED, "BBB", min_qty=10, max_qty=1000, band_bps=1000, reference_price=10_000)
    )
    return e
