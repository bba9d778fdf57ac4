"""Damaged journals and snapshots: torn tails are cut, damage in the middle stops the
start with a message naming the file and offset, a bad snapshot falls back."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hft.engine.client import SyncEngineClient, order_request
from hft.engine.journal import HEADER_SIZE, list_segments, scan_segment
from hft.engine.service import EngineService
from hft.engine.snapshots import list_snapshots
from hft.engine.testing import EngineProcess, default_config, default_core

pytestmark = pytest.mark.timeout(240)


def fill(engine: EngineProcess, n: int, first_id: int = 1) -> int:
    """n unary orders (one journal record each); returns the last sequence."""
    with SyncEngineClient(engine.address) as c:
        last = 0
        for i in range(n):
            oid = first_id + i
            r = c.submit_order(
                order_request(oid, 1 + i % 3, "AAPL", 1 + i % 2, 1, 1, 18990 + i % 21, 1 + i % 5)
            )
            last = r.sequence
        return last


def recover(data_dir: Path) -> EngineService:
    svc = EngineService(default_config(), data_dir, implementation=default_core())
    svc.recover()
    return svc


def test_torn_last_record_is_cut_at_every_offset(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path / "engine")
    engine.start()
    last = fill(engine, 12)
    engine.kill()  # no shutdown snapshot: recovery replays the journal
    base = tmp_path / "engine"
    seg = list_segments(base / "journal", "journal")[-1][1]
    records, end = scan_segment(seg, True, None)
    rec = records[-1]
    assert rec.last_seq == last
    assert end == seg.stat().st_size
    full = recover(_copy(base, tmp_path / "full"))
    assert full.durable_seq == last
    prev = recover(_copy(base, tmp_path / "prev", cut=rec.offset))
    assert prev.durable_seq == last - 1
    assert prev.engine is not None
    assert full.engine is not None
    want_hash = prev.engine.state_hash()
    assert want_hash != full.engine.state_hash()
    for off in range(rec.offset + 1, rec.offset + HEADER_SIZE + len(rec.payload)):
        d = _copy(base, tmp_path / f"cut{off}", cut=off)
        svc = recover(d)
        assert svc.durable_seq == last - 1, off
        assert svc.journal.truncated_bytes == off - rec.offset, off
        assert svc.engine is not None
        assert svc.engine.state_hash() == want_hash, off
        assert (d / "journal" / seg.name).stat().st_size == rec.offset
        svc.journal.close()
        svc.events_log.close()
        shutil.rmtree(d)
    # The engine itself starts on a torn journal and continues the sequence.
    torn = EngineProcess(_copy(base, tmp_path / "torn", cut=rec.offset + 10))
    torn.start()
    try:
        with SyncEngineClient(torn.address) as c:
            assert c.health().last_sequence == last - 1
            r = c.submit_order(order_request(999, 1, "AAPL", 1, 1, 1, 18990, 1))
            assert r.sequence == last
    finally:
        torn.kill()


def _copy(src: Path, dst: Path, cut: int | None = None) -> Path:
    shutil.copytree(src, dst)
    if cut is not None:
        seg = list_segments(dst / "journal", "journal")[-1][1]
        with open(seg, "r+b") as f:
            f.truncate(cut)
    return dst


@pytest.mark.parametrize("where", ["payload", "header"])
def test_damage_in_the_middle_refuses_to_start(tmp_path: Path, where: str) -> None:
    engine = EngineProcess(tmp_path / "engine")
    engine.start()
    fill(engine, 10)
    engine.kill()
    seg = list_segments(tmp_path / "engine" / "journal", "journal")[-1][1]
    records, _ = scan_segment(seg, True, None)
    victim = records[len(records) // 2]
    pos = victim.offset + (HEADER_SIZE + 3 if where == "payload" else 9)
    data = bytearray(seg.read_bytes())
    data[pos] ^= 0x5A
    seg.write_bytes(bytes(data))
    engine.spawn()
    code = engine.wait_exit(60)
    assert code == 1
    text = engine.log_text()
    assert "journal corrupt" in text
    assert seg.name in text
    assert f"offset {victim.offset}" in text
    assert "checksum" in text
    # Nothing was cut: the operator decides.
    assert seg.read_bytes() == bytes(data)


def test_corrupt_newest_snapshot_falls_back_to_previous(tmp_path: Path) -> None:
    cfg = tmp_path / "engine.yaml"
    text = (
        Path(default_config_path())
        .read_text()
        .replace("engine: {}", "engine: {segment_bytes: 65536}")
    )
    cfg.write_text(text)
    engine = EngineProcess(tmp_path / "engine", config=cfg)
    engine.start()
    fill(engine, 400, first_id=1)
    with SyncEngineClient(engine.address) as c:
        first_snap = c.take_snapshot().sequence
    fill(engine, 400, first_id=1001)
    with SyncEngineClient(engine.address) as c:
        c.take_snapshot()
    fill(engine, 300, first_id=2001)
    with SyncEngineClient(engine.address) as c:
        want = c.get_stats()
    assert engine.stop() == 0  # writes the newest snapshot
    snaps = list_snapshots(tmp_path / "engine" / "snapshots")
    assert snaps[0][0] == want.last_sequence
    newest = snaps[0][1]
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    # Journal segments older than the oldest kept snapshot may be pruned; the rest stay.
    segs = list_segments(tmp_path / "engine" / "journal", "journal")
    assert segs[0][0] <= first_snap + 1
    engine.start()
    try:
        with SyncEngineClient(engine.address) as c:
            got = c.get_stats()
        assert got.last_sequence == want.last_sequence
        assert got.state_hash == want.state_hash
        assert got.replayed_commands == 300
        assert "snapshot skipped" in engine.log_text()
        assert newest.name in engine.log_text()
    finally:
        engine.kill()


def default_config_path() -> Path:
    from hft.engine.testing import DEFAULT_CONFIG

    return DEFAULT_CONFIG
