"""MemoryLog: the `Log` contract held in a Python list, for tests and benchmarks."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from log.base import Clock, LogBase
from log.protocol import Lsn, Record


class MemoryLog(LogBase):
    """An in-memory log: appends are "durable" at once; trim drops exactly the records asked for."""

    def __init__(self, clock: Clock | None = None) -> None:
        super().__init__(clock)
        self._records: list[Record] = []  # _records[i].lsn == self._first + i

    async def append(self, payload: bytes) -> Lsn:
        return (await self.append_batch((payload,)))[0]

    async def append_batch(self, payloads: Sequence[bytes]) -> list[Lsn]:
        self._check_open()
        first = self._tail + 1
        for i, payload in enumerate(payloads):
            self._records.append(Record(first + i, self._timestamp(), bytes(payload)))
        if payloads:
            self._advance_tail(first + len(payloads) - 1)
        # An append is a suspension point in every real log; keep that true here so tests of
        # interleavings behave the same against both implementations.
        await asyncio.sleep(0)
        return list(range(first, first + len(payloads)))

    async def read_batch(self, from_lsn: Lsn, max_records: int) -> list[Record]:
        self._check_read(from_lsn, max_records)
        start = from_lsn - self._first
        return self._records[start : start + max_records]

    async def trim(self, up_to_lsn: Lsn) -> None:
        self._check_open()
        new_first = min(up_to_lsn, self._tail) + 1
        if new_first > self._first:
            del self._records[: new_first - self._first]
            self._first = new_first

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._fail_waiters()
