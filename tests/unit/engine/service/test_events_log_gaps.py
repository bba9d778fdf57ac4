"""The events log skips commands that produced no execution event; recovery must accept that."""

from pathlib import Path

from hft.engine.journal import SegmentLog


def _events_log(directory: Path) -> SegmentLog:
    log = SegmentLog(directory, "events", 1 << 20, gaps="any")
    log.open()
    return log


def test_truncate_after_accepts_sequence_gaps(tmp_path: Path) -> None:
    log = _events_log(tmp_path)
    # Sequences 2 and 4 produced no execution events (e.g. a cancel-all with nothing open).
    for seq in (1, 3, 5):
        log.append(1, seq, seq, f"events of {seq}".encode())
    log.close()

    reopened = _events_log(tmp_path)
    assert [r.first_seq for r in reopened.records_on_open] == [1, 3, 5]
    reopened.truncate_after(3)
    reopened.close()

    again = _events_log(tmp_path)
    assert [r.first_seq for r in again.records_on_open] == [1, 3]
    again.append(1, 4, 4, b"events of 4")
    again.close()
    assert [r.first_seq for r in _events_log(tmp_path).records_on_open] == [1, 3, 4]
