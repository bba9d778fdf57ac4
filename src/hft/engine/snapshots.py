"""Snapshot files: the core's state plus the engine's own maps at one sequence.

File ``snapshot-<sequence, 20 digits>.snap``::

    magic "HFTSNAP1" | version u32 | sequence u64 | meta length u32 | core length u64
    | meta (JSON) | core snapshot bytes | CRC32C u32 of everything before it

Written atomically: a temporary file is written and fsynced, renamed into place, and
the directory is fsynced, so a crash leaves either the old set of snapshots or the new
one. A file that fails its checks is skipped at recovery (the previous one is used).
"""

from __future__ import annotations

import json
import logging
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import crc32c

from hft.engine.journal import fsync_dir

MAGIC = b"HFTSNAP1"
VERSION = 1
_HEAD = struct.Struct("<8sIQIQ")
_NAME_RE = re.compile(r"^snapshot-(\d{20})\.snap$")

log = logging.getLogger("hft.engine.snapshots")


class SnapshotError(ValueError):
    """A snapshot file is unreadable or fails its checksum."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    sequence: int
    meta: dict[str, Any]
    core: bytes
    path: Path


def snapshot_path(directory: Path, sequence: int) -> Path:
    return directory / f"snapshot-{sequence:020d}.snap"


def encode(sequence: int, meta: dict[str, Any], core: bytes) -> bytes:
    meta_bytes = json.dumps(meta, separators=(",", ":"), sort_keys=True).encode()
    body = _HEAD.pack(MAGIC, VERSION, sequence, len(meta_bytes), len(core)) + meta_bytes + core
    return body + struct.pack("<I", crc32c.crc32c(body))


def decode(data: bytes, path: Path) -> Snapshot:
    """Parse and verify a snapshot file's bytes; SnapshotError naming `path` on failure."""
    if len(data) < _HEAD.size + 4:
        raise SnapshotError(f"{path}: too short ({len(data)} bytes)")
    magic, version, seq, meta_len, core_len = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise SnapshotError(f"{path}: not a snapshot file")
    if version != VERSION:
        raise SnapshotError(f"{path}: unsupported snapshot version {version}")
    if _HEAD.size + meta_len + core_len + 4 != len(data):
        raise SnapshotError(f"{path}: length fields do not match the file size")
    (crc,) = struct.unpack_from("<I", data, len(data) - 4)
    if crc32c.crc32c(memoryview(data)[:-4]) != crc:
        raise SnapshotError(f"{path}: checksum mismatch")
    off = _HEAD.size
    try:
        meta = json.loads(data[off : off + meta_len])
    except ValueError as exc:
        raise SnapshotError(f"{path}: metadata is not valid JSON: {exc}") from None
    core = data[off + meta_len : off + meta_len + core_len]
    return Snapshot(sequence=seq, meta=meta, core=core, path=path)


def write_snapshot(directory: Path, sequence: int, meta: dict[str, Any], core: bytes) -> Path:
    """Write a snapshot atomically (blocking); returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    final = snapshot_path(directory, sequence)
    tmp = final.with_suffix(".snap.tmp")
    data = encode(sequence, meta, core)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    fsync_dir(directory)
    return final


def list_snapshots(directory: Path) -> list[tuple[int, Path]]:
    """(sequence, path) of every snapshot file, newest first."""
    out = []
    if directory.is_dir():
        for p in directory.iterdir():
            m = _NAME_RE.match(p.name)
            if m:
                out.append((int(m.group(1)), p))
    out.sort(reverse=True)
    return out


def load_newest(
    directory: Path, max_sequence: int | None = None
) -> tuple[Snapshot | None, list[str]]:
    """The newest snapshot that passes its checks, and a message per skipped file.

    `max_sequence` skips snapshots beyond it (they cannot be trusted when the journal
    ends before them).
    """
    skipped: list[str] = []
    for seq, path in list_snapshots(directory):
        if max_sequence is not None and seq > max_sequence:
            skipped.append(
                f"{path}: sequence {seq} is past the end of the journal ({max_sequence})"
            )
            continue
        try:
            snap = decode(path.read_bytes(), path)
        except OSError as exc:
            skipped.append(f"{path}: cannot read: {exc}")
            continue
        except SnapshotError as exc:
            skipped.append(str(exc))
            continue
        if snap.sequence != seq:
            skipped.append(f"{path}: holds sequence {snap.sequence}, not {seq} as named")
            continue
        return snap, skipped
    return None, skipped


def prune(directory: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` snapshots, and leftover temporary files."""
    removed = []
    for p in directory.glob("snapshot-*.snap.tmp"):
        p.unlink(missing_ok=True)
        removed.append(p)
    for _seq, path in list_snapshots(directory)[keep:]:
        path.unlink(missing_ok=True)
        removed.append(path)
    if removed:
        fsync_dir(directory)
    return removed
