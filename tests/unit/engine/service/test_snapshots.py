from __future__ import annotations

from pathlib import Path

from hft.engine import snapshots


def test_write_load_fallback_and_prune(tmp_path: Path) -> None:
    for seq in (10, 20, 30):
        snapshots.write_snapshot(tmp_path, seq, {"sequence": seq}, b"core-%d" % seq)
    snap, skipped = snapshots.load_newest(tmp_path)
    assert snap is not None
    assert (snap.sequence, snap.meta, snap.core) == (30, {"sequence": 30}, b"core-30")
    assert skipped == []
    newest = snapshots.snapshot_path(tmp_path, 30)
    data = bytearray(newest.read_bytes())
    data[-6] ^= 1
    newest.write_bytes(bytes(data))
    snap, skipped = snapshots.load_newest(tmp_path)
    assert snap is not None
    assert snap.sequence == 20
    assert "checksum mismatch" in skipped[0]
    assert str(newest) in skipped[0]
    snapshots.snapshot_path(tmp_path, 20).write_bytes(b"short")
    snap, skipped = snapshots.load_newest(tmp_path)
    assert snap is not None
    assert snap.sequence == 10
    assert len(skipped) == 2
    (tmp_path / "snapshot-00000000000000000040.snap.tmp").write_bytes(b"partial")
    removed = snapshots.prune(tmp_path, keep=2)
    assert {p.name for p in removed} == {
        "snapshot-00000000000000000040.snap.tmp",
        "snapshot-00000000000000000010.snap",
    }
    assert [s for s, _ in snapshots.list_snapshots(tmp_path)] == [30, 20]
