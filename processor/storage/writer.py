"""The batch write: one planned batch and its applied LSN in one SQLite transaction.

`execute_plan` runs in the writer thread: BEGIN IMMEDIATE, the plan's statements (see
`write_plan`: a few multi-row statements per table, parameters already flattened), the test hook,
COMMIT. It does no Python work per row, so the thread holds the GIL only between statements and the
event loop can apply the next batch meanwhile. On any error the transaction is rolled back and the
error propagates (the store refuses later writes then).

`write_batch_sync` plans and executes in one go on one connection, for callers that have no event
loop thread of their own (tools, tests).

`REWIND_WAL` is the writer's own transaction right after a checkpoint that copied every frame: the
first write after such a checkpoint starts the WAL over, and SQLite then writes a new WAL header and
fsyncs it (unless synchronous=OFF) and truncates the file to `journal_size_limit`. Left to the next
batch, that made it the slowest of all: measured on the apply benchmark (batches of 500), its COMMIT
took 1.9-2.1 ms against 1.2 ms, and those batches (one in ~55) were the whole p99. So the writer
rewinds the WAL itself, as part of the checkpoint step. The transaction must really write a page:
SQLite leaves a cell alone when the new bytes equal the old ones, so an UPDATE that sets a column to
its own value writes no frame and starts nothing over. It flips the partition row's leader epoch and
flips it back, which dirties the page and commits the row unchanged (no state changes, the digest
neither).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from processor.storage.batch import BatchWrites
from processor.storage.write_plan import Entry, KeyCache, WritePlan, plan_batch

__all__ = [
    "REWIND_WAL",
    "KeyCache",
    "WritePlan",
    "execute_plan",
    "lookup_keys",
    "max_key",
    "rewind_wal",
    "write_batch_sync",
]

_LOOKUP_CHUNK = 500  # ids per IN (...) query; well under SQLite's variable limit

_FLIP_EPOCH = "UPDATE partition SET leader_epoch = -1 - leader_epoch WHERE id = 0"
# The statements of the transaction that rewinds the WAL (see the module docstring), in order;
# the writer process gets them as text.
REWIND_WAL: tuple[str, ...] = ("BEGIN IMMEDIATE", _FLIP_EPOCH, _FLIP_EPOCH, "COMMIT")


def lookup_keys(conn: sqlite3.Connection, ids: list[str]) -> dict[str, Entry]:
    """The stored (key, status) of `ids` (absent ids are missing), a few queries in all."""
    out: dict[str, Entry] = {}
    for start in range(0, len(ids), _LOOKUP_CHUNK):
        chunk = ids[start : start + _LOOKUP_CHUNK]
        marks = ",".join("?" * len(chunk))
        sql = f"SELECT id, key, status FROM invocations WHERE id IN ({marks})"
        for inv, key, status in conn.execute(sql, chunk):
            out[inv] = (key, status)
    return out


def max_key(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT COALESCE(MAX(key), 0) FROM invocations").fetchone()
    return int(row[0])


def execute_plan(
    conn: sqlite3.Connection, plan: WritePlan, before_commit: Callable[[], None] | None = None
) -> None:
    """Run one planned batch in one transaction (in the thread that owns `conn`)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        execute, executemany = conn.execute, conn.executemany
        for sql, params, many in plan.statements:
            if many:
                executemany(sql, params)
            else:
                execute(sql, params)
        if before_commit is not None:
            before_commit()
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def rewind_wal(conn: sqlite3.Connection) -> None:
    """Run `REWIND_WAL` on the writer's connection, right after a checkpoint that copied every
    frame. It changes no state; if it fails, the next batch rewinds the WAL instead."""
    try:
        for statement in REWIND_WAL:
            conn.execute(statement)
    except sqlite3.Error:
        if conn.in_transaction:
            conn.execute("ROLLBACK")


def write_batch_sync(
    conn: sqlite3.Connection,
    w: BatchWrites,
    before_commit: Callable[[], None] | None = None,
    keys: KeyCache | None = None,
) -> None:
    """Plan and write one folded batch on `conn`; `keys` is the caller's long-lived cache (a
    fresh, cold one without it). The cache is cleared if planning or the write fails."""
    if keys is None:
        keys = KeyCache()
    try:
        plan = plan_batch(w, keys, lambda ids: lookup_keys(conn, ids), lambda: max_key(conn))
        execute_plan(conn, plan, before_commit)
    except BaseException:
        keys.clear()  # it names rows the rollback removed
        raise
