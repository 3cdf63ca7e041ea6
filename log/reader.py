"""Reading records back from the segment files of an open log.

Reads run on the event loop (segment bytes are almost always in the page cache) with `os.pread`
of large chunks; a sequential reader resumes where the previous batch ended instead of seeking
through the sparse index again. CRCs are not checked here: every byte below a segment's `size`
was either verified when the log was opened (`recovery.recover`) or written by this process. Each
frame's LSN is still compared with its position, so a file changed under the log is noticed.
"""

from __future__ import annotations

import bisect
import os

from log.errors import CorruptRecord
from log.protocol import Lsn, Record
from log.segment import HEADER, HEADER_SIZE, FrameMismatch, Segment, parse_frames

_MIN_READ_CHUNK = 64 << 10
_MAX_READ_CHUNK = 4 << 20


class SegmentReader:
    """Reads LSN ranges from `segments` (shared with the log, which appends and trims them)."""

    def __init__(self, segments: list[Segment], firsts: list[int]) -> None:
        self._segments = segments
        self._firsts = firsts  # first LSN of each segment, for bisect
        self._hint: tuple[Segment, int, int] | None = None  # (segment, offset, lsn) to resume

    def forget(self, dropped: list[Segment]) -> None:
        """`dropped` segments are going away (trim): never resume into them."""
        if self._hint is not None and self._hint[0] in dropped:
            self._hint = None

    def read(self, from_lsn: Lsn, last: Lsn) -> list[Record]:
        """Records `from_lsn … last` (the caller bounds `last` by the tail)."""
        out: list[Record] = []
        lsn = from_lsn
        while lsn <= last:
            hint = self._hint
            if hint is not None and hint[2] == lsn and lsn <= hint[0].last_lsn:
                seg, off, at = hint
            else:
                seg = self._segments[bisect.bisect_right(self._firsts, lsn) - 1]
                at, off = seg.seek_point(lsn)
            stop = min(last, seg.last_lsn)
            avg = seg.size // max(1, seg.last_lsn - seg.first_lsn + 1)
            while at <= stop:
                want = max(_MIN_READ_CHUNK, min(_MAX_READ_CHUNK, (stop - at + 1) * avg + 4096))
                buf = os.pread(seg.fd, min(want, seg.size - off), off)
                pos, at = _parse(seg, buf, off, at, lsn, stop, out)
                if pos == 0 and len(buf) >= HEADER_SIZE:  # one record larger than the chunk
                    length = HEADER.unpack_from(buf)[0]
                    buf = os.pread(seg.fd, HEADER_SIZE + length, off)
                    pos, at = _parse(seg, buf, off, at, lsn, stop, out)
                if pos == 0:
                    raise CorruptRecord(
                        f"log segment {seg.path} is shorter than verified: LSN {at} at byte "
                        f"offset {off} cannot be read",
                        path=seg.path,
                        offset=off,
                        lsn=at,
                    )
                off += pos
            self._hint = (seg, off, at)
            lsn = at
        return out


def _parse(
    seg: Segment, buf: bytes, off: int, at: int, lsn: int, stop: int, out: list[Record]
) -> tuple[int, int]:
    try:
        return parse_frames(buf, 0, at, lsn, stop, out)
    except FrameMismatch as exc:
        raise CorruptRecord(
            f"log segment {seg.path} changed on disk: byte offset {off + exc.offset} "
            f"holds LSN {exc.found} where LSN {exc.expected} was verified",
            path=seg.path,
            offset=off + exc.offset,
            lsn=exc.expected,
        ) from None
