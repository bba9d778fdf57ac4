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


def _two_buys() -> np.ndarray:
    cmds = np.zeros(2, dtype=COMMAND_DTYPE)
    cmds["kind"] = 1
    cmds["symbol_id"] = 1
    cmds["side"], cmds["type"], cmds["tif"] = 1, 1, 1
    cmds["price"] = 5
    cmds["qty"] = 1
    cmds["order_id"] = [1, 2]
    return cmds


def test_process_accepts_records_at_any_alignment() -> None:
    core = _core.Core()
    core.add_instrument(1, "T", 1, 100, 0, 0, 1)
    raw = _two_buys().view(np.uint8)
    shifted = np.zeros(raw.size + 1, dtype=np.uint8)
    shifted[1:] = raw
    assert core.process(shifted[1:]) == 4
    events = core.take_events().view(EVENT_DTYPE)
    assert list(events["cmd_index"]) == [0, 0, 1, 1]
    assert core.process(bytes(raw)) == 2  # both ids are live now: two rejects
    assert core.live_orders() == 2


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (np.zeros(55, dtype=np.uint8), ValueError),
        (np.zeros((4, 56), dtype=np.uint8)[:, ::2], TypeError),
        ("not a buffer", TypeError),
        (np.zeros(1, dtype=COMMAND_DTYPE), ValueError),  # kind 0 is not a command
    ],
)
def test_process_rejects_malformed_batches_without_running_any(
    payload: object, error: type[Exception]
) -> None:
    core = _core.Core()
    core.add_instrument(1, "T", 1, 100, 0, 0, 1)
    good = _two_buys()
    if isinstance(payload, np.ndarray) and payload.dtype == COMMAND_DTYPE:
        payload = np.concatenate([good, payload])
    before = core.state_hash()
    with pytest.raises(error):
        core.process(payload)
    assert core.state_hash() == before
    assert core.pending_events() == 0


def test_out_of_range_arguments_raise() -> None:
    core = _core.Core()
    with pytest.raises(TypeError):
        core.submit(-1, 1, 1, 1, 1, 1, 1, 1)
    with pytest.raises(TypeError):
        core.cancel(1, 2**64)
    with pytest.raises(ValueError, match="max_orders"):
        _core.Core(0)
    with pytest.raises(ValueError, match="max_open_orders"):
        core.set_max_open_orders(1, -1)
    core.add_instrument(1, "T", 1, 100, 0, 0, 1)
    image = core.snapshot()
    with pytest.raises(ValueError, match="empty"):
        core.restore(image)
    with pytest.raises(ValueError, match="checksum"):
        _core.Core().restore(image[:-1] + bytes([image[-1] ^ 1]))
