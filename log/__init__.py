"""The append-only command log of a partition: records are bytes addressed by gap-free LSNs.

`open_log(path)` opens (or creates) a durable `FileLog`; `MemoryLog` has the same contract for
tests. The contract and its guarantees are documented in `log.protocol`.
"""

from __future__ import annotations

import os

from log.base import Clock
from log.errors import (
    CorruptLog,
    CorruptRecord,
    InvalidLogConfig,
    LogClosed,
    LogError,
    LogFailed,
    LogLocked,
    LogReadOnly,
    TrimmedError,
)
from log.file_log import DEFAULT_SEGMENT_SIZE, FileLog
from log.memory import MemoryLog
from log.policy import FsyncPolicy, parse_fsync_policy, parse_size
from log.protocol import Log, Lsn, Record, follow

__all__ = [
    "DEFAULT_SEGMENT_SIZE",
    "Clock",
    "CorruptLog",
    "CorruptRecord",
    "FileLog",
    "FsyncPolicy",
    "InvalidLogConfig",
    "Log",
    "LogClosed",
    "LogError",
    "LogFailed",
    "LogLocked",
    "LogReadOnly",
    "Lsn",
    "MemoryLog",
    "Record",
    "TrimmedError",
    "follow",
    "open_log",
    "parse_fsync_policy",
    "parse_size",
]


def open_log(
    path: str | os.PathLike[str],
    fsync: str | FsyncPolicy = "always",
    segment_size: int | str = DEFAULT_SEGMENT_SIZE,
    *,
    clock: Clock | None = None,
    readonly: bool = False,
    inline_fsync_under_us: int = 0,
) -> FileLog:
    """Open the log in directory `path` for writing (created if missing), or `readonly`.

    Verifies every segment (a torn tail is cut with a warning; corruption raises `CorruptLog`) and
    takes the directory's writer lock (`LogLocked` if another process holds it).
    """
    return FileLog(
        path,
        fsync=fsync,
        segment_size=segment_size,
        clock=clock,
        readonly=readonly,
        inline_fsync_under_us=inline_fsync_under_us,
    )
