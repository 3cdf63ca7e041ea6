"""The batch write: one folded batch and its applied LSN in one SQLite transaction.

Runs in the writer thread. Every row of the journal, events and timers is keyed by its
invocation's internal integer `key` (schema version 2). Looking that key up by the id text inside
each statement (`(SELECT key FROM invocations WHERE id=?)`) cost an index probe per row, and an
upsert on the id (`INSERT ... ON CONFLICT (id) DO UPDATE`) cost another per view and rewrote the
status index entry even when the status had not changed. So the writer keeps a bounded map
`id -> (key, stored status)` (`KeyCache`), filled by the rows it writes and, on a miss, by one
point read; with it:

- a new invocation is inserted with its key given explicitly (the next key after the largest
  one in the file, as SQLite's own rowid choice would be);
- an update goes by key (a rowid seek), and sets `status` (and so touches the status index) only
  when the status really changed;
- the journal, event and timer rows carry the key itself.

The map is only a cache of what the file says: it is written inside the transaction and is
thrown away if the transaction fails (the store refuses later writes then anyway). It has no
effect on what is stored, so the state digest does not depend on it.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from itertools import islice
from typing import Any

import msgpack

from processor.storage.batch import BatchWrites
from processor.storage.view_codec import encode_view

_packb = msgpack.Packer(use_bin_type=True).pack

# The invocation statements come in variants with NULL written in the SQL for the nullable
# columns that are None, and blobs are bound as bytearray: Python's sqlite3 binds int, float, str
# and bytearray parameters directly but sends every other value (None, bytes) through its adapter
# registry first, ~1 µs per parameter here, which was a tenth of the write path.
# service, handler, created_at and idempotency_key never change for an id (a purge deletes the row
# before a new invoke can reuse it), so an update leaves them, and the indexes on them, untouched.


@functools.cache
def _insert_sql(pinned: bool, completed: bool, idempotency: bool) -> str:
    values = ["?"] * 7
    values += ["?" if given else "NULL" for given in (pinned, completed, idempotency)]
    return (
        "INSERT INTO invocations (key, id, service, handler, status, created_at, modified_at, "
        f"pinned_deployment, completed_at, idempotency_key, view) VALUES ({','.join(values)},?)"
    )


@functools.cache
def _update_sql(move: bool, pinned: bool, completed: bool) -> str:
    sets = ["status=?"] if move else []
    sets.append("modified_at=?")
    sets.append("pinned_deployment=?" if pinned else "pinned_deployment=NULL")
    sets.append("completed_at=?" if completed else "completed_at=NULL")
    sets.append("view=?")
    return f"UPDATE invocations SET {', '.join(sets)} WHERE key=?"


Entry = tuple[int, str]  # (key, stored status)


class KeyCache:
    """A bounded map `invocation id -> (key, stored status)` owned by the writer thread."""

    def __init__(self, capacity: int = 20_000) -> None:
        self.capacity = capacity
        self.entries: dict[str, Entry] = {}
        self.next_key = 0  # 0: not read from the file yet

    def clear(self) -> None:
        self.entries.clear()
        self.next_key = 0

    def trim(self) -> None:
        """Forget the oldest half once over capacity (insertion order: new invocations last)."""
        entries = self.entries
        if len(entries) > self.capacity:
            for inv in list(islice(entries, len(entries) - self.capacity // 2)):
                del entries[inv]


def _lookup(conn: sqlite3.Connection, keys: KeyCache, inv: str) -> Entry | None:
    entry = keys.entries.get(inv)
    if entry is None:
        row = conn.execute("SELECT key, status FROM invocations WHERE id=?", (inv,)).fetchone()
        if row is not None:
            entry = keys.entries[inv] = (row[0], row[1])
    return entry


def _new_key(conn: sqlite3.Connection, keys: KeyCache) -> int:
    if keys.next_key == 0:
        row = conn.execute("SELECT COALESCE(MAX(key), 0) FROM invocations").fetchone()
        keys.next_key = int(row[0]) + 1
    key = keys.next_key
    keys.next_key = key + 1
    return key


def write_batch_sync(
    conn: sqlite3.Connection,
    w: BatchWrites,
    before_commit: Callable[[], None] | None = None,
    keys: KeyCache | None = None,
) -> None:
    """Write one folded batch and its applied LSN in one transaction (runs in the DB thread).

    `keys` is the writer's long-lived `KeyCache`; without one, a fresh (cold) one is used."""
    if keys is None:
        keys = KeyCache()
    conn.execute("BEGIN IMMEDIATE")
    try:
        _write(conn, w, keys)
        if before_commit is not None:
            before_commit()
    except BaseException:
        keys.clear()  # it may name rows the rollback removes
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    keys.trim()


def _write(conn: sqlite3.Connection, w: BatchWrites, keys: KeyCache) -> None:
    entries = keys.entries
    # Invocation rows first: the journal, event and timer rows of an invocation need its key.
    if w.purged:
        gone: list[tuple[int]] = []
        for inv in w.purged:
            entry = _lookup(conn, keys, inv)
            if entry is not None:
                gone.append((entry[0],))
                del entries[inv]
        if gone:
            for table in ("journal", "events", "timers"):
                conn.executemany(f"DELETE FROM {table} WHERE inv_key=?", gone)
            conn.executemany("DELETE FROM invocations WHERE key=?", gone)
    statements: dict[str, list[tuple[Any, ...]]] = {}
    for inv, v in w.views.items():
        if v is None:
            continue
        status = v.status.value
        pinned, completed = v.pinned_deployment, v.completed_at
        row: tuple[Any, ...]
        entry = _lookup(conn, keys, inv)
        if entry is None:
            key = _new_key(conn, keys)
            idem = v.idempotency_key
            sql = _insert_sql(pinned is not None, completed is not None, idem is not None)
            row = (key, inv, v.service, v.handler, status, v.created_at, v.modified_at)
            if pinned is not None:
                row += (pinned,)
            if completed is not None:
                row += (completed,)
            if idem is not None:
                row += (idem,)
            row += (bytearray(encode_view(v)),)
        else:
            key = entry[0]
            move = entry[1] != status
            sql = _update_sql(move, pinned is not None, completed is not None)
            row = (status, v.modified_at) if move else (v.modified_at,)
            if pinned is not None:
                row += (pinned,)
            if completed is not None:
                row += (completed,)
            row += (bytearray(encode_view(v)), key)
        rows = statements.get(sql)
        if rows is None:
            statements[sql] = [row]
        else:
            rows.append(row)
        entries[inv] = (key, status)
    # inserts first, as before (a purged and re-invoked id is an insert of its new key)
    for sql in sorted(statements, key=lambda q: not q.startswith("INSERT")):
        conn.executemany(sql, statements[sql])

    def key_of(inv: str) -> int | None:
        entry = entries.get(inv) or _lookup(conn, keys, inv)
        return None if entry is None else entry[0]

    if w.cleared_timers:
        cleared = [(k,) for k in map(key_of, w.cleared_timers) if k is not None]
        conn.executemany("DELETE FROM timers WHERE inv_key=?", cleared)
    if w.timers:
        deletes: list[tuple[int, str, int]] = []
        sets: list[tuple[int | None, str, int, str, int]] = []
        for inv, timers in w.timers.items():
            inv_key = key_of(inv)
            for (kind, timer_key), fire_at in timers.items():
                if fire_at is None:
                    if inv_key is not None:  # nothing stored to delete otherwise
                        deletes.append((inv_key, kind, timer_key))
                else:
                    sets.append((inv_key, kind, timer_key, inv, fire_at))
        if deletes:
            conn.executemany("DELETE FROM timers WHERE inv_key=? AND kind=? AND key=?", deletes)
        if sets:
            conn.executemany(
                "INSERT OR REPLACE INTO timers (inv_key, kind, key, invocation_id, fire_at) "
                "VALUES (?,?,?,?,?)",
                sets,
            )
    if w.journal:
        conn.executemany(
            "INSERT INTO journal (inv_key, idx, invocation_id, entry, appended_at) "
            "VALUES (?,?,?,?,?)",
            [
                (key, idx, inv, bytearray(_packb(entry)), at)
                for inv, rows in w.journal.items()
                for key in (key_of(inv),)
                for idx, entry, at in rows
            ],
        )
    if w.events:
        conn.executemany(
            "INSERT OR REPLACE INTO events (inv_key, seq, invocation_id, kind, at, data) "
            "VALUES (?,?,?,?,?,?)",
            [
                (key, seq, inv, kind, at, bytearray(_packb(data)))
                for inv, evs in w.events.items()
                for key in (key_of(inv),)
                for seq, (kind, at, data) in evs.items()
            ],
        )
    if w.leader_epoch is None:
        conn.execute("UPDATE partition SET applied_lsn=? WHERE id=0", (w.applied_lsn,))
    else:
        conn.execute(
            "UPDATE partition SET applied_lsn=?, leader_epoch=? WHERE id=0",
            (w.applied_lsn, w.leader_epoch),
        )
