"""The store's DB thread: jobs in order, errors back to the caller, inline runs only when idle."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from processor.storage.db_thread import DbThread


@pytest.fixture
def db(tmp_path: Path) -> DbThread:
    thread = DbThread("test")

    def schema(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE t (n INTEGER)")

    thread.open_sync(str(tmp_path / "t.db"), schema)
    return thread


async def test_jobs_run_in_submission_order_and_inline_runs_wait_for_idle(db: DbThread) -> None:
    def insert(n: int) -> Callable[[sqlite3.Connection], int]:
        return lambda conn: conn.execute("INSERT INTO t VALUES (?)", (n,)).rowcount

    futures = [db.submit(insert(n)) for n in range(50)]
    assert not db.idle
    with pytest.raises(RuntimeError, match="busy"):
        db.run_inline(lambda conn: None)
    await asyncio.gather(*futures)
    assert db.idle
    rows = db.run_inline(
        lambda conn: [n for (n,) in conn.execute("SELECT n FROM t ORDER BY rowid")]
    )
    assert rows == list(range(50))
    db.close()


async def test_a_job_raising_stop_iteration_fails_its_caller_instead_of_hanging(
    db: DbThread,
) -> None:
    def first_row(conn: sqlite3.Connection) -> object:
        return next(iter(conn.execute("SELECT n FROM t")))  # empty table: StopIteration

    with pytest.raises(RuntimeError, match="StopIteration"):
        await asyncio.wait_for(db.run(first_row), 5)
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        await db.run(lambda conn: conn.execute("SELECT * FROM missing"))
    db.close()
