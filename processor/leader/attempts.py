"""Which attempt is current for each invocation, and a bounded pool that runs them.

The leader keeps one `Slot` per invocation: the attempt it last started. An attempt task emits its
effects only while its slot is still the invocation's current one, so effects of a superseded or
aborted attempt are dropped before they are appended (the state machine would ignore them anyway).

At most `max_concurrent` attempts run at once; the others wait in a FIFO queue. Aborting a queued
attempt just marks it (it is skipped when dequeued); aborting a running one cancels its task, which
closes its HTTP connection.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
import anyio.abc

from processor.actions import StartAttempt


@dataclass(eq=False, slots=True)
class Slot:
    invocation_id: str
    attempt: int
    service: str
    handler: str
    deployment_id: str | None  # pinned; None = the latest deployment serving the service
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    aborted: bool = False
    started: bool = False


RunFn = Callable[[Slot], Awaitable[None]]


class Attempts:
    def __init__(self, run: RunFn, max_concurrent: int = 1000) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self._run = run
        self.max_concurrent = max_concurrent
        self._current: dict[str, Slot] = {}
        self._queue: deque[Slot] = deque()
        self._running = 0
        self._tg: anyio.abc.TaskGroup | None = None

    def bind(self, tg: anyio.abc.TaskGroup) -> None:
        """Run attempt tasks in `tg` from now on (queued ones start at once)."""
        self._tg = tg
        self._pump()

    @property
    def running(self) -> int:
        return self._running

    @property
    def queued(self) -> int:
        return sum(1 for s in self._queue if not s.aborted)

    def current(self, invocation_id: str) -> Slot | None:
        return self._current.get(invocation_id)

    def is_current(self, slot: Slot) -> bool:
        return not slot.aborted and self._current.get(slot.invocation_id) is slot

    def start(self, action: StartAttempt) -> bool:
        """Queue the attempt unless this (or a later) attempt of the invocation is already here."""
        existing = self._current.get(action.invocation_id)
        if existing is not None:
            if existing.attempt >= action.attempt:
                return False
            self._abort_slot(existing)
        slot = Slot(
            action.invocation_id,
            action.attempt,
            action.service,
            action.handler,
            action.deployment_id,
        )
        self._current[action.invocation_id] = slot
        self._queue.append(slot)
        self._pump()
        return True

    def abort(self, invocation_id: str, attempt: int | None = None) -> bool:
        """Abort the invocation's attempt (only if it is `attempt`, when given)."""
        slot = self._current.get(invocation_id)
        if slot is None or (attempt is not None and slot.attempt != attempt):
            return False
        self._abort_slot(slot)
        return True

    def abort_all(self) -> None:
        for slot in list(self._current.values()):
            self._abort_slot(slot)
        self._queue.clear()

    def _abort_slot(self, slot: Slot) -> None:
        slot.aborted = True
        slot.scope.cancel()
        if self._current.get(slot.invocation_id) is slot:
            del self._current[slot.invocation_id]

    def _pump(self) -> None:
        if self._tg is None:
            return
        while self._running < self.max_concurrent and self._queue:
            slot = self._queue.popleft()
            if slot.aborted:
                continue
            slot.started = True
            self._running += 1
            self._tg.start_soon(self._task, slot, name=f"attempt {slot.invocation_id}")

    async def _task(self, slot: Slot) -> None:
        try:
            with slot.scope:
                await self._run(slot)
        finally:
            self._running -= 1
            if self._current.get(slot.invocation_id) is slot:
                del self._current[slot.invocation_id]
            self._pump()
