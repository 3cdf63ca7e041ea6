"""The state store's SQLite schema, its version, and the migrations that reach it.

The version lives in `PRAGMA user_version` (atomic with the DDL that changes it). `MIGRATIONS[i]`
takes a file from version `i` to `i + 1`; a fresh file runs all of them. A file written by a newer
build (version above `SCHEMA_VERSION`) is refused with a message naming both versions, because an
older build cannot know what the newer tables mean.

Version 2 (the write path's locality): invocation ids are random, so keying the journal, events and
timers by the id text scattered every batch's inserts over the whole file: nearly one dirty page per
row, written to the WAL at COMMIT. Since version 2 every invocation also has an internal integer
`key`, assigned in insertion order (SQLite's rowid: max + 1), and the journal, events and timers are
keyed by `(inv_key, ...)`: the rows of the live (recent) invocations cluster at the end of each
b-tree, so a batch dirties a few pages per table instead of one per row. The id text stays in every
row (the API and the digest read by id) but is no longer part of a key. `inv_key` is an internal
detail: it depends on the insertion history (a migrated file numbers differently from a rebuilt
one), so it is in no digest and never leaves the store. Migration 1 -> 2 copies the tables in SQL;
the state digest is the same before and after.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

SCHEMA_VERSION = 2

_V1 = (
    """CREATE TABLE partition (
        id INTEGER PRIMARY KEY CHECK (id = 0),
        applied_lsn INTEGER NOT NULL,
        leader_epoch INTEGER NOT NULL
    )""",
    "INSERT INTO partition (id, applied_lsn, leader_epoch) VALUES (0, 0, 0)",
    """CREATE TABLE invocations (
        id TEXT PRIMARY KEY,
        service TEXT NOT NULL,
        handler TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        modified_at INTEGER NOT NULL,
        pinned_deployment TEXT,
        completed_at INTEGER,
        idempotency_key TEXT,
        view BLOB NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX invocations_by_created ON invocations (created_at DESC, id DESC)",
    "CREATE INDEX invocations_by_status ON invocations (status, created_at DESC)",
    "CREATE INDEX invocations_by_target ON invocations (service, handler, created_at DESC)",
    """CREATE TABLE journal (
        invocation_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        entry BLOB NOT NULL,
        appended_at INTEGER NOT NULL,
        PRIMARY KEY (invocation_id, idx)
    ) WITHOUT ROWID""",
    """CREATE TABLE events (
        invocation_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        at INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (invocation_id, seq)
    ) WITHOUT ROWID""",
    """CREATE TABLE timers (
        invocation_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        key INTEGER NOT NULL,
        fire_at INTEGER NOT NULL,
        PRIMARY KEY (invocation_id, kind, key)
    ) WITHOUT ROWID""",
)

_INVOCATIONS_V2 = """CREATE TABLE {name} (
        key INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        service TEXT NOT NULL,
        handler TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        modified_at INTEGER NOT NULL,
        pinned_deployment TEXT,
        completed_at INTEGER,
        idempotency_key TEXT,
        view BLOB NOT NULL
    )"""
_INVOCATION_COLUMNS = (
    "id, service, handler, status, created_at, modified_at, pinned_deployment, completed_at, "
    "idempotency_key, view"
)
_V2 = (
    _INVOCATIONS_V2.format(name="invocations_v2"),
    # created_at order, so the oldest invocations get the smallest keys, as in a rebuilt store
    f"INSERT INTO invocations_v2 ({_INVOCATION_COLUMNS}) SELECT {_INVOCATION_COLUMNS} "
    "FROM invocations ORDER BY created_at, id",
    """CREATE TABLE journal_v2 (
        inv_key INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        invocation_id TEXT NOT NULL,
        entry BLOB NOT NULL,
        appended_at INTEGER NOT NULL,
        PRIMARY KEY (inv_key, idx)
    ) WITHOUT ROWID""",
    "INSERT INTO journal_v2 SELECT i.key, j.idx, j.invocation_id, j.entry, j.appended_at "
    "FROM journal j JOIN invocations_v2 i ON i.id = j.invocation_id",
    """CREATE TABLE events_v2 (
        inv_key INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        invocation_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        at INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (inv_key, seq)
    ) WITHOUT ROWID""",
    "INSERT INTO events_v2 SELECT i.key, e.seq, e.invocation_id, e.kind, e.at, e.data "
    "FROM events e JOIN invocations_v2 i ON i.id = e.invocation_id",
    """CREATE TABLE timers_v2 (
        inv_key INTEGER NOT NULL,
        kind TEXT NOT NULL,
        key INTEGER NOT NULL,
        invocation_id TEXT NOT NULL,
        fire_at INTEGER NOT NULL,
        PRIMARY KEY (inv_key, kind, key)
    ) WITHOUT ROWID""",
    "INSERT INTO timers_v2 SELECT i.key, t.kind, t.key, t.invocation_id, t.fire_at "
    "FROM timers t JOIN invocations_v2 i ON i.id = t.invocation_id",
    "DROP TABLE invocations",
    "DROP TABLE journal",
    "DROP TABLE events",
    "DROP TABLE timers",
    "ALTER TABLE invocations_v2 RENAME TO invocations",
    "ALTER TABLE journal_v2 RENAME TO journal",
    "ALTER TABLE events_v2 RENAME TO events",
    "ALTER TABLE timers_v2 RENAME TO timers",
    "CREATE INDEX invocations_by_created ON invocations (created_at DESC, id DESC)",
    "CREATE INDEX invocations_by_status ON invocations (status, created_at DESC)",
    "CREATE INDEX invocations_by_target ON invocations (service, handler, created_at DESC)",
)

# MIGRATIONS[i] upgrades a file at version i to version i + 1.
MIGRATIONS: tuple[Sequence[str], ...] = (_V1, _V2)

# The tables that make up a partition's state, in digest order: (table, the columns that are state,
# in digest column order, the columns that identify a row in digest order). The internal `inv_key`
# columns are not state (see the module docstring), so the digest reads the same columns in the
# same order as it did in version 1.
STATE_TABLES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("partition", ("id", "applied_lsn", "leader_epoch"), ("id",)),
    ("invocations", tuple(_INVOCATION_COLUMNS.split(", ")), ("id",)),
    ("journal", ("invocation_id", "idx", "entry", "appended_at"), ("invocation_id", "idx")),
    ("events", ("invocation_id", "seq", "kind", "at", "data"), ("invocation_id", "seq")),
    ("timers", ("invocation_id", "kind", "key", "fire_at"), ("invocation_id", "kind", "key")),
)


class SchemaError(RuntimeError):
    """The state file cannot be used by this build (e.g. written by a newer version)."""


WAL_SIZE_LIMIT = 64 * 1024 * 1024


def pragmas(cache_mib: int = 16) -> list[str]:
    """Connection settings: WAL with synchronous=NORMAL, because the log is the durable copy and
    the store only has to stay consistent (it resumes from applied_lsn + 1 after a crash).

    The page cache is bounded per connection (`cache_mib`), so memory does not grow with the size
    of the store."""
    return [
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=NORMAL",
        "PRAGMA foreign_keys=OFF",
        f"PRAGMA cache_size=-{cache_mib * 1024}",
        "PRAGMA temp_store=MEMORY",
        # When a write rewinds the WAL, cut the file back to this size (it is otherwise left as
        # big as it ever grew; see `storage.store` on when the WAL rewinds).
        f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}",
    ]


def configure(conn: sqlite3.Connection, cache_mib: int = 16) -> None:
    """Apply `pragmas(cache_mib)` to `conn`."""
    for statement in pragmas(cache_mib):
        conn.execute(statement)


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def migrate(conn: sqlite3.Connection, path: str = "<memory>", target: int = SCHEMA_VERSION) -> int:
    """Bring the file to `target`; returns the version found before migrating."""
    found = schema_version(conn)
    if found > target:
        raise SchemaError(
            f"state store {path} has schema version {found}, but this build understands up to "
            f"version {target}. Use a newer processor, or delete the file to rebuild it from the "
            "log."
        )
    # The connection is in autocommit mode (isolation_level=None); each step is one explicit
    # transaction, so a crash leaves the file at a whole version.
    for version in range(found, target):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return found
