"""One thread that owns a partition's SQLite connection; async code hands it whole functions.

Why not aiosqlite: every aiosqlite call is one thread hop (~30-100 µs here), so a batch write made
of several `executemany` calls plus BEGIN/COMMIT costs several hops, and the one-function-per-batch
shape we want would need aiosqlite's private API. Owning the thread ourselves makes "one batch =
one hop" explicit: `await db.run(fn)` runs `fn(conn)` in the DB thread, where the whole
transaction happens without returning to the event loop. Only this thread ever touches the
connection, so sqlite3's same-thread check stays on.

The thread takes jobs from a plain queue and hands results back with one
`loop.call_soon_threadsafe` per job: half the CPU of `run_in_executor` per hop (no concurrent
Future, work item or future chaining), which is paid a few times per batch and once per attempt.
A job whose awaiting future was cancelled still runs (a write that was queued always commits or
fails in this thread, as the runner expects); only its result is dropped.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

# A job: the function to run and where its outcome goes (an asyncio future with its loop, or a
# concurrent future for the blocking calls, or nothing for detached jobs).
_Job = tuple[Callable[[], Any], "asyncio.Future[Any] | Future[Any] | None", Any]


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class DbThread:
    def __init__(self, name: str = "sqlite") -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    def _serve(self) -> None:
        jobs = self._jobs
        while True:
            job = jobs.get()
            if job is None:
                return
            fn, future, loop = job
            try:
                value, ok = fn(), True
            except BaseException as exc:  # handed to the waiter, never swallowed
                value, ok = exc, False
            if future is None:
                continue
            if isinstance(future, Future):
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
                continue
            try:
                loop.call_soon_threadsafe(_settle, future, ok, value)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

    def _put(self, job: _Job) -> None:
        if self._closed:
            raise RuntimeError("the database thread is stopped (cannot queue work after close)")
        self._jobs.put(job)

    def _blocking(self, fn: Callable[[], T]) -> T:
        future: Future[T] = Future()
        self._put((fn, future, None))
        return future.result()

    def _open(self, path: str) -> None:
        # isolation_level=None: autocommit; transactions are explicit BEGIN ... COMMIT.
        self._conn = sqlite3.connect(path, isolation_level=None)

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            raise RuntimeError("the database connection is closed")
        return fn(self._conn)

    def open_sync(
        self, path: str, setup: Callable[[sqlite3.Connection], None] | None = None
    ) -> None:
        self._blocking(lambda: self._open(path))
        if setup is not None:
            self.call_sync(setup)

    def call_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` in the DB thread and block for the result (startup and tools only)."""
        return self._blocking(lambda: self._call(fn))

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` in the DB thread; one thread hop however much SQL `fn` runs."""
        return await self.submit(fn)

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Queue `fn(conn)` now (jobs run in submission order); await the future for its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._put((lambda: self._call(fn), future, loop))
        return future

    def submit_detached(self, fn: Callable[[sqlite3.Connection], object]) -> None:
        """Queue `fn(conn)` without waiting for it (background maintenance such as checkpoints);
        callable from any thread. Its errors are dropped: it must not matter whether it ran."""
        self._put((lambda: self._call(fn), None, None))

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        """Close the connection and stop the thread (idempotent)."""
        if self._closed:
            return
        try:
            self._blocking(self._close)
        finally:
            self._closed = True
            self._jobs.put(None)
            self._thread.join()
