"""What every `Log` implementation shares: the clock rule, tail waiters, `read` on `read_batch`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence

from log.errors import LogClosed, TrimmedError
from log.protocol import Lsn, Record

Clock = Callable[[], int]
READ_CHUNK_RECORDS = 4096


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class LogBase(ABC):
    """Timestamps (`max(previous, now)`), `wait_beyond`, `read` and argument checks."""

    def __init__(self, clock: Clock | None) -> None:
        self._clock: Clock = clock or wall_clock_ms
        self._last_ts = 0
        self._tail: Lsn = 0
        self._first: Lsn = 1
        self._closed = False
        self._tail_waiters: list[tuple[Lsn, asyncio.Future[Lsn]]] = []

    # --- subclasses -------------------------------------------------------------------------
    @abstractmethod
    async def append(self, payload: bytes) -> Lsn: ...

    @abstractmethod
    async def append_batch(self, payloads: Sequence[bytes]) -> list[Lsn]: ...

    @abstractmethod
    async def read_batch(self, from_lsn: Lsn, max_records: int) -> list[Record]: ...

    @abstractmethod
    async def trim(self, up_to_lsn: Lsn) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    # --- shared -----------------------------------------------------------------------------
    def tail(self) -> Lsn:
        return self._tail

    def first_lsn(self) -> Lsn:
        return self._first

    @property
    def closed(self) -> bool:
        return self._closed

    def _timestamp(self) -> int:
        now = self._clock()
        if now > self._last_ts:
            self._last_ts = now
        return self._last_ts

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosed("the log is closed")

    def _check_read(self, from_lsn: Lsn, max_records: int) -> None:
        self._check_open()
        if from_lsn < 1:
            raise ValueError(f"LSNs start at 1; cannot read from LSN {from_lsn}")
        if max_records < 1:
            raise ValueError(f"max_records must be at least 1, got {max_records}")
        if from_lsn < self._first:
            raise TrimmedError(from_lsn, self._first)

    async def read(self, from_lsn: Lsn, to_lsn: Lsn | None = None) -> AsyncIterator[Record]:
        end = self._tail if to_lsn is None else min(to_lsn, self._tail)
        lsn = from_lsn
        while lsn <= end:
            batch = await self.read_batch(lsn, min(READ_CHUNK_RECORDS, end - lsn + 1))
            if not batch:
                return
            for record in batch:
                yield record
            lsn = batch[-1].lsn + 1

    async def wait_beyond(self, lsn: Lsn) -> Lsn:
        self._check_open()
        if self._tail > lsn:
            return self._tail
        fut: asyncio.Future[Lsn] = asyncio.get_running_loop().create_future()
        entry = (lsn, fut)
        self._tail_waiters.append(entry)
        try:
            return await fut
        finally:
            # A cancelled wait (a timeout on an idle log) must not leave its entry behind.
            if fut.cancelled():
                with contextlib.suppress(ValueError):
                    self._tail_waiters.remove(entry)

    def _advance_tail(self, tail: Lsn) -> None:
        self._tail = tail
        if self._tail_waiters:
            still = []
            for lsn, fut in self._tail_waiters:
                if fut.done():
                    continue
                if tail > lsn:
                    fut.set_result(tail)
                else:
                    still.append((lsn, fut))
            self._tail_waiters = still

    def _fail_waiters(self) -> None:
        for _, fut in self._tail_waiters:
            if not fut.done():
                fut.set_exception(LogClosed("the log was closed while waiting for new records"))
        self._tail_waiters = []
