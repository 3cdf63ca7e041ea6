"""One thread that owns a partition's SQLite connection; async code hands it whole functions.

Why not aiosqlite: every aiosqlite call is one thread hop (~30-100 µs here), so a batch write made
of several `executemany` calls plus BEGIN/COMMIT costs several hops, and the one-function-per-batch
shape we want would need aiosqlite's private API. Owning the thread ourselves makes "one batch =
one hop" explicit: `await db.run(fn)` runs `fn(conn)` in the DB thread, where the whole
transaction happens without returning to the event loop. Only this thread ever touches the
connection, except `run_inline`: a caller on the event loop may run a short job right there
while the thread is idle (nothing queued or running), which saves the hop's cost for small
batches; the connection is opened with the same-thread check off for that, and the idle check
(`_in_flight`, kept on the loop) is what keeps the two from ever using it at once.

The hop itself is a bare `SimpleQueue` and one `call_soon_threadsafe` back, not a
`ThreadPoolExecutor`: the executor's work items, condition variable and chained concurrent future
cost about twice the event loop's CPU per hop, and the daemon makes a few hops per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from queue import SimpleQueue
from typing import Any, TypeVar

T = TypeVar("T")

# (function, where its outcome goes): an asyncio future settled on its loop, or a concurrent
# future for the blocking callers (startup, tools, detached maintenance).
_Job = tuple[Callable[[sqlite3.Connection], Any], "asyncio.Future[Any] | Future[Any] | None"]


class DbThread:
    def __init__(self, name: str = "sqlite") -> None:
        self._jobs: SimpleQueue[_Job | None] = SimpleQueue()
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self._in_flight = 0  # jobs submitted from the loop whose outcome is not back yet
        self._path = ""
        # daemon: a process exiting without closing its store must not hang on this thread
        self._thread = threading.Thread(target=self._serve, name=f"{name}_0", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, out = job
            result: Any = None
            error: BaseException | None = None
            try:
                conn = self._conn
                if conn is None and fn != self._connect:
                    raise RuntimeError("the database connection is closed")
                result = fn(conn)  # type: ignore[arg-type]  # None only for _connect
            except StopIteration as exc:  # a future cannot carry StopIteration: it would hang
                error = RuntimeError(f"a database job raised StopIteration: {exc!r}")
                error.__cause__ = exc
            except BaseException as exc:
                error = exc
            if out is None:
                continue  # detached: nobody waits for it
            if isinstance(out, Future):
                if error is not None:
                    out.set_exception(error)
                else:
                    out.set_result(result)
                continue
            # RuntimeError: the loop is closed, nobody waits for this any more
            with contextlib.suppress(RuntimeError):
                out.get_loop().call_soon_threadsafe(self._settle, out, result, error)
        self._close()

    def _blocking(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise RuntimeError("the database thread is stopped")
        out: Future[T] = Future()
        self._jobs.put((fn, out))
        return out.result()

    def open_sync(
        self, path: str, setup: Callable[[sqlite3.Connection], None] | None = None
    ) -> None:
        self._path = path
        self._blocking(self._connect)
        if setup is not None:
            self.call_sync(setup)

    def call_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` in the DB thread and block for the result (startup and tools only)."""
        return self._blocking(fn)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` in the DB thread; one thread hop however much SQL `fn` runs."""
        return await self.submit(fn)

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Queue `fn(conn)` now (jobs run in submission order); await the future for its result."""
        if self._closed:
            raise RuntimeError("the database thread is stopped")
        out: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._in_flight += 1
        self._jobs.put((fn, out))
        return out

    @property
    def idle(self) -> bool:
        """No job submitted from the loop is queued or running (call on the loop's thread)."""
        return self._in_flight == 0

    def run_inline(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` right here, on the event loop's thread; only while `idle`."""
        if self._closed or self._conn is None:
            raise RuntimeError("the database connection is closed")
        if self._in_flight:
            raise RuntimeError("the database thread is busy: submit the job instead")
        return fn(self._conn)

    def submit_detached(self, fn: Callable[[sqlite3.Connection], object]) -> None:
        """Queue `fn(conn)` without waiting for it (background maintenance such as checkpoints);
        callable from any thread. Its errors are dropped: it must not matter whether it ran."""
        if not self._closed:
            self._jobs.put((fn, None))

    def _connect(self, _: sqlite3.Connection | None) -> None:
        """The first job, the only one that runs without a connection."""
        # isolation_level=None: autocommit; transactions are explicit BEGIN ... COMMIT.
        # Same-thread check off: see `run_inline`.
        # Room for every multi-row statement variant a batch write uses (see `write_plan`).
        self._conn = sqlite3.connect(
            self._path, isolation_level=None, check_same_thread=False, cached_statements=512
        )

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        """Close the connection and stop the thread once queued jobs are done (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        self._thread.join()

    def _settle(self, out: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
        self._in_flight -= 1  # on the loop: the thread is done with the connection for this job
        if out.done():  # the awaiting task was cancelled
            return
        if error is not None:
            out.set_exception(error)
        else:
            out.set_result(result)
