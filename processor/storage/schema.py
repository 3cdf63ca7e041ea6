"""The state store's SQLite schema, its version, and the migrations that reach it.

The version lives in `PRAGMA user_version` (atomic with the DDL that changes it). `MIGRATIONS[i]`
takes a file from version `i` to `i + 1`; a fresh file runs all of them. A file written by a newer
build (version above `SCHEMA_VERSION`) is refused with a message naming both versions, because an
older build cannot know what the newer tables mean.

Text primary keys use `WITHOUT ROWID` so each row lives in its primary-key b-tree once (one index to
update per write instead of two).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

SCHEMA_VERSION = 1

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

# MIGRATIONS[i] upgrades a file at version i to version i + 1.
MIGRATIONS: tuple[Sequence[str], ...] = (_V1,)

# The tables that make up a partition's state, with their primary key columns, in digest order.
STATE_TABLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("partition", ("id",)),
    ("invocations", ("id",)),
    ("journal", ("invocation_id", "idx")),
    ("events", ("invocation_id", "seq")),
    ("timers", ("invocation_id", "kind", "key")),
)


class SchemaError(RuntimeError):
    """The state file cannot be used by this build (e.g. written by a newer version)."""


def configure(conn: sqlite3.Connection, cache_mib: int = 16) -> None:
    """Connection settings: WAL with synchronous=NORMAL, because the log is the durable copy and
    the store only has to stay consistent (it resumes from applied_lsn + 1 after a crash).

    The page cache is bounded per connection (`cache_mib`), so memory does not grow with the size
    of the store."""
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=OFF")
    conn.execute(f"PRAGMA cache_size=-{cache_mib * 1024}")
    conn.execute("PRAGMA temp_store=MEMORY")


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
