"""Append-only, segmented, checksummed record logs: the write-ahead journal and the events log.

A log is a directory of segment files ``<prefix>-<first sequence, 20 digits>.log``. Each
record is a 36-byte header followed by its payload:

    magic u32 | kind u16 | flags u16 | payload length u32 | first_seq u64 | last_seq u64
    | payload CRC32C u32 | header CRC32C u32 (over the 32 bytes before it)

all little-endian. ``first_seq..last_seq`` is the range of global command sequences the
record covers; a record may hold a whole group-committed batch. A configuration record
(new instruments) covers no command and has ``last_seq = first_seq - 1``. Records are
contiguous: each starts at the previous ``last_seq + 1``.

Opening a log validates every record. An incomplete record at the very end of the last
segment (a torn write: the process died mid-write) is cut off. Anything else that does
not check out (a bad checksum or a sequence gap before the end) raises
`JournalCorruptError` naming the file and offset: the engine refuses to start rather
than silently drop acknowledged commands.

The blocking methods here are called from one writer thread at a time; readers use
their own file handles.
"""

from __future__ import annotations

import itertools
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import crc32c

MAGIC = 0x4C414A48  # "HJAL"
HEADER = struct.Struct("<IHHIQQI")
HEADER_SIZE = HEADER.size + 4  # + header CRC
MAX_PAYLOAD = 1 << 30

KIND_COMMANDS = 1  # payload: COMMAND_DTYPE records, one per sequence
KIND_INSTRUMENTS = 2  # payload: JSON list of instruments added (covers no sequence)
KIND_EVENTS = 3  # payload: EVENT_DTYPE records; sequence = first_seq + cmd_index

_SEGMENT_RE = re.compile(r"^(?P<prefix>[a-z]+)-(?P<seq>\d{20})\.log$")


class JournalCorruptError(RuntimeError):
    """A record in the middle of a log fails its checks; names the file and byte offset."""

    def __init__(self, path: Path, offset: int, reason: str) -> None:
        super().__init__(
            f"{path} at offset {offset}: {reason}. The log is damaged before its end; "
            "refusing to start (see docs/operations.md, 'Journal corruption')"
        )
        self.path = path
        self.offset = offset
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Record:
    kind: int
    first_seq: int
    last_seq: int
    payload: bytes
    path: Path
    offset: int


def encode_record(kind: int, first_seq: int, last_seq: int, payload: bytes | memoryview) -> bytes:
    """The header of a record (the payload is written after it)."""
    return encode_header(kind, first_seq, last_seq, len(payload), crc32c.crc32c(payload))


def encode_header(kind: int, first_seq: int, last_seq: int, length: int, payload_crc: int) -> bytes:
    """The header of a record whose payload has `length` bytes and CRC32C `payload_crc`."""
    head = HEADER.pack(MAGIC, kind, 0, length, first_seq, last_seq, payload_crc)
    return head + struct.pack("<I", crc32c.crc32c(head))


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def segment_name(prefix: str, first_seq: int) -> str:
    return f"{prefix}-{first_seq:020d}.log"


def list_segments(directory: Path, prefix: str) -> list[tuple[int, Path]]:
    """(first sequence, path) of every segment of the log, ascending."""
    out = []
    if directory.is_dir():
        for p in directory.iterdir():
            m = _SEGMENT_RE.match(p.name)
            if m and m.group("prefix") == prefix:
                out.append((int(m.group("seq")), p))
    out.sort()
    return out


def _all_zero(buf: memoryview) -> bool:
    return not any(buf)


def scan_segment(
    path: Path,
    is_last: bool,
    expected_first: int | None,
    *,
    allow_gaps: bool = False,
    on_record: Callable[[Record], None] | None = None,
) -> tuple[list[Record], int]:
    """Read and check every record of one segment.

    Returns the records (or hands each to `on_record` instead, keeping none) and the
    byte offset where valid data ends. A torn tail (only possible in the last segment)
    ends the list early; corruption raises. With `allow_gaps`, sequences only need to
    increase (the events log skips commands that produced no execution event).
    """
    data = path.read_bytes()
    view = memoryview(data)
    size = len(data)
    pos = 0
    records: list[Record] = []
    expected = expected_first
    while pos < size:
        remaining = size - pos
        if remaining < HEADER_SIZE:
            if is_last:
                return records, pos
            raise JournalCorruptError(path, pos, f"truncated record header ({remaining} bytes)")
        head = view[pos : pos + HEADER.size]
        (hcrc,) = struct.unpack_from("<I", view, pos + HEADER.size)
        magic, kind, _flags, length, first, last, pcrc = HEADER.unpack(head)
        if magic != MAGIC or crc32c.crc32c(head) != hcrc:
            if is_last and _all_zero(view[pos:]):
                return records, pos
            raise JournalCorruptError(path, pos, "record header checksum mismatch")
        if length > MAX_PAYLOAD or last + 1 < first:
            raise JournalCorruptError(path, pos, "record header holds impossible values")
        if expected is not None and (first < expected if allow_gaps else first != expected):
            raise JournalCorruptError(
                path, pos, f"sequence gap: record starts at {first}, expected {expected}"
            )
        end = pos + HEADER_SIZE + length
        if end > size:
            if is_last:
                return records, pos
            raise JournalCorruptError(path, pos, "record runs past the end of the segment")
        payload = view[pos + HEADER_SIZE : end]
        if crc32c.crc32c(payload) != pcrc:
            # A complete-looking last record with a bad payload is what a torn write of
            # pages out of order leaves behind; anything before it is real damage.
            if is_last and end == size:
                return records, pos
            raise JournalCorruptError(path, pos, "record payload checksum mismatch")
        rec = Record(kind, first, last, bytes(payload), path, pos)
        if on_record is not None:
            on_record(rec)
        else:
            records.append(rec)
        expected = last + 1
        pos = end
    return records, pos


_IOV_MAX = 1024  # buffers per writev (Linux UIO_MAXIOV)


def _write_all(fd: int, bufs: list[Any]) -> None:
    """Write the buffers in order, with as few system calls as writev allows."""
    for i in range(0, len(bufs), _IOV_MAX):
        chunk = bufs[i : i + _IOV_MAX]
        written = os.writev(fd, chunk)
        if written != sum(len(b) for b in chunk):
            # Regular files only write short on a full disk or a signal: finish or fail.
            rest = b"".join(bytes(b) for b in chunk)[written:]
            while rest:
                n = os.write(fd, rest)
                rest = rest[n:]


class SegmentLog:
    """One segmented log (journal or events log) open for appending.

    `open()` validates the existing segments and cuts a torn tail; `append()` writes
    one record; `sync()` makes everything written durable (fdatasync).
    """

    def __init__(
        self,
        directory: Path,
        prefix: str,
        segment_bytes: int,
        *,
        gaps: str = "none",
        durable_writes: bool = False,
    ) -> None:
        """`gaps`: "none" (every record continues the previous one), "segments" (a new
        segment may start later, after a snapshot), "any" (sequences only increase).

        `durable_writes`: segments are opened with O_DSYNC, so `append` returns only once
        the record is on stable storage, as `append` + `sync` would, with one system call
        instead of two (`sync` then has nothing left to do)."""
        self.directory = directory
        self._flags = os.O_WRONLY | os.O_APPEND | (os.O_DSYNC if durable_writes else 0)
        self.gaps = gaps
        self.prefix = prefix
        self.segment_bytes = segment_bytes
        self.next_seq = 1  # first sequence of the next record
        self.first_seq = 1  # first sequence the log holds
        self.truncated_bytes = 0  # torn tail cut at open
        self._fd: int | None = None
        self._size = 0
        self._dirty = False
        self.records_on_open: list[Record] = []

    @property
    def last_seq(self) -> int:
        return self.next_seq - 1

    def open(
        self, keep_records: bool = True, on_record: Callable[[Record], None] | None = None
    ) -> None:
        """Validate the log, cut a torn tail, and position for appending.

        With `keep_records`, the records read are kept in `records_on_open`; `on_record`
        is called with each record in order instead (for replay). Raises
        JournalCorruptError.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        segments = list_segments(self.directory, self.prefix)
        expected: int | None = None
        records: list[Record] = []
        for i, (seg_first, path) in enumerate(segments):
            is_last = i == len(segments) - 1
            gap_ok = self.gaps != "none" and expected is not None and seg_first > expected
            if expected is not None and seg_first != expected and not gap_ok:
                raise JournalCorruptError(
                    path, 0, f"segment starts at sequence {seg_first}, expected {expected}"
                )
            last_seen: list[int] = []

            def track(rec: Record, last_seen: list[int] = last_seen) -> None:
                last_seen[:] = [rec.last_seq]
                if on_record is not None:
                    on_record(rec)

            recs, valid_end = scan_segment(
                path,
                is_last,
                seg_first,
                allow_gaps=self.gaps == "any",
                on_record=track if (on_record is not None or not keep_records) else None,
            )
            if last_seen:
                recs = recs or []
                seg_last: int | None = last_seen[0]
            else:
                seg_last = recs[-1].last_seq if recs else None
            size = path.stat().st_size
            if valid_end < size:
                self.truncated_bytes = size - valid_end
                with open(path, "r+b") as f:
                    f.truncate(valid_end)
                    f.flush()
                    os.fsync(f.fileno())
            if i == 0:
                self.first_seq = seg_first
            expected = seg_last + 1 if seg_last is not None else seg_first
            if keep_records:
                records.extend(recs)
        if segments:
            self.next_seq = expected if expected is not None else 1
            last_path = segments[-1][1]
            if last_path.stat().st_size == 0 and len(segments) > 1:
                last_path.unlink()
                fsync_dir(self.directory)
            else:
                self._fd = os.open(last_path, self._flags)
                self._size = last_path.stat().st_size
        self.records_on_open = records

    def start_at(self, seq: int) -> None:
        """Set the first sequence of an empty log (after a snapshot made older ones moot)."""
        if self._fd is not None or list_segments(self.directory, self.prefix):
            raise RuntimeError("start_at on a non-empty log")
        self.next_seq = seq
        self.first_seq = seq

    def _new_segment(self, first_seq: int) -> None:
        path = self.directory / segment_name(self.prefix, first_seq)
        self._fd = os.open(path, self._flags | os.O_CREAT | os.O_EXCL, 0o644)
        self._size = 0
        fsync_dir(self.directory)

    def append(self, kind: int, first_seq: int, last_seq: int, payload: Any) -> int:
        """Write one record (blocking); returns the bytes written. Not durable until sync().

        `payload` is any contiguous buffer (bytes, a uint8 numpy view)."""
        return self.append_parts(kind, first_seq, last_seq, [payload])

    def append_parts(self, kind: int, first_seq: int, last_seq: int, parts: list[Any]) -> int:
        """Write one record whose payload is the concatenation of `parts` (contiguous
        buffers), without copying them together; returns the bytes written."""
        if first_seq < self.next_seq or (first_seq > self.next_seq and self.gaps != "any"):
            raise RuntimeError(f"{self.prefix}: append at {first_seq}, expected {self.next_seq}")
        if self._fd is None:
            self._new_segment(first_seq)
        assert self._fd is not None
        length = 0
        crc = 0
        for part in parts:
            length += len(part)
            crc = crc32c.crc32c(part, crc)
        head = encode_header(kind, first_seq, last_seq, length, crc)
        total = len(head) + length
        _write_all(self._fd, [head, *parts])
        self._size += total
        self._dirty = not self._flags & os.O_DSYNC
        self.next_seq = last_seq + 1
        if self._size >= self.segment_bytes:
            self.sync()
            os.close(self._fd)
            self._fd = None
        return total

    def sync(self) -> bool:
        """fdatasync the open segment if anything was written since the last sync."""
        if self._fd is not None and self._dirty:
            os.fdatasync(self._fd)
            self._dirty = False
            return True
        return False

    def close(self) -> None:
        if self._fd is not None:
            self.sync()
            os.close(self._fd)
            self._fd = None

    def segments(self) -> list[tuple[int, Path]]:
        return list_segments(self.directory, self.prefix)

    def prune_through(self, seq: int) -> list[Path]:
        """Delete segments whose every record has last_seq <= seq (never the newest one)."""
        segs = self.segments()
        removed = []
        for (_first, path), (next_first, _) in itertools.pairwise(segs):
            if next_first <= seq + 1:
                path.unlink()
                removed.append(path)
            else:
                break
        if removed:
            fsync_dir(self.directory)
            self.first_seq = self.segments()[0][0]
        return removed

    def truncate_after(self, seq: int) -> None:
        """Drop every record with last_seq > seq and position for appending after it.

        Used on the events log at recovery: the events after the snapshot are
        regenerated by replaying the journal. Afterwards `next_seq` may be below
        seq + 1 when the log had lost records; `skip_to` then opens a new segment.
        """
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        segs = self.segments()
        last_kept: tuple[Path, int] | None = None
        next_seq = seq + 1
        for i, (first, path) in enumerate(segs):
            if first > seq:
                path.unlink()
                continue
            recs, _end = scan_segment(
                path, i == len(segs) - 1, first, allow_gaps=self.gaps == "any"
            )
            cut = 0
            next_seq = first
            for r in recs:
                if r.last_seq > seq:
                    break
                cut = r.offset + HEADER_SIZE + len(r.payload)
                next_seq = r.last_seq + 1
            if cut < path.stat().st_size:
                with open(path, "r+b") as f:
                    f.truncate(cut)
                    os.fsync(f.fileno())
            last_kept = (path, cut)
        fsync_dir(self.directory)
        remaining = self.segments()
        self.first_seq = remaining[0][0] if remaining else seq + 1
        self.next_seq = next_seq if remaining else seq + 1
        if last_kept is not None and last_kept[0].exists():
            self._fd = os.open(last_kept[0], self._flags)
            self._size = last_kept[1]

    def skip_to(self, seq: int) -> None:
        """Continue the log at `seq` in a new segment, leaving a gap before it."""
        if seq < self.next_seq:
            raise RuntimeError(f"{self.prefix}: skip_to {seq} is behind {self.next_seq}")
        if self._fd is not None:
            self.sync()
            os.close(self._fd)
            self._fd = None
        self.next_seq = seq
        if not self.segments():
            self.first_seq = seq


class LogReader:
    """Sequential reader of a log's records from a sequence on, for serving history.

    Keeps its file position between `read` calls (each call is blocking and meant for a
    worker thread). Stops at the first incomplete record: what follows has not been
    written yet.
    """

    def __init__(self, directory: Path, prefix: str, from_seq: int) -> None:
        self.directory = directory
        self.prefix = prefix
        self.from_seq = from_seq
        self._file: Any = None
        self._path: Path | None = None
        self._seg_first = -1

    def _open_next(self) -> bool:
        segs = list_segments(self.directory, self.prefix)
        if self._path is None:
            chosen = [s for s in segs if s[0] <= self.from_seq] or segs[:1]
            target = chosen[-1] if chosen else None
        else:
            later = [s for s in segs if s[0] > self._seg_first]
            target = later[0] if later else None
        if target is None:
            return False
        if self._file is not None:
            self._file.close()
        try:
            self._file = open(target[1], "rb")  # noqa: SIM115 - kept open across calls
        except FileNotFoundError:
            return False
        self._path = target[1]
        self._seg_first = target[0]
        return True

    def read(self, up_to_seq: int, max_bytes: int = 1 << 20) -> list[Record]:
        """Records with last_seq >= from_seq and first_seq <= up_to_seq, up to about
        `max_bytes` of payload; an empty list when nothing more is available."""
        out: list[Record] = []
        total = 0
        if self._file is None and not self._open_next():
            return out
        while total < max_bytes:
            f = self._file
            pos = f.tell()
            head = f.read(HEADER_SIZE)
            if len(head) < HEADER_SIZE:
                f.seek(pos)
                # End of this segment: move on only if a later segment exists.
                if not self._open_next():
                    break
                continue
            magic, kind, _fl, length, rfirst, rlast, _pcrc = HEADER.unpack_from(head)
            if magic != MAGIC or rfirst > up_to_seq:
                f.seek(pos)
                break
            if rlast < self.from_seq:
                f.seek(length, os.SEEK_CUR)
                continue
            payload = f.read(length)
            if len(payload) < length:
                f.seek(pos)
                break
            out.append(Record(kind, rfirst, rlast, payload, self._path or Path(), pos))
            total += length
            self.from_seq = rlast + 1
        return out

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
