"""The leader's timer service: a heap of (fire_at, invocation, timer) driven by an injected clock.

When timers are due, `fire` is called with all of them at once (the leader appends one TimerFired
command each, so they share a log batch). Cancellation is lazy: `_live` maps each invocation's
timers to their current fire time, and a heap entry that no longer matches it is a tombstone that
is skipped when popped; the heap is rebuilt when tombstones outnumber live entries. So cancel is
O(1) (O(k) for all k timers of an invocation) and never scans the heap.

Timers are rebuilt on start from the store (`load`), never from old actions.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Awaitable, Callable, Iterable

import anyio

from processor.commands import TimerKey
from processor.leader.clock import Clock

DueTimer = tuple[str, TimerKey]
FireFn = Callable[[list[DueTimer]], Awaitable[None]]

_COMPACT_MIN = 1024


class TimerService:
    def __init__(self, clock: Clock, fire: FireFn, *, batch_limit: int = 1000) -> None:
        self.clock = clock
        self._fire = fire
        self._batch_limit = batch_limit
        self._heap: list[tuple[int, int, str, TimerKey]] = []
        self._live: dict[str, dict[TimerKey, int]] = {}
        self._seq = itertools.count()
        self._stale = 0
        self._wake = anyio.Event()
        self._waiting_for: int | None = None  # the deadline the run loop sleeps until

    def __len__(self) -> int:
        return sum(len(t) for t in self._live.values())

    def fire_at(self, invocation_id: str, timer: TimerKey) -> int | None:
        return self._live.get(invocation_id, {}).get(timer)

    def schedule(self, invocation_id: str, timer: TimerKey, fire_at: int) -> None:
        timers = self._live.setdefault(invocation_id, {})
        if timers.get(timer) == fire_at:
            return
        if timer in timers:
            self._stale += 1
        timers[timer] = fire_at
        heapq.heappush(self._heap, (fire_at, next(self._seq), invocation_id, timer))
        if self._waiting_for is None or fire_at < self._waiting_for:
            self._wake.set()

    def load(self, timers: Iterable[tuple[str, TimerKey, int]]) -> None:
        for invocation_id, timer, fire_at in timers:
            self.schedule(invocation_id, timer, fire_at)

    def cancel(self, invocation_id: str, timer: TimerKey | None = None) -> None:
        """Forget one timer of the invocation, or all of them when `timer` is None."""
        timers = self._live.get(invocation_id)
        if not timers:
            return
        if timer is None:
            self._stale += len(timers)
            del self._live[invocation_id]
        elif timers.pop(timer, None) is not None:
            self._stale += 1
            if not timers:
                del self._live[invocation_id]
        self._maybe_compact()

    def clear(self) -> None:
        self._heap.clear()
        self._live.clear()
        self._stale = 0
        self._wake.set()

    def _maybe_compact(self) -> None:
        if self._stale > _COMPACT_MIN and self._stale * 2 > len(self._heap):
            self._heap = [
                (fire_at, next(self._seq), inv, key)
                for inv, timers in self._live.items()
                for key, fire_at in timers.items()
            ]
            heapq.heapify(self._heap)
            self._stale = 0

    def _is_live(self, fire_at: int, invocation_id: str, timer: TimerKey) -> bool:
        return self._live.get(invocation_id, {}).get(timer) == fire_at

    def _next_deadline(self) -> int | None:
        while self._heap:
            fire_at, _, inv, key = self._heap[0]
            if self._is_live(fire_at, inv, key):
                return fire_at
            heapq.heappop(self._heap)
            self._stale = max(0, self._stale - 1)
        return None

    def pop_due(self, now_ms: int) -> list[DueTimer]:
        due: list[DueTimer] = []
        while self._heap and self._heap[0][0] <= now_ms and len(due) < self._batch_limit:
            fire_at, _, inv, key = heapq.heappop(self._heap)
            if not self._is_live(fire_at, inv, key):
                self._stale = max(0, self._stale - 1)
                continue
            timers = self._live[inv]
            del timers[key]
            if not timers:
                del self._live[inv]
            due.append((inv, key))
        return due

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Fire due timers forever; cancel the enclosing scope to stop."""
        task_status.started()
        while True:
            due = self.pop_due(self.clock.now_ms())
            if due:
                await self._fire(due)
                continue
            deadline = self._next_deadline()
            self._wake = anyio.Event()
            self._waiting_for = deadline
            try:
                async with anyio.create_task_group() as tg:
                    if deadline is not None:
                        tg.start_soon(self._sleep_then_cancel, deadline, tg.cancel_scope)
                    await self._wake.wait()
                    tg.cancel_scope.cancel()
            finally:
                self._waiting_for = None

    async def _sleep_then_cancel(self, deadline: int, scope: anyio.CancelScope) -> None:
        await self.clock.sleep_until(deadline)
        scope.cancel()
