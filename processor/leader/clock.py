"""Clocks for the leader's timers: the wall clock, and a `FakeClock` that tests move by hand.

Timers fire at absolute epoch milliseconds (log record time + delay), so a clock only has to say
what time it is and sleep until a given time. `FakeClock.advance` wakes exactly the sleepers whose
deadline has been reached, so timer tests are fast and exact.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol

import anyio


class Clock(Protocol):
    def now_ms(self) -> int: ...

    async def sleep_until(self, deadline_ms: int) -> None:
        """Return once `now_ms() >= deadline_ms` (at once if it already is)."""
        ...


class SystemClock:
    def now_ms(self) -> int:
        return int(time.time() * 1000)

    async def sleep_until(self, deadline_ms: int) -> None:
        # The wall clock and the event loop's monotonic clock may drift apart; loop until the
        # wall clock agrees so a timer never fires before its time.
        while (remaining := deadline_ms - self.now_ms()) > 0:  # noqa: ASYNC110 - no event to wait on
            await anyio.sleep(remaining / 1000)


class FakeClock:
    """A manual clock: time moves only through `advance` / `set`."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self._now = start_ms
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now_ms(self) -> int:
        return self._now

    async def sleep_until(self, deadline_ms: int) -> None:
        if deadline_ms <= self._now:
            await anyio.lowlevel.checkpoint()
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (deadline_ms, next(self._seq), future))
        # A cancelled sleeper stays in the heap; `_wake` skips futures that are already done.
        await future

    def advance(self, ms: int) -> None:
        if ms < 0:
            raise ValueError("a clock cannot go backwards")
        self.set(self._now + ms)

    def set(self, now_ms: int) -> None:
        if now_ms < self._now:
            raise ValueError("a clock cannot go backwards")
        self._now = now_ms
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    @property
    def sleepers(self) -> int:
        """Sleepers still waiting (for tests that wait until something sleeps)."""
        return sum(1 for _, _, f in self._sleepers if not f.done())
