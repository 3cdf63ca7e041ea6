"""Fixtures for the log tests: one factory per `Log` implementation, a clock tests can steer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from log import FileLog, MemoryLog
from log.base import LogBase


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


@pytest.fixture(params=["memory", "file"])
async def logs(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LogFactory]:
    factory = LogFactory(request.param, tmp_path / "log")
    yield factory
    await factory.close_all()


@pytest.fixture
async def file_logs(tmp_path: Path) -> AsyncIterator[LogFactory]:
    factory = LogFactory("file", tmp_path / "log")
    yield factory
    await factory.close_all()
