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

import sqlite3
from collections.abc import Callable
from itertools import islice
from typing import Any

import msgpack

from processor.status import InvocationView
from processor.storage.batch import BatchWrites
from processor.storage.view_codec import encode_view

_packb = msgpack.Packer(use_bin_type=True).pack

_INSERT_INVOCATION = (
    "INSERT INTO invocations (key, id, service, handler, status, created_at, modified_at, "
    "pinned_deployment, completed_at, idempotency_key, view) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
)
# service, handler, created_at and idempotency_key never change for an id (a purge deletes the row
# before a new invoke can reuse it), so an update leaves them, and the indexes on them, untouched.
_UPDATE_INVOCATION = (
    "UPDATE invocations SET modified_at=?, pinned_deployment=?, completed_at=?, view=? WHERE key=?"
)
_UPDATE_INVOCATION_STATUS = (
    "UPDATE invocations SET status=?, modified_at=?, pinned_deployment=?, completed_at=?, view=? "
    "WHERE key=?"
)

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
    inserts: list[tuple[Any, ...]] = []
    updates: list[tuple[Any, ...]] = []
    moves: list[tuple[Any, ...]] = []
    for inv, v in w.views.items():
        if v is None:
            continue
        status = v.status.value
        entry = _lookup(conn, keys, inv)
        if entry is None:
            key = _new_key(conn, keys)
            inserts.append(_insert_row(key, v))
        else:
            key = entry[0]
            row = (v.modified_at, v.pinned_deployment, v.completed_at, encode_view(v), key)
            if entry[1] == status:
                updates.append(row)
                continue
            moves.append((status, *row))
        entries[inv] = (key, status)
    if inserts:
        conn.executemany(_INSERT_INVOCATION, inserts)
    if updates:
        conn.executemany(_UPDATE_INVOCATION, updates)
    if moves:
        conn.executemany(_UPDATE_INVOCATION_STATUS, moves)

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
                (key, idx, inv, _packb(entry), at)
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
                (key, seq, inv, kind, at, _packb(data))
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


def _insert_row(key: int, v: InvocationView) -> tuple[Any, ...]:
    return (
        key,
        v.id,
        v.service,
        v.handler,
        v.status.value,
        v.created_at,
        v.modified_at,
        v.pinned_deployment,
        v.completed_at,
        v.idempotency_key,
        encode_view(v),
    )
