from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from hft.engine.journal import (
    HEADER_SIZE,
    KIND_COMMANDS,
    JournalCorruptError,
    LogReader,
    SegmentLog,
    list_segments,
)


def payload(first: int, last: int) -> bytes:
    return b"".join(i.to_bytes(8, "little") for i in range(first, last + 1))


def fill(log: SegmentLog, n: int, per: int = 3) -> None:
    seq = log.next_seq
    for _ in range(n):
        log.append(KIND_COMMANDS, seq, seq + per - 1, payload(seq, seq + per - 1))
        seq += per


def test_append_reopen_and_roll(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path, "journal", segment_bytes=1 << 16)
    log.open()
    fill(log, 3000)
    log.close()
    segs = list_segments(tmp_path, "journal")
    assert len(segs) > 1
    again = SegmentLog(tmp_path, "journal", segment_bytes=1 << 16)
    again.open()
    assert again.last_seq == 9000
    recs = again.records_on_open
    assert [r.first_seq for r in recs] == list(range(1, 9001, 3))
    assert recs[5].payload == payload(16, 18)
    with pytest.raises(RuntimeError):
        again.append(KIND_COMMANDS, 5, 6, b"x")


def test_record_from_parts_is_the_record_of_the_joined_payload(tmp_path: Path) -> None:
    joined = SegmentLog(tmp_path / "joined", "journal", segment_bytes=1 << 30)
    parted = SegmentLog(tmp_path / "parted", "journal", segment_bytes=1 << 30)
    joined.open()
    parted.open()
    # More parts than one writev takes, of uneven sizes (a group of single commands).
    parts = [payload(seq, seq + seq % 3) for seq in range(1, 3001)]
    total = sum(len(p) for p in parts)
    assert joined.append(KIND_COMMANDS, 1, 3000, b"".join(parts)) == HEADER_SIZE + total
    assert parted.append_parts(KIND_COMMANDS, 1, 3000, parts) == HEADER_SIZE + total
    assert parted.append_parts(KIND_COMMANDS, 3001, 3002, [b"", payload(1, 2)]) > 0
    joined.close()
    parted.close()
    seg_joined = list_segments(tmp_path / "joined", "journal")[0][1]
    seg_parted = list_segments(tmp_path / "parted", "journal")[0][1]
    assert seg_parted.read_bytes()[: HEADER_SIZE + total] == seg_joined.read_bytes()
    again = SegmentLog(tmp_path / "parted", "journal", segment_bytes=1 << 30)
    again.open()
    assert [(r.first_seq, r.last_seq) for r in again.records_on_open] == [(1, 3000), (3001, 3002)]
    assert again.records_on_open[0].payload == b"".join(parts)
    assert again.records_on_open[1].payload == payload(1, 2)
    again.close()


def test_durable_writes_leave_nothing_to_sync(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path, "journal", segment_bytes=1 << 12, durable_writes=True)
    log.open()
    fill(log, 200)  # rolls segments: each one opened for synchronous writes
    # Nothing to sync because every write was synchronous, not because it was skipped.
    assert log._fd is not None
    assert fcntl.fcntl(log._fd, fcntl.F_GETFL) & os.O_DSYNC
    assert log.sync() is False
    log.close()
    assert len(list_segments(tmp_path, "journal")) > 1
    again = SegmentLog(tmp_path, "journal", segment_bytes=1 << 12, durable_writes=True)
    again.open()
    assert again.last_seq == 600
    fill(again, 1)
    assert again._fd is not None
    assert fcntl.fcntl(again._fd, fcntl.F_GETFL) & os.O_DSYNC
    assert again.sync() is False
    again.close()
    plain = SegmentLog(tmp_path, "journal", segment_bytes=1 << 12)
    plain.open()
    fill(plain, 1)
    assert plain.sync() is True
    assert [r.first_seq for r in plain.records_on_open][-1] == 601
    plain.close()


def test_torn_tail_cut_and_middle_damage_refused(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path, "journal", segment_bytes=1 << 30)
    log.open()
    fill(log, 10)
    log.close()
    (seg,) = [p for _, p in list_segments(tmp_path, "journal")]
    size = seg.stat().st_size
    rec_size = HEADER_SIZE + 24
    with open(seg, "r+b") as f:
        f.truncate(size - 5)
    torn = SegmentLog(tmp_path, "journal", segment_bytes=1 << 30)
    torn.open()
    assert torn.last_seq == 27
    assert torn.truncated_bytes == rec_size - 5
    fill(torn, 1)
    torn.close()
    data = bytearray(seg.read_bytes())
    data[rec_size * 4 + HEADER_SIZE + 2] ^= 1
    seg.write_bytes(bytes(data))
    with pytest.raises(JournalCorruptError) as ei:
        SegmentLog(tmp_path, "journal", segment_bytes=1 << 30).open()
    assert ei.value.offset == rec_size * 4
    assert str(seg) in str(ei.value)
    assert "payload checksum" in str(ei.value)


def test_zero_filled_tail_is_torn(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path, "journal", segment_bytes=1 << 30)
    log.open()
    fill(log, 2)
    log.close()
    (seg,) = [p for _, p in list_segments(tmp_path, "journal")]
    with open(seg, "ab") as f:
        f.write(b"\0" * 100)
    again = SegmentLog(tmp_path, "journal", segment_bytes=1 << 30)
    again.open()
    assert again.last_seq == 6
    assert again.truncated_bytes == 100


def test_prune_and_truncate_after(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path, "events", segment_bytes=1 << 16, gaps="any")
    log.open()
    fill(log, 3000)
    segs = list_segments(tmp_path, "events")
    assert len(segs) >= 3
    assert log.prune_through(segs[1][0] - 2) == []  # the first segment still holds seq segs[1][0]-1
    removed = log.prune_through(segs[1][0] - 1)
    assert [p.name for p in removed] == [segs[0][1].name]
    log.truncate_after(5000)
    assert log.next_seq == 4999  # records hold 3 commands: 4999..5001 is dropped
    log.append(KIND_COMMANDS, 5003, 5004, payload(5003, 5004))  # gaps allowed in the events log
    log.close()
    reader = LogReader(tmp_path, "events", 4990)
    got = reader.read(10**9)
    reader.close()
    assert [r.first_seq for r in got] == [4990, 4993, 4996, 5003]


def test_reader_follows_a_growing_log(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path, "events", segment_bytes=1 << 12)
    log.open()
    reader = LogReader(tmp_path, "events", 1)
    assert reader.read(100) == []
    fill(log, 10)
    assert [r.first_seq for r in reader.read(100)] == list(range(1, 31, 3))
    fill(log, 200)
    got = reader.read(10**9, max_bytes=10**9)
    assert got[0].first_seq == 31
    assert got[-1].last_seq == 630
    assert reader.read(10**9) == []
    reader.close()
    log.close()
