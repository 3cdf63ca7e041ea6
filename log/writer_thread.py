"""The log's writer thread: runs blocking file work (fdatasync, segment rolls) off the event loop.

Jobs run one at a time, in submission order; each job's outcome is handed back to the event loop
with `call_soon_threadsafe`. This is a bare `SimpleQueue` and one thread rather than a
`ThreadPoolExecutor`: a group-commit cycle makes one round trip per fsync, and the executor's
futures and work items cost about twice the CPU per round trip.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any

Done = Callable[[Any, BaseException | None], None]  # (result, error), called on the loop
_Job = tuple[Callable[..., Any], tuple[Any, ...], Done]


class WriterThread:
    """One thread running submitted jobs in order; results come back on `loop`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, name: str) -> None:
        self._loop = loop
        self._jobs: SimpleQueue[_Job | None] = SimpleQueue()
        # daemon: a process exiting without closing its log must not hang on this thread
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def submit(self, done: Done, fn: Callable[..., Any], *args: Any) -> None:
        """Run `fn(*args)` in the thread, then `done(result, error)` on the loop."""
        self._jobs.put((fn, args, done))

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(*args)` in the thread and return (or raise) its outcome."""
        fut: asyncio.Future[Any] = self._loop.create_future()

        def done(result: Any, error: BaseException | None) -> None:
            if fut.done():  # the awaiting task was cancelled
                return
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(result)

        self.submit(done, fn, *args)
        return await fut

    def stop(self) -> None:
        """Let queued jobs finish, then end the thread (blocks until it has)."""
        self._jobs.put(None)
        self._thread.join()

    def _serve(self) -> None:
        call_soon = self._loop.call_soon_threadsafe
        while (job := self._jobs.get()) is not None:
            fn, args, done = job
            result: Any = None
            error: BaseException | None = None
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to the loop, which fails the log
                error = exc
            try:
                call_soon(done, result, error)
            except RuntimeError:  # the loop is closed: nobody waits for this any more
                return
