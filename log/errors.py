"""The errors the log raises: one tree under `LogError`; messages say what the operator can do."""

from __future__ import annotations

from pathlib import Path


class LogError(Exception):
    """Base class of every error raised by the `log` package."""


class InvalidLogConfig(LogError, ValueError):
    """A bad fsync policy, segment size or argument (the message names the accepted values)."""


class CorruptLog(LogError):
    """A segment holds a record that is damaged and is not a torn tail: the log refuses to open.

    `path`, `offset` (byte offset of the bad record in that file) and `lsn` (the LSN expected there)
    say exactly where; the message says what the operator can do.
    """

    def __init__(self, message: str, *, path: Path, offset: int, lsn: int) -> None:
        super().__init__(message)
        self.path = path
        self.offset = offset
        self.lsn = lsn


class CorruptRecord(CorruptLog):
    """A record read back from disk does not match what the log verified (file changed under us)."""


class TrimmedError(LogError):
    """The requested LSN was trimmed away; `first_lsn` is the lowest LSN still readable."""

    def __init__(self, lsn: int, first_lsn: int) -> None:
        super().__init__(
            f"LSN {lsn} was trimmed from the log; the first readable LSN is {first_lsn}. "
            "Read from there, or restore from a snapshot taken at or after it."
        )
        self.lsn = lsn
        self.first_lsn = first_lsn


class LogClosed(LogError):
    """The log was closed; no more appends, reads or waits."""


class LogLocked(LogError):
    """Another process holds the log's writer lock."""

    def __init__(self, directory: Path) -> None:
        super().__init__(
            f"the log in {directory} is already open for writing by another process "
            f"(it holds the lock on {directory / 'LOCK'}). Stop that process first (is a daemon "
            "running on this data directory?); read-only tools such as `processor log dump` "
            "work while it runs."
        )
        self.directory = directory


class LogReadOnly(LogError):
    """A write was attempted on a log opened read-only."""


class LogFailed(LogError):
    """A write or fsync failed; the log accepts no more appends until it is reopened.

    After a failed fsync the kernel may have dropped the dirty pages, so retrying could acknowledge
    records that are not on disk: the only safe move is to stop, fix the cause, and reopen (which
    verifies the files and truncates any torn tail).
    """
