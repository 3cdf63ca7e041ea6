"""The issue's yardstick, measured in the same run: "a simple two-table apply loop in Python".

Issue 3 sets its apply targets against such a loop ("measured 150k records/s here"). This module
runs one over the apply bench's own log records, so the runner's figures can be read against what
the same machine gives a loop that does almost nothing per record:

- per record: msgpack-decode the envelope, bump a per-invocation counter in a dict;
- per batch of `batch_size`: one transaction of two `executemany`s, an upsert of each touched
  invocation's row and an insert of every record (with its payload re-encoded, as a journal row
  is), into WAL SQLite with `synchronous=NORMAL` and no automatic checkpoint. Nor any other:
  its WAL grows for the whole run, so it never pays for the checkpoints the store runs to keep
  its WAL at 64 MiB (a cost in the runner's figures, not in this loop's).

`python_only` is the same loop without SQLite: the number the issue's sentence most likely
quotes. Neither loop checks a status, retries, times or answers anything; they are a ceiling for
a real state machine on this machine, not a competitor.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgpack

_SCHEMA = (
    "CREATE TABLE state (id TEXT PRIMARY KEY, n INTEGER NOT NULL, last_lsn INTEGER NOT NULL)"
    " WITHOUT ROWID",
    "CREATE TABLE records (id TEXT NOT NULL, n INTEGER NOT NULL, body BLOB NOT NULL,"
    " PRIMARY KEY (id, n)) WITHOUT ROWID",
)


def _fold(
    batch: Sequence[tuple[int, bytes]], counts: dict[str, int]
) -> tuple[dict[str, tuple[str, int, int]], list[tuple[str, int, bytes]]]:
    unpack, pack = msgpack.unpackb, msgpack.packb
    touched: dict[str, tuple[str, int, int]] = {}
    rows: list[tuple[str, int, bytes]] = []
    for lsn, payload in batch:
        raw: list[Any] = unpack(payload, raw=False, strict_map_key=False)
        key = raw[2] if len(raw) > 2 and type(raw[2]) is str else ""
        n = counts.get(key, 0) + 1
        counts[key] = n
        touched[key] = (key, n, lsn)
        rows.append((key, n, pack(raw[3:])))
    return touched, rows


def python_only(records: Sequence[tuple[int, bytes]], batch_size: int) -> float:
    """Records per second of the loop's Python part alone (no SQLite)."""
    counts: dict[str, int] = {}
    began = time.perf_counter()
    for start in range(0, len(records), batch_size):
        _fold(records[start : start + batch_size], counts)
    return len(records) / (time.perf_counter() - began)


def with_sqlite(
    records: Sequence[tuple[int, bytes]], db: Path, batch_size: int
) -> tuple[float, list[float]]:
    """Records per second of the whole loop (fold a batch, write it in one transaction), and each
    batch's fold→COMMIT seconds."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute("PRAGMA cache_size=-65536")
        for ddl in _SCHEMA:
            conn.execute(ddl)
        counts: dict[str, int] = {}
        latencies: list[float] = []
        began = time.perf_counter()
        for start in range(0, len(records), batch_size):
            batch_began = time.perf_counter()
            touched, rows = _fold(records[start : start + batch_size], counts)
            conn.execute("BEGIN")
            conn.executemany("INSERT OR REPLACE INTO state VALUES (?,?,?)", touched.values())
            conn.executemany("INSERT INTO records VALUES (?,?,?)", rows)
            conn.execute("COMMIT")
            latencies.append(time.perf_counter() - batch_began)
        return len(records) / (time.perf_counter() - began), latencies
    finally:
        conn.close()
