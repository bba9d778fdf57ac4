"""The Engine facade itself: types it returns, the batch path, a missing extension."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from hft.engine import (
    COMMAND_DTYPE,
    EVENT_DTYPE,
    Engine,
    Event,
    EventType,
    Instrument,
    OrderState,
    Side,
    StpMode,
    TimeInForce,
    core_available,
)

pytestmark = pytest.mark.skipif(not core_available(), reason="hft._core is not built")


def test_events_are_typed_objects() -> None:
    e = Engine()
    e.add_instrument(Instrument(1, "AAA"))
    ev = e.submit(1, 2, 1, Side.BUY, 1, TimeInForce.GTC, 100, 3, ts=5)
    assert all(isinstance(x, Event) for x in ev)
    assert ev[0].type is EventType.ACCEPTED
    st = e.order(1)
    assert isinstance(st, OrderState)
    assert st.side is Side.BUY
    assert st.stp is StpMode.CANCEL_MAKER


def test_per_call_returns_only_its_own_events() -> None:
    e = Engine()
    e.add_instrument(Instrument(1, "AAA"))
    # Events left in the buffer by raw core use do not leak into the next call's result.
    e.core.submit(1, 2, 1, 1, 1, 1, 100, 3, 0, 0, 0)
    assert e.core.pending_events() == 2
    ev = e.cancel(1, 2)
    assert [x.type for x in ev] == [EventType.CANCELED, EventType.BOOK_CHANGE]
    assert e.core.pending_events() == 0


def test_process_validates_its_input() -> None:
    e = Engine()
    with pytest.raises(ValueError, match="COMMAND_DTYPE"):
        e.process(np.zeros(3, dtype=EVENT_DTYPE))
    with pytest.raises(ValueError, match="1-D"):
        e.process(np.zeros((2, 2), dtype=COMMAND_DTYPE))
    assert len(e.process(np.zeros(0, dtype=COMMAND_DTYPE))) == 0


def test_process_accepts_non_contiguous_views() -> None:
    e = Engine()
    e.add_instrument(Instrument(1, "AAA"))
    c = np.zeros(4, dtype=COMMAND_DTYPE)
    c["kind"] = 1
    c["side"], c["type"], c["tif"], c["symbol_id"] = 1, 1, 1, 1
    c["order_id"] = [1, 2, 3, 4]
    c["price"], c["qty"] = 100, 1
    out = e.process(c[::2])
    assert out.dtype == EVENT_DTYPE
    assert [int(x) for x in out["order_id"][out["type"] == EventType.ACCEPTED]] == [1, 3]
    assert list(out["cmd_index"]) == [0, 0, 1, 1]


def test_missing_extension_gives_a_clear_error() -> None:
    code = (
        "import sys; sys.modules['hft._core'] = None\n"
        "from hft.engine import Engine, ReferenceEngine, CoreUnavailableError\n"
        "ReferenceEngine()\n"
        "try:\n"
        "    Engine()\n"
        "except CoreUnavailableError as e:\n"
        "    print('ok', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("ok the C++ core hft._core is not available")


def test_layout_matches_dtypes() -> None:
    from hft import _core

    layout = _core.layout()
    assert layout["command.size"] == COMMAND_DTYPE.itemsize
    assert layout["event.size"] == EVENT_DTYPE.itemsize
    for name in COMMAND_DTYPE.names or ():
        if not name.startswith("_") and f"command.{name}" in layout:
            assert layout[f"command.{name}"] == COMMAND_DTYPE.fields[name][1], name
    for name in EVENT_DTYPE.names or ():
        assert layout[f"event.{name}"] == EVENT_DTYPE.fields[name][1], name
