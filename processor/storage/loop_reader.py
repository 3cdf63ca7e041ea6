"""Small reads of the state store done right on the event loop's thread, without a thread hop.

The store's reader thread costs a hand-off per call: a futex wake of the thread, a GIL hand-over
and a `call_soon_threadsafe` back, which on this machine is more CPU than the SQLite read itself
(an indexed read of a few cached pages is ~10-20 µs) and puts a scheduling delay on the path of
every attempt. So the leader reads an attempt's journal here: its own read-only connection, owned
by the loop thread, in WAL mode (it sees the last committed batch, never half of one; the runner
commits a batch before it hands out the batch's actions, so an attempt's journal is always there).

Only reads that are known to be small belong here: a journal longer than `limit` entries is left
to the caller to read in the store's thread (`None` answer), so a long history never blocks the
loop for long.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import msgpack

JournalRow = tuple[int, dict[str, Any], int]  # (index, entry, appended_at)

# The internal key of an invocation (schema version 2): see storage.schema.
_JOURNAL = (
    "SELECT idx, entry, appended_at FROM journal "
    "WHERE inv_key=(SELECT key FROM invocations WHERE id=?) ORDER BY idx LIMIT ?"
)


class LoopReader:
    """A read-only connection used from the event loop's thread only."""

    def __init__(self, path: str | Path, *, limit: int = 64) -> None:
        self.limit = limit
        uri = Path(path).resolve().as_uri() + "?mode=ro"
        self._conn: sqlite3.Connection | None = sqlite3.connect(uri, uri=True, isolation_level=None)
        self._conn.execute("PRAGMA cache_size=-2048")  # KiB: a small bounded page cache
        self._conn.execute("PRAGMA query_only=1")

    def journal(self, invocation_id: str) -> list[JournalRow] | None:
        """The invocation's journal in index order, or None when it has more than `limit`
        entries (read those with `Store.get_journal`, off the loop)."""
        if self._conn is None:
            raise RuntimeError("the loop reader is closed")
        rows = self._conn.execute(_JOURNAL, (invocation_id, self.limit + 1)).fetchall()
        if len(rows) > self.limit:
            return None
        unpack = msgpack.unpackb
        return [
            (idx, unpack(entry, raw=False, strict_map_key=False), at) for idx, entry, at in rows
        ]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
