"""One thread that owns a partition's SQLite connection; async code hands it whole functions.

Why not aiosqlite: every aiosqlite call is one thread hop (~30-100 µs here), so a batch write made
of several `executemany` calls plus BEGIN/COMMIT costs several hops, and the one-function-per-batch
shape we want would need aiosqlite's private API. Owning the thread ourselves makes "one batch =
one hop" explicit: `await db.run(fn)` runs `fn(conn)` in the DB thread, where the whole
transaction happens without returning to the event loop. Only this thread ever touches the
connection, so sqlite3's same-thread check stays on.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class DbThread:
    def __init__(self, name: str = "sqlite") -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._conn: sqlite3.Connection | None = None
        self._closed = False

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
        self._executor.submit(self._open, path).result()
        if setup is not None:
            self.call_sync(setup)

    def call_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` in the DB thread and block for the result (startup and tools only)."""
        return self._executor.submit(self._call, fn).result()

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` in the DB thread; one thread hop however much SQL `fn` runs."""
        return await self.submit(fn)

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Queue `fn(conn)` now (jobs run in submission order); await the future for its result."""
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._executor, self._call, fn)

    def submit_detached(self, fn: Callable[[sqlite3.Connection], object]) -> None:
        """Queue `fn(conn)` without waiting for it (background maintenance such as checkpoints);
        callable from any thread. Its errors are dropped: it must not matter whether it ran."""
        self._executor.submit(self._call, fn)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        """Close the connection and stop the thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._executor.submit(self._close).result()
        finally:
            self._executor.shutdown(wait=True)
