"""Which attempt is current for each invocation, and a bounded pool that runs them.

The leader keeps one `Slot` per invocation: the attempt it last started. An attempt task emits its
effects only while its slot is still the invocation's current one, so effects of a superseded or
aborted attempt are dropped before they are appended (the state machine would ignore them anyway).

At most `max_concurrent` attempts run at once; the others wait in a FIFO queue. Aborting a queued
attempt just marks it (it is skipped when dequeued); aborting a running one cancels its task, which
closes its HTTP connection.

Attempt tasks are plain asyncio tasks, not children of the bound anyio task group: spawning through
anyio (a task handle and a cancel scope per task) cost about four times as much per attempt, on the
hot path of every invocation. One supervisor task in the group ties them to it instead: it lives
while any attempt runs, so the group still waits for them, an attempt that crashes still crashes
the group, and cancelling the group cancels them and waits until they are gone.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

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
    task: asyncio.Task[None] | None = None
    aborted: bool = False
    started: bool = False


RunFn = Callable[[Slot], Coroutine[Any, Any, None]]


class Attempts:
    def __init__(self, run: RunFn, max_concurrent: int = 1000) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self._run = run
        self.max_concurrent = max_concurrent
        self._current: dict[str, Slot] = {}
        self._queue: deque[Slot] = deque()
        self._tasks: dict[asyncio.Task[None], Slot] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self._supervised = False
        self._wake: asyncio.Future[None] | None = None
        self._crash: BaseException | None = None

    def bind(self, tg: anyio.abc.TaskGroup) -> None:
        """Run attempt tasks under `tg` from now on (queued ones start at once)."""
        self._tg = tg
        self._pump()

    @property
    def running(self) -> int:
        return len(self._tasks)

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
        if slot.task is not None:
            slot.task.cancel()
        if self._current.get(slot.invocation_id) is slot:
            del self._current[slot.invocation_id]

    def _pump(self) -> None:
        if self._tg is None:
            return
        queue = self._queue
        while len(self._tasks) < self.max_concurrent and queue:
            slot = queue.popleft()
            if slot.aborted:
                continue
            slot.started = True
            task = asyncio.create_task(self._run(slot), name=f"attempt {slot.invocation_id}")
            slot.task = task
            self._tasks[task] = slot
            # A callback, not a `finally` in the task: a task cancelled before its first step
            # never runs its coroutine at all.
            task.add_done_callback(self._finished)
        if self._tasks and not self._supervised:
            self._supervised = True
            self._tg.start_soon(self._supervise, name="attempts supervisor")

    def _finished(self, task: asyncio.Task[None]) -> None:
        slot = self._tasks.pop(task)
        if self._current.get(slot.invocation_id) is slot:
            del self._current[slot.invocation_id]
        if not task.cancelled():
            exc = task.exception()
            if exc is not None and self._crash is None:
                self._crash = exc
        wake = self._wake
        if wake is not None and not wake.done() and (self._crash is not None or not self._tasks):
            wake.set_result(None)
        self._pump()

    async def _supervise(self) -> None:
        try:
            while self._tasks and self._crash is None:
                self._wake = asyncio.get_running_loop().create_future()
                await self._wake
            if self._crash is not None:
                crash, self._crash = self._crash, None
                raise crash
        except BaseException:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            if tasks:
                with anyio.CancelScope(shield=True):
                    await asyncio.wait(tasks)
            raise
        finally:
            self._wake = None
            self._supervised = False
