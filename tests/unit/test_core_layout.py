"""The C++ Command/Event structs and the numpy dtypes describe the same bytes."""

from __future__ import annotations

import numpy as np
import pytest

from hft import _core
from hft.engine.types import COMMAND_DTYPE, EVENT_DTYPE


@pytest.mark.parametrize(("prefix", "dtype"), [("command", COMMAND_DTYPE), ("event", EVENT_DTYPE)])
def test_layout_matches_dtype(prefix: str, dtype: np.dtype) -> None:
    layout = _core.layout()
    assert layout[f"{prefix}.size"] == dtype.itemsize
    public = [n for n in dtype.names or () if not n.startswith("_")]
    native = sorted(
        k.split(".", 1)[1] for k in layout if k.startswith(prefix + ".") and k != f"{prefix}.size"
    )
    assert native == sorted(public)
    for name in public:
        assert layout[f"{prefix}.{name}"] == dtype.fields[name][1], name


def test_event_round_trip_through_dtype() -> None:
    core = _core.Core()
    core.add_instrument(1, "T", 1, 100, 0, 0, 1)
    assert core.submit(7, 3, 1, 2, 1, 1, 123, 4, ts=99) == 2
    events = core.take_events().view(EVENT_DTYPE)
    assert events[0]["order_id"] == 7
    assert events[0]["account_id"] == 3
    assert events[0]["price"] == 123
    assert events[0]["qty"] == 4
    assert events[0]["ts"] == 99
    assert events[1]["book_seq"] == 1
    assert core.pending_events() == 0
