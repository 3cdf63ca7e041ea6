"""The batch write plan: multi-row statements (chunked, padded), the key cache, and batches
planned while an earlier one has not committed yet."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from processor.state_machine.types import JournalAppend, Transition
from processor.status import InvocationView, Status
from processor.storage.batch import BatchWrites
from processor.storage.schema import configure, migrate
from processor.storage.write_plan import MAX_BATCHES_IN_FLIGHT, KeyCache, WritePlan, plan_batch
from processor.storage.writer import execute_plan, lookup_keys, max_key

from .strategies import make_view


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    c = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    configure(c)
    migrate(c)
    yield c
    c.close()


def view(inv: str, status: Status = Status.RUNNING, at: int = 1) -> InvocationView:
    return make_view(inv, status=status, created_at=at, modified_at=at)


def inv_id(n: int) -> str:
    return f"inv_{n:032d}a"


class Planner:
    """Plans with one long-lived KeyCache against `conn`, like the store does."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.keys = KeyCache()
        self.lookups: list[list[str]] = []

    def plan(self, w: BatchWrites) -> WritePlan:
        def lookup(ids: list[str]) -> dict[str, tuple[int, str]]:
            self.lookups.append(sorted(ids))
            return lookup_keys(self.conn, ids)

        return plan_batch(w, self.keys, lookup, lambda: max_key(self.conn))

    def write(self, w: BatchWrites) -> None:
        execute_plan(self.conn, self.plan(w))


def created(w: BatchWrites, inv: str, journal: int = 0) -> None:
    entries = [JournalAppend(i, {"kind": "run", "i": i}, 5) for i in range(journal)]
    w.add(inv, Transition(view(inv), changed=True, journal=entries))


def count(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def test_rows_beyond_one_statement_are_split_into_chunks_and_all_written(
    conn: sqlite3.Connection,
) -> None:
    planner = Planner(conn)
    w = BatchWrites(applied_lsn=1)
    created(w, inv_id(1), journal=2500)
    plan = planner.plan(w)
    journal_statements = [sql for sql, _, _ in plan.statements if "INTO journal" in sql]
    assert len(journal_statements) == 3  # 1024 + 1024 + 452 (padded to 512)
    execute_plan(conn, plan)
    assert count(conn, "journal") == 2500
    idx = [r[0] for r in conn.execute("SELECT idx FROM journal ORDER BY idx")]
    assert idx == list(range(2500))


def test_padding_rows_of_the_last_statement_write_nothing(conn: sqlite3.Connection) -> None:
    planner = Planner(conn)
    w = BatchWrites(applied_lsn=1)
    for n in range(5):  # 5 invocations, 5 journal rows: both padded to 8
        created(w, inv_id(n), journal=1)
    plan = planner.plan(w)
    for sql, params, many in plan.statements:
        if "INTO invocations" in sql:
            assert not many and len(params) == 8 * 11 and list(params[-33:]) == [0] * 33
    execute_plan(conn, plan)
    assert count(conn, "invocations") == 5
    assert count(conn, "journal") == 5
    assert conn.execute("SELECT MIN(key) FROM invocations").fetchone()[0] == 1


def test_each_table_takes_a_bounded_set_of_distinct_statements(conn: sqlite3.Connection) -> None:
    planner = Planner(conn)
    texts: set[str] = set()
    for lsn, size in enumerate((1, 2, 3, 5, 9, 17, 33, 100, 300, 700, 1000), start=1):
        w = BatchWrites(applied_lsn=lsn)
        for n in range(size):
            created(w, inv_id(lsn * 10_000 + n))
        plan = planner.plan(w)
        texts.update(sql for sql, _, _ in plan.statements if "INTO invocations" in sql)
        execute_plan(conn, plan)
    # powers of two from 1 to 1024 at most, whatever the row counts
    assert len(texts) <= 11
    assert count(conn, "invocations") == sum((1, 2, 3, 5, 9, 17, 33, 100, 300, 700, 1000))


def test_a_few_rows_go_through_the_single_row_statements(conn: sqlite3.Connection) -> None:
    planner = Planner(conn)
    w = BatchWrites(applied_lsn=1)
    created(w, inv_id(1), journal=2)
    planner.write(w)
    w = BatchWrites(applied_lsn=2)
    w.add(inv_id(1), Transition(view(inv_id(1), Status.SUSPENDED, at=9), changed=True))
    w.add(inv_id(1), Transition(None, deleted=True))
    created(w, inv_id(2), journal=1)
    plan = planner.plan(w)
    assert all(many for _, _, many in plan.statements[:-1])  # all but the applied LSN's
    execute_plan(conn, plan)
    assert conn.execute("SELECT key, id FROM invocations").fetchall() == [(2, inv_id(2))]
    assert conn.execute("SELECT inv_key, idx FROM journal").fetchall() == [(2, 0)]


def test_ids_known_absent_are_not_looked_up(conn: sqlite3.Connection) -> None:
    planner = Planner(conn)
    w = BatchWrites(applied_lsn=1)
    created(w, inv_id(1))
    created(w, inv_id(2))
    w.absent.add(inv_id(1))
    planner.write(w)
    assert planner.lookups == [[inv_id(2)]]


def test_an_update_after_a_restart_finds_the_key_in_the_file(conn: sqlite3.Connection) -> None:
    first = Planner(conn)
    w = BatchWrites(applied_lsn=1)
    created(w, inv_id(1))
    first.write(w)
    again = Planner(conn)  # a fresh cache, as after a restart
    w = BatchWrites(applied_lsn=2)
    w.add(inv_id(1), Transition(view(inv_id(1), Status.SUSPENDED, at=9), changed=True))
    again.write(w)
    row = conn.execute("SELECT key, status, modified_at FROM invocations").fetchall()
    assert row == [(1, "suspended", 9)]


def test_a_purge_still_in_flight_is_not_undone_by_the_next_plan(conn: sqlite3.Connection) -> None:
    """Batch 2 is planned before batch 1 (which purges X) commits: a lookup would still find X's
    old row, so the planner must remember the purge and insert the re-invoked X under a new key."""
    planner = Planner(conn)
    w0 = BatchWrites(applied_lsn=1)
    created(w0, inv_id(7), journal=2)
    planner.write(w0)
    w1 = BatchWrites(applied_lsn=2)
    w1.add(inv_id(7), Transition(None, deleted=True))
    plan1 = planner.plan(w1)  # not executed yet: "in flight"
    w2 = BatchWrites(applied_lsn=3)
    created(w2, inv_id(7), journal=1)
    plan2 = planner.plan(w2)
    execute_plan(conn, plan1)
    execute_plan(conn, plan2)
    assert conn.execute("SELECT key, id FROM invocations").fetchall() == [(2, inv_id(7))]
    assert conn.execute("SELECT inv_key, idx FROM journal").fetchall() == [(2, 0)]


def test_the_key_cache_keeps_the_ids_of_batches_not_yet_committed(
    conn: sqlite3.Connection,
) -> None:
    planner = Planner(conn)
    planner.keys.capacity = 8
    plans = []
    count_of_plans = 2 * (MAX_BATCHES_IN_FLIGHT + 1) + 2  # enough to need a trim
    for lsn in range(1, count_of_plans + 1):  # plans of 6 new invocations each, none executed yet
        w = BatchWrites(applied_lsn=lsn)
        for n in range(6):
            created(w, inv_id(lsn * 100 + n))
        plans.append(planner.plan(w))
        # the ids of this plan and of the ones in flight before it stay known: never looked up
        # again
        for earlier in range(max(1, lsn - MAX_BATCHES_IN_FLIGHT), lsn + 1):
            assert all(inv_id(earlier * 100 + n) in planner.keys.entries for n in range(6))
    for plan in plans:
        execute_plan(conn, plan)
    keys = [r[0] for r in conn.execute("SELECT key FROM invocations ORDER BY key")]
    assert keys == list(range(1, 6 * count_of_plans + 1))
    # the first plan's ids were evicted: writing them again reads their keys from the file
    assert inv_id(100) not in planner.keys.entries
    w = BatchWrites(applied_lsn=6)
    w.add(inv_id(100), Transition(view(inv_id(100), Status.SUSPENDED, at=9), changed=True))
    planner.write(w)
    assert count(conn, "invocations") == 6 * count_of_plans
    row = conn.execute("SELECT key, status FROM invocations WHERE id=?", (inv_id(100),))
    assert row.fetchall() == [(1, "suspended")]


def test_a_failed_plan_execution_rolls_the_whole_batch_back(conn: sqlite3.Connection) -> None:
    planner = Planner(conn)
    w = BatchWrites(applied_lsn=4)
    created(w, inv_id(1), journal=3)

    def crash() -> None:
        raise RuntimeError("crash before commit")

    with pytest.raises(RuntimeError, match="crash before commit"):
        execute_plan(conn, planner.plan(w), crash)
    assert count(conn, "invocations") == 0
    assert count(conn, "journal") == 0
    assert conn.execute("SELECT applied_lsn FROM partition").fetchone()[0] == 0


def test_no_multi_row_statement_scans_a_table(conn: sqlite3.Connection) -> None:
    """Each statement finds its rows by key: its cost follows the rows it writes, not the size of
    the table (`(a, b, c) IN (VALUES ...)` once scanned every stored timer)."""
    from processor.storage import write_plan

    kinds = [getattr(write_plan, name) for name in dir(write_plan) if name.startswith("_")]
    rows = [k for k in kinds if isinstance(k, write_plan._Rows)]
    rows += list(write_plan._DELETE_BY_KEY.values())
    assert len(rows) >= 11
    tables = ("invocations", "journal", "events", "timers", "partition")
    for kind in rows:
        for sql in (kind.sql(8), kind.single):
            params = [0] * (8 * kind.width if sql == kind.sql(8) else kind.width)
            plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
            assert not [step for step in plan if step.split()[:2] in (["SCAN", t] for t in tables)]


def test_a_row_without_a_key_fails_whatever_the_batch_size(conn: sqlite3.Connection) -> None:
    planner = Planner(conn)
    for n in (1, 5):  # the single-row and the multi-row form
        w = BatchWrites(applied_lsn=1)
        w.journal[inv_id(9)] = [(i, {"kind": "run"}, 5) for i in range(n)]
        w.absent.add(inv_id(9))  # no invocation row, so no key
        with pytest.raises(sqlite3.IntegrityError, match="NOT NULL"):
            planner.write(w)
