"""Segment files: the record framing, writing frames, parsing them back, and scanning on open.

A segment is a file named after the LSN of its first record (`00000000000000000001.seg`) holding
records back to back, each framed as (little-endian)::

    [length u32][crc32 u32][lsn u64][timestamp_ms u64][payload: length bytes]
                 └ crc32 of lsn + timestamp_ms + payload ┘

`Segment.index` is a sparse offset index: entry k is the byte offset of LSN `first_lsn + k *
INDEX_EVERY`, so a read seeks to any LSN by hopping over at most INDEX_EVERY - 1 headers.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from log.protocol import Record

HEADER = struct.Struct("<IIQQ")
HEADER_SIZE = HEADER.size
_LEN_CRC = struct.Struct("<II")
_LSN_TS = struct.Struct("<QQ")
_LSN = struct.Struct("<Q")
MAX_PAYLOAD = (1 << 32) - 1
INDEX_EVERY = 64
SUFFIX = ".seg"
_NAME = re.compile(r"(\d{20})\.seg")

Pending = tuple[int, int, bytes]  # (lsn, timestamp_ms, payload)


def segment_name(first_lsn: int) -> str:
    return f"{first_lsn:020d}{SUFFIX}"


def parse_segment_name(name: str) -> int | None:
    match = _NAME.fullmatch(name)
    return int(match.group(1)) if match else None


class Segment:
    """One segment file: where it is, which LSNs and bytes it holds (as far as readers may see)."""

    __slots__ = ("fd", "first_lsn", "index", "last_lsn", "path", "size")

    def __init__(self, path: Path, first_lsn: int, fd: int) -> None:
        self.path = path
        self.first_lsn = first_lsn
        self.last_lsn = first_lsn - 1  # empty
        self.size = 0  # bytes readers may read
        self.fd = fd
        self.index = array("Q")

    def seek_point(self, lsn: int) -> tuple[int, int]:
        """(lsn, byte offset) of the nearest indexed record at or before `lsn`."""
        k = (lsn - self.first_lsn) // INDEX_EVERY
        return self.first_lsn + k * INDEX_EVERY, self.index[k]


def encode_frames(seg: Segment, records: Sequence[Pending], offset: int) -> list[bytes]:
    """Frame `records` (which start at byte `offset` of `seg`); extend its sparse index."""
    parts: list[bytes] = []
    add = parts.append
    pack_body, pack_len = _LSN_TS.pack, _LEN_CRC.pack
    crc32 = zlib.crc32
    first, index = seg.first_lsn, seg.index
    for lsn, ts, payload in records:
        body = pack_body(lsn, ts) + payload
        if not (lsn - first) % INDEX_EVERY:
            index.append(offset)
        add(pack_len(len(payload), crc32(body)))
        add(body)
        offset += HEADER_SIZE + len(payload)
    return parts


class FrameMismatch(Exception):
    """A frame read back holds another LSN than its position says (the file changed)."""

    def __init__(self, offset: int, expected: int, found: int) -> None:
        super().__init__(offset, expected, found)
        self.offset, self.expected, self.found = offset, expected, found


_LEN_LSN_TS = struct.Struct("<I4xQQ")  # a header without its CRC
_new_tuple = tuple.__new__  # Record(...) without the keyword-capable __new__ wrapper: 2x faster


def parse_frames(
    buf: bytes, pos: int, lsn: int, from_lsn: int, stop_lsn: int, out: list[Record]
) -> tuple[int, int]:
    """Parse whole frames in `buf` from `pos` (holding `lsn`) up to `stop_lsn`.

    Records below `from_lsn` are hopped over. CRCs are not checked: every byte was verified when
    the log was opened or was written by this process. Each frame's LSN is checked against its
    position. Returns (next pos, next lsn).
    """
    size = len(buf)
    limit = size - HEADER_SIZE
    unpack = _LEN_LSN_TS.unpack_from
    while lsn < from_lsn and pos <= limit:
        length, found, _ = unpack(buf, pos)
        end = pos + HEADER_SIZE + length
        if end > size:
            return pos, lsn
        if found != lsn:
            raise FrameMismatch(pos, lsn, found)
        pos = end
        lsn += 1
    add, new, record = out.append, _new_tuple, Record
    while lsn <= stop_lsn and pos <= limit:
        length, found, ts = unpack(buf, pos)
        start = pos + HEADER_SIZE
        end = start + length
        if end > size:
            break
        if found != lsn:
            raise FrameMismatch(pos, lsn, found)
        add(new(record, (lsn, ts, buf[start:end])))
        pos = end
        lsn += 1
    return pos, lsn


@dataclass(slots=True)
class ScanResult:
    """What a full verification of one segment found."""

    last_lsn: int
    last_ts: int | None
    valid_end: int
    file_size: int
    problem: str | None  # why the scan stopped before the end of the file
    out_of_sequence: bool = False  # an intact frame with the wrong LSN: never a torn write


SCAN_CHUNK = 4 << 20


def scan_segment(seg: Segment) -> ScanResult:
    """Verify every frame of `seg` (CRC, LSN sequence); build its sparse index.

    Stops at the first frame that is partial or fails its CRC and reports it as `problem`; a frame
    whose CRC holds but whose LSN is out of sequence is reported too (the caller decides).
    """
    fd = seg.fd
    size = os.fstat(fd).st_size
    off, lsn, last_ts = 0, seg.first_lsn, None
    buf, base = b"", 0  # buf holds file bytes [base, base + len(buf))
    index = seg.index
    del index[:]
    unpack, crc32 = HEADER.unpack_from, zlib.crc32
    problem = None
    out_of_sequence = False
    while off < size:
        if size - off < HEADER_SIZE:
            problem = f"a partial record header ({size - off} bytes)"
            break
        pos = off - base
        if pos + HEADER_SIZE > len(buf):
            buf, base, pos = os.pread(fd, SCAN_CHUNK, off), off, 0
        length, crc, found, ts = unpack(buf, pos)
        end = off + HEADER_SIZE + length
        if end > size:
            problem = f"a partial record ({size - off} of {HEADER_SIZE + length} bytes present)"
            break
        if pos + HEADER_SIZE + length > len(buf):
            buf, base, pos = os.pread(fd, max(SCAN_CHUNK, HEADER_SIZE + length), off), off, 0
        if crc32(buf[pos + 8 : pos + HEADER_SIZE + length]) != crc:
            problem = "a CRC mismatch"
            break
        if found != lsn:
            problem = f"an intact record holding LSN {found} where LSN {lsn} belongs"
            out_of_sequence = True
            break
        if not (lsn - seg.first_lsn) % INDEX_EVERY:
            index.append(off)
        last_ts = ts
        off = end
        lsn += 1
    return ScanResult(lsn - 1, last_ts, off, size, problem, out_of_sequence)


def frame_is_valid(data: bytes, pos: int, lsn: int) -> bool:
    if pos < 0 or pos + HEADER_SIZE > len(data):
        return False
    length, crc, found, _ = HEADER.unpack_from(data, pos)
    end = pos + HEADER_SIZE + length
    return bool(found == lsn and end <= len(data) and zlib.crc32(data[pos + 8 : end]) == crc)


def find_valid_frame_after(seg: Segment, offset: int, lsn: int) -> tuple[int, int] | None:
    """Look for an intact frame holding one of LSN `lsn … lsn+15` after byte `offset`.

    Finding one means the damage at `offset` is followed by good records, so it is corruption,
    not a torn tail. Returns (byte offset, lsn) of the first one found.
    """
    size = os.fstat(seg.fd).st_size
    data = os.pread(seg.fd, size - offset, offset)
    for candidate in range(lsn, lsn + 16):
        pattern = _LSN.pack(candidate)
        at = data.find(pattern, 9)  # a frame starting after `offset`
        checked = 0
        while at != -1 and checked < 10_000:
            if frame_is_valid(data, at - 8, candidate):
                return offset + at - 8, candidate
            at = data.find(pattern, at + 1)
            checked += 1
    return None


def create_segment(directory: Path, first_lsn: int) -> Segment:
    """Create an empty segment file (and make its directory entry durable)."""
    path = directory / segment_name(first_lsn)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
    fsync_dir(directory)
    return Segment(path, first_lsn, fd)


def delete_segments(directory: Path, segments: list[Segment]) -> None:
    for seg in segments:
        os.close(seg.fd)
        seg.path.unlink()
    fsync_dir(directory)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
