"""Schema migrations keep the state: a version-1 file migrated to the current version has the same
digest and answers the same queries."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from processor.commands import TimerKey, TimerKind
from processor.state_machine.types import Event, JournalAppend, Transition
from processor.status import Status
from processor.storage import BatchWrites, Store
from processor.storage.digest import digest_conn, digest_file
from processor.storage.schema import SCHEMA_VERSION, configure, migrate
from processor.storage.store import _invocation_row

from .strategies import make_view

SLEEP1 = TimerKey(TimerKind.SLEEP, 1)


def _write_v1(path: Path) -> None:
    """A version-1 file written with version 1's SQL (its tables keyed by the id text)."""
    conn = sqlite3.connect(path, isolation_level=None)
    configure(conn)
    migrate(conn, str(path), target=1)
    conn.execute("BEGIN")
    for n, inv in enumerate(("inv_b", "inv_a", "inv_c")):
        view = make_view(inv, created_at=100 - n, status=Status.RUNNING)
        conn.execute("INSERT INTO invocations VALUES (?,?,?,?,?,?,?,?,?,?)", _invocation_row(view))
        for idx in range(3):
            conn.execute("INSERT INTO journal VALUES (?,?,?,?)", (inv, idx, b"\x80", 10 + idx))
        conn.execute("INSERT INTO events VALUES (?,?,?,?,?)", (inv, 0, "created", 1, b"\x80"))
        conn.execute("INSERT INTO timers VALUES (?,?,?,?)", (inv, "sleep", 1, 500 + n))
    conn.execute("UPDATE partition SET applied_lsn=42, leader_epoch=3")
    conn.execute("COMMIT")
    conn.close()


async def test_version_1_file_migrates_with_the_same_digest_and_stays_writable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    _write_v1(path)
    before = digest_file(path)
    store = await Store.open(path)
    try:
        assert await store.digest() == before
        assert [i for i, _, _ in await store.get_journal("inv_a")] == [0, 1, 2]
        assert [e.kind for e in await store.get_events("inv_c")] == ["created"]
        assert [t.invocation_id for t in await store.all_timers()] == ["inv_b", "inv_a", "inv_c"]
        assert (await store.partition()).applied_lsn == 42
        # the migrated rows keep working with the version-2 write path
        t = Transition(view=make_view("inv_a", journal_length=4), changed=True)
        t.journal = [JournalAppend(3, {"kind": "run"}, 20)]
        t.events = [Event(1, "paused", 21)]
        t.timers_deleted = [SLEEP1]
        w = BatchWrites(applied_lsn=43)
        w.add("inv_a", t)
        w.add("inv_b", Transition(view=None, deleted=True))
        await store.write_batch(w)
        assert [i for i, _, _ in await store.get_journal("inv_a")] == [0, 1, 2, 3]
        assert [e.seq for e in await store.get_events("inv_a")] == [0, 1]
        assert [t.invocation_id for t in await store.all_timers()] == ["inv_c"]
        assert await store.get_journal("inv_b") == []
    finally:
        store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("SELECT count(*) FROM journal WHERE invocation_id='inv_b'").fetchone() == (
        0,
    )
    assert digest_conn(conn) != before
    conn.close()
