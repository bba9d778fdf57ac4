"""`hft demo` replays a real stream; its numbers agree with the reference book."""

from __future__ import annotations

import re

import numpy as np
import pytest

from hft.bench import workload as wl
from hft.engine import EventType, ReferenceEngine, core_available
from hft.engine.demo import main

pytestmark = pytest.mark.skipif(not core_available(), reason="hft._core is not built")


def test_demo_prints_books_and_stats(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--ops", "6000", "--symbols", "2", "--seed", "3", "--levels", "3"]) == 0
    out = capsys.readouterr().out
    assert "S1 (symbol 1)  top of book: bid " in out
    assert "S2 (symbol 2)" in out
    ref = ReferenceEngine()
    for inst in wl.instruments(2):
        ref.add_instrument(inst)
    ev = ref.process(wl.generate(6000, 2, 3))
    trades = int(np.count_nonzero(ev["type"] == EventType.TRADE))
    m = re.search(r"trades\s+([\d,]+)", out)
    assert m is not None
    assert int(m.group(1).replace(",", "")) == trades
    m = re.search(r"live orders\s+([\d,]+)", out)
    assert m is not None
    assert int(m.group(1).replace(",", "")) == ref.live_orders()
    assert f"{ref.state_hash():x}" in out


def test_demo_rejects_bad_arguments() -> None:
    with pytest.raises(SystemExit):
        main(["--ops", "0"])
