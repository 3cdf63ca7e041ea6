"""Helpers shared by the log tests: a steerable clock, LSN-derived payloads, log factories."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from log import FileLog, MemoryLog
from log.base import LogBase


class SteppingClock:
    """A clock returning the values it is told to, then repeating the last one."""

    def __init__(self, *values: int) -> None:
        self.values = list(values) or [1_000]
        self.last = self.values[0]

    def set(self, *values: int) -> None:
        self.values = list(values)

    def __call__(self) -> int:
        if self.values:
            self.last = self.values.pop(0)
        return self.last


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"))


def append_bytes(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def payload_for(lsn: int, size: int = 40) -> bytes:
    """A payload derived from its LSN, so a test can tell a record is intact and in its place."""
    seed = f"record-{lsn}-".encode()
    return (seed * (size // len(seed) + 1))[:size]


class LogFactory:
    """Opens logs of one implementation; `reopen()` is the same log after a restart."""

    def __init__(self, kind: str, directory: Path) -> None:
        self.kind = kind
        self.directory = directory
        self.opened: list[LogBase] = []
        self._memory: MemoryLog | None = None

    def open(self, clock: Callable[[], int] | None = None, **kwargs: object) -> LogBase:
        log: LogBase
        if self.kind == "memory":
            log = self._memory = MemoryLog(clock=clock)
        else:
            log = FileLog(self.directory, clock=clock, **kwargs)  # type: ignore[arg-type]
        self.opened.append(log)
        return log

    @property
    def durable(self) -> bool:
        return self.kind == "file"

    async def close_all(self) -> None:
        for log in self.opened:
            await log.close()
