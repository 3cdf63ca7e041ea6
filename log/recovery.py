"""Opening a log directory: verify every segment, cut a torn tail, refuse real corruption.

A crash can only leave damage at the very end of the last segment (older segments are fsynced
before the next one is created), so that damage is a torn write: it is truncated with a warning
saying how many bytes were dropped. Damage anywhere else - followed by intact records, in a
sealed segment, or a gap in the LSN sequence between segments - is corruption: opening fails with
`CorruptLog` naming the file, byte offset and LSN, and saying what the operator can do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import structlog

from log.errors import CorruptLog, LogError
from log.segment import (
    Segment,
    find_valid_frame_after,
    parse_segment_name,
    scan_segment,
)

logger = structlog.get_logger("log")


@dataclass(slots=True)
class Recovered:
    segments: list[Segment]
    last_ts: int
    ignored_tail: int  # bytes of a torn tail left in place (read-only) or cut (writable)


def list_segment_files(directory: Path) -> list[tuple[int, Path]]:
    found = []
    for entry in directory.iterdir():
        if entry.suffix == ".seg":
            first = parse_segment_name(entry.name)
            if first is None or first < 1:
                raise LogError(
                    f"unexpected segment file name {entry}: segment files are named after their "
                    "first LSN, 20 digits (e.g. 00000000000000000001.seg); rename or move it away"
                )
            found.append((first, entry))
    return sorted(found)


def _corrupt(path: Path, offset: int, lsn: int, what: str, why: str) -> CorruptLog:
    return CorruptLog(
        f"log segment {path} is corrupt at byte offset {offset} (where LSN {lsn} should be): "
        f"{what}, and {why}, so this is not a torn write left by a crash. The log refuses to "
        "open rather than skip records silently. What you can do: restore this segment file "
        f"from a backup and reopen; or, if losing LSN {lsn} and every later record is acceptable, "
        f"cut the log there with `truncate -s {offset} {path}`, move every segment file named "
        f"after a higher LSN out of {path.parent}, and reopen (state derived from the lost "
        "records must then be rebuilt).",
        path=path,
        offset=offset,
        lsn=lsn,
    )


def recover(directory: Path, *, writable: bool) -> Recovered:
    """Open and verify all segments of `directory` (sorted by first LSN)."""
    segments: list[Segment] = []
    last_ts = 0
    ignored_tail = 0
    files = list_segment_files(directory)
    try:
        for i, (first, path) in enumerate(files):
            is_last = i == len(files) - 1
            if segments and first != segments[-1].last_lsn + 1:
                prev = segments[-1]
                raise _corrupt(
                    path,
                    0,
                    prev.last_lsn + 1,
                    f"the segment starts at LSN {first} but {prev.path.name} ends at LSN "
                    f"{prev.last_lsn}",
                    "records are missing or duplicated between the two segments",
                )
            flags = os.O_RDWR | os.O_APPEND if (writable and is_last) else os.O_RDONLY
            seg = Segment(path, first, os.open(path, flags))
            segments.append(seg)
            result = scan_segment(seg)
            if result.problem is not None:
                follower = find_valid_frame_after(seg, result.valid_end, result.last_lsn + 1)
                if follower is not None or not is_last or result.out_of_sequence:
                    if follower is not None:
                        why = f"intact LSN {follower[1]} follows at byte offset {follower[0]}"
                    elif not is_last:
                        why = "later segment files exist"
                    else:
                        why = "its CRC is intact, so it was written that way"

                    raise _corrupt(path, result.valid_end, result.last_lsn + 1, result.problem, why)
                dropped = result.file_size - result.valid_end
                ignored_tail = dropped
                if writable:  # read-only openers (dump beside a live writer) report it instead
                    logger.warning(
                        "log_torn_tail_dropped",
                        segment=str(path),
                        bytes_dropped=dropped,
                        at_offset=result.valid_end,
                        last_valid_lsn=result.last_lsn,
                        reason=result.problem,
                        message=(
                            f"torn tail after a crash: dropped {dropped} bytes at the end of "
                            f"{path.name} ({result.problem}); the last intact record is LSN "
                            f"{result.last_lsn}"
                        ),
                    )
                if writable:
                    os.ftruncate(seg.fd, result.valid_end)
                    os.fsync(seg.fd)
            seg.last_lsn = result.last_lsn
            seg.size = result.valid_end
            if result.last_ts is not None:
                last_ts = result.last_ts
    except BaseException:
        for seg in segments:
            os.close(seg.fd)
        raise
    return Recovered(segments, last_ts, ignored_tail)
