"""The SQLite store: batch writes, read queries, purge, schema version checks."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from processor.commands import TimerKey, TimerKind
from processor.state_machine.types import Event, JournalAppend, Transition
from processor.status import Status
from processor.storage import BatchWrites, SchemaError, Store, TimerRow
from processor.storage.schema import SCHEMA_VERSION
from processor.storage.store import INLINE_WRITE_MAX_VIEWS, StoreWriteFailed

from .strategies import make_view

RETRY1 = TimerKey(TimerKind.RETRY, 1)
SLEEP5 = TimerKey(TimerKind.SLEEP, 5)


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    s = await Store.open(tmp_path / "state.db")
    yield s
    s.close()


def batch(lsn: int, *items: tuple[str, Transition]) -> BatchWrites:
    w = BatchWrites(applied_lsn=lsn)
    for inv, t in items:
        w.add(inv, t)
    return w


def created(inv: str, **fields: Any) -> Transition:
    return Transition(view=make_view(inv, **fields), changed=True)


async def test_fresh_store_starts_at_lsn_zero_with_current_schema(tmp_path: Path) -> None:
    s = await Store.open(tmp_path / "sub" / "state.db")
    try:
        row = await s.partition()
        assert (row.applied_lsn, row.leader_epoch) == (0, 0)
    finally:
        s.close()
    conn = sqlite3.connect(tmp_path / "sub" / "state.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_written_view_and_applied_lsn_read_back(store: Store) -> None:
    view = make_view("inv_a", headers={"x": "1"}, completed_ids=frozenset([2]))
    await store.write_batch(batch(7, ("inv_a", Transition(view=view, changed=True))))
    assert await store.get_view("inv_a") == view
    assert (await store.partition()).applied_lsn == 7
    assert await store.get_view("inv_missing") is None


async def test_load_views_returns_only_stored_ids_in_one_call(store: Store) -> None:
    items = [(f"inv_{i}", created(f"inv_{i}")) for i in range(1200)]
    await store.write_batch(batch(1, *items))
    wanted = [f"inv_{i}" for i in range(0, 1200, 2)] + ["inv_nope"]
    loaded = await store.load_views(wanted)
    assert set(loaded) == set(wanted) - {"inv_nope"}


async def test_view_unchanged_transition_writes_nothing(store: Store) -> None:
    await store.write_batch(batch(1, ("inv_a", created("inv_a"))))
    stale = Transition(view=make_view("inv_a", status=Status.PAUSED), changed=False)
    await store.write_batch(batch(2, ("inv_a", stale)))
    view = await store.get_view("inv_a")
    assert view is not None and view.status is Status.RUNNING


async def test_journal_reads_back_in_index_order_with_append_time(store: Store) -> None:
    t1 = created("inv_a")
    t1.journal = [JournalAppend(0, {"kind": "input", "value": b"hi", "headers": {}}, 10)]
    t2 = Transition(view=make_view("inv_a", journal_length=3), changed=True)
    t2.journal = [
        JournalAppend(1, {"kind": "run", "name": "x", "value": b"1"}, 20),
        JournalAppend(2, {"kind": "sleep", "completion_id": 1, "wake_up_at": 99}, 21),
    ]
    await store.write_batch(batch(1, ("inv_a", t1)))
    await store.write_batch(batch(2, ("inv_a", t2)))
    journal = await store.get_journal("inv_a")
    assert [(i, e["kind"], at) for i, e, at in journal] == [
        (0, "input", 10),
        (1, "run", 20),
        (2, "sleep", 21),
    ]
    assert journal[0][1]["value"] == b"hi"


async def test_event_with_an_existing_seq_replaces_it(store: Store) -> None:
    t1 = created("inv_a")
    t1.events = [Event(0, "created", 1), Event(1, "transient-error", 2, {"count": 1})]
    t2 = created("inv_a")
    t2.events = [Event(1, "transient-error", 3, {"count": 2})]
    await store.write_batch(batch(1, ("inv_a", t1)))
    await store.write_batch(batch(2, ("inv_a", t2)))
    events = await store.get_events("inv_a")
    assert events == [Event(0, "created", 1), Event(1, "transient-error", 3, {"count": 2})]


async def test_timers_are_set_deleted_and_cleared(store: Store) -> None:
    t1 = created("inv_a")
    t1.timers_set = [(RETRY1, 500), (SLEEP5, 900)]
    t2 = created("inv_b")
    t2.timers_set = [(SLEEP5, 100)]
    await store.write_batch(batch(1, ("inv_a", t1), ("inv_b", t2)))
    assert await store.all_timers() == [
        TimerRow("inv_b", SLEEP5, 100),
        TimerRow("inv_a", RETRY1, 500),
        TimerRow("inv_a", SLEEP5, 900),
    ]
    t3 = created("inv_a")
    t3.timers_deleted = [RETRY1]
    t4 = created("inv_b")
    t4.clear_timers = True
    await store.write_batch(batch(2, ("inv_a", t3), ("inv_b", t4)))
    assert await store.all_timers() == [TimerRow("inv_a", SLEEP5, 900)]


async def test_timer_set_then_deleted_then_set_in_one_batch_keeps_the_last(store: Store) -> None:
    t1, t2, t3, t4 = created("inv_a"), created("inv_a"), created("inv_a"), created("inv_a")
    t1.timers_set = [(RETRY1, 1)]
    t2.timers_deleted = [RETRY1]
    t3.timers_set = [(RETRY1, 3)]
    t4.clear_timers = True
    t4.timers_set = [(SLEEP5, 4)]
    await store.write_batch(batch(1, ("inv_a", t1), ("inv_a", t2), ("inv_a", t3)))
    assert await store.all_timers() == [TimerRow("inv_a", RETRY1, 3)]
    await store.write_batch(batch(2, ("inv_a", t4)))
    assert await store.all_timers() == [TimerRow("inv_a", SLEEP5, 4)]


async def test_purge_deletes_invocation_journal_events_and_timers(store: Store) -> None:
    for inv in ("inv_a", "inv_b"):
        t = created(inv, status=Status.COMPLETED)
        t.journal = [JournalAppend(0, {"kind": "input"}, 1)]
        t.events = [Event(0, "created", 1)]
        t.timers_set = [(SLEEP5, 5)]
        await store.write_batch(batch(1, (inv, t)))
    await store.write_batch(batch(2, ("inv_a", Transition(view=None, deleted=True))))
    assert await store.get_view("inv_a") is None
    assert await store.get_journal("inv_a") == []
    assert await store.get_events("inv_a") == []
    assert [r.invocation_id for r in await store.all_timers()] == ["inv_b"]
    assert await store.get_view("inv_b") is not None


async def test_purge_then_reinvoke_in_one_batch_keeps_only_the_new_rows(store: Store) -> None:
    old = created("inv_a", status=Status.COMPLETED)
    old.journal = [JournalAppend(0, {"kind": "input", "value": b"old"}, 1)]
    await store.write_batch(batch(1, ("inv_a", old)))
    new = created("inv_a", created_at=50)
    new.journal = [JournalAppend(0, {"kind": "input", "value": b"new"}, 50)]
    pending = created("inv_a")
    pending.journal = [JournalAppend(1, {"kind": "run"}, 2)]
    w = batch(2, ("inv_a", pending), ("inv_a", Transition(view=None, deleted=True)), ("inv_a", new))
    await store.write_batch(w)
    assert [e["value"] for _, e, _ in await store.get_journal("inv_a")] == [b"new"]
    view = await store.get_view("inv_a")
    assert view is not None and view.created_at == 50


async def test_leader_epoch_is_stored_with_the_batch(store: Store) -> None:
    await store.write_batch(batch(3, ("", Transition(view=None, leader_epoch=4))))
    await store.write_batch(batch(4))
    row = await store.partition()
    assert (row.applied_lsn, row.leader_epoch) == (4, 4)


async def test_failed_commit_rolls_back_the_whole_batch(store: Store) -> None:
    def boom() -> None:
        raise RuntimeError("disk on fire")

    store.before_commit = boom
    with pytest.raises(RuntimeError, match="disk on fire"):
        await store.write_batch(batch(9, ("inv_a", created("inv_a"))))
    store.before_commit = None
    assert await store.get_view("inv_a") is None
    assert (await store.partition()).applied_lsn == 0


async def test_list_invocations_filters_and_orders_newest_first(store: Store) -> None:
    rows = [
        ("inv_1", "A", "x", Status.RUNNING, 10, "dp_1"),
        ("inv_2", "A", "y", Status.PAUSED, 20, "dp_1"),
        ("inv_3", "B", "x", Status.PAUSED, 30, None),
        ("inv_4", "A", "x", Status.COMPLETED, 40, "dp_2"),
        ("inv_5", "A", "x", Status.RUNNING, 40, None),
    ]
    items = [
        (i, created(i, service=s, handler=h, status=st, created_at=c, pinned_deployment=d))
        for i, s, h, st, c, d in rows
    ]
    await store.write_batch(batch(1, *items))

    async def ids(**filters: Any) -> list[str]:
        return [v.id for v in await store.list_invocations(**filters)]

    assert await ids() == ["inv_5", "inv_4", "inv_3", "inv_2", "inv_1"]
    assert await ids(limit=2) == ["inv_5", "inv_4"]
    assert await ids(service="A") == ["inv_5", "inv_4", "inv_2", "inv_1"]
    assert await ids(service="A", handler="x") == ["inv_5", "inv_4", "inv_1"]
    assert await ids(statuses=["paused"]) == ["inv_3", "inv_2"]
    assert await ids(statuses=["paused", "running"], service="A") == ["inv_5", "inv_2", "inv_1"]
    assert await ids(deployment="dp_1") == ["inv_2", "inv_1"]
    assert await store.count_by_status() == {"running": 2, "paused": 2, "completed": 1}
    assert [v.id for v in await store.running_invocations()] == ["inv_1", "inv_5"]


async def test_store_written_by_a_newer_build_is_refused_naming_both_versions(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    (await Store.open(path)).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaError, match=rf"version {SCHEMA_VERSION + 5}.*up to version"):
        await Store.open(path)


async def test_reopening_keeps_data_and_does_not_migrate_again(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    s = await Store.open(path)
    await s.write_batch(batch(5, ("inv_a", created("inv_a"))))
    s.close()
    s = await Store.open(path)
    try:
        assert (await s.partition()).applied_lsn == 5
        assert await s.get_view("inv_a") is not None
    finally:
        s.close()


async def _write_history(store: Store) -> None:
    """Creates, status changes, field-only updates, a purge and a re-invoke, over batches."""
    for n in range(6):
        inv = f"inv_{n}"
        t = created(inv, status=Status.RUNNING)
        t.journal = [JournalAppend(0, {"kind": "input"}, n)]
        t.timers_set = [(SLEEP5, 100 + n)]
        await store.write_batch(batch(n + 1, (inv, t)))
    same_status = created("inv_1", status=Status.RUNNING, pinned_deployment="dp_1")
    moved = created("inv_2", status=Status.SUSPENDED)
    moved.journal = [JournalAppend(1, {"kind": "run"}, 9)]
    moved.clear_timers = True
    done = created("inv_3", status=Status.COMPLETED, completed_at=9)
    await store.write_batch(batch(7, ("inv_1", same_status), ("inv_2", moved), ("inv_3", done)))
    await store.write_batch(batch(8, ("inv_3", Transition(view=None, deleted=True))))
    again = created("inv_3", status=Status.SCHEDULED, created_at=20)
    again.events = [Event(0, "created", 20)]
    await store.write_batch(batch(9, ("inv_3", again), ("inv_0", created("inv_0"))))


async def test_writes_give_the_same_state_whatever_the_writer_remembers_of_keys(
    tmp_path: Path,
) -> None:
    digests = []
    for capacity in (20_000, 1, 0):
        s = await Store.open(tmp_path / f"state-{capacity}.db")
        try:
            s._keys.capacity = capacity  # 0: forgets every key after each batch
            await _write_history(s)
            digests.append(await s.digest())
        finally:
            s.close()
    assert digests[0] == digests[1] == digests[2]


async def test_status_column_follows_the_view_through_updates(store: Store) -> None:
    await _write_history(store)
    assert await store.count_by_status() == {"running": 4, "suspended": 1, "scheduled": 1}
    view = await store.get_view("inv_1")
    assert view is not None and view.pinned_deployment == "dp_1"
    listed = await store.list_invocations(statuses=["running"], deployment="dp_1")
    assert [v.id for v in listed] == ["inv_1"]
    assert [e["kind"] for _, e, _ in await store.get_journal("inv_2")] == ["input", "run"]
    assert [r.invocation_id for r in await store.all_timers()] == [
        "inv_0",
        "inv_1",
        "inv_4",
        "inv_5",
    ]


async def test_views_read_on_the_calling_thread_see_every_committed_batch(store: Store) -> None:
    assert store.load_views_now(["inv_a"]) == {}
    view = make_view("inv_a", status=Status.RUNNING)
    await store.write_batch(batch(1, ("inv_a", Transition(view=view, changed=True))))
    assert store.load_views_now(["inv_a", "inv_missing"]) == {"inv_a": view}
    paused = make_view("inv_a", status=Status.PAUSED)
    await store.write_batch(batch(2, ("inv_a", Transition(view=paused, changed=True))))
    assert store.load_views_now(["inv_a"]) == await store.load_views(["inv_a"]) == {"inv_a": paused}


async def test_nullable_columns_are_written_whether_set_or_not(store: Store) -> None:
    full = make_view(
        "inv_full", pinned_deployment="dp_1", completed_at=7, idempotency_key="k", created_at=2
    )
    bare = make_view("inv_bare", created_at=1)
    await store.write_batch(
        batch(1, ("inv_full", created("inv_full")), ("inv_bare", created("inv_bare")))
    )
    await store.write_batch(batch(2, ("inv_full", Transition(full, changed=True))))
    await store.write_batch(batch(3, ("inv_bare", Transition(bare, changed=True))))
    conn = sqlite3.connect(store.path)
    rows = conn.execute(
        "SELECT id, pinned_deployment, completed_at, idempotency_key, typeof(view) "
        "FROM invocations ORDER BY id"
    ).fetchall()
    conn.close()
    assert rows == [("inv_bare", None, None, None, "blob"), ("inv_full", "dp_1", 7, None, "blob")]
    assert await store.load_views(["inv_full", "inv_bare"]) == {"inv_full": full, "inv_bare": bare}
    keyed = make_view("inv_key", idempotency_key="k", pinned_deployment="dp_2", completed_at=3)
    await store.write_batch(batch(4, ("inv_key", Transition(keyed, changed=True))))
    assert await store.get_view("inv_key") == keyed
    assert await store.list_invocations(deployment="dp_2") == [keyed]


async def test_small_batches_commit_on_the_loop_and_big_ones_in_the_writer_thread(
    store: Store,
) -> None:
    seen: list[str] = []
    store.before_commit = lambda: seen.append(threading.current_thread().name)
    small = [(f"inv_s{i}", created(f"inv_s{i}")) for i in range(3)]
    big = [(f"inv_b{i}", created(f"inv_b{i}")) for i in range(INLINE_WRITE_MAX_VIEWS + 1)]
    await store.write_batch(batch(1, *small))
    await store.write_batch(batch(2, *big))
    assert seen[0] == threading.current_thread().name
    assert seen[1] != threading.current_thread().name
    assert len(await store.load_views([i for i, _ in small + big])) == len(small) + len(big)
    assert (await store.partition()).applied_lsn == 2


async def test_a_failed_inline_write_fails_the_store_for_later_batches(store: Store) -> None:
    def crash() -> None:
        raise OSError(28, "No space left on device")

    store.before_commit = crash
    with pytest.raises(OSError, match="No space left"):
        await store.write_batch(batch(1, ("inv_a", created("inv_a"))))
    store.before_commit = None
    with pytest.raises(Exception, match="earlier batch write failed"):
        await store.write_batch(batch(2, ("inv_b", created("inv_b"))))
    assert (await store.partition()).applied_lsn == 0
    assert await store.get_view("inv_a") is None


async def test_a_batch_that_cannot_be_planned_stops_later_writes(store: Store) -> None:
    """Planning updates the key cache as if the batch committed; a plan that fails part-way
    must not let later batches trust it."""
    bad = make_view("inv_b", headers={"x": object()})  # not encodable
    with pytest.raises(TypeError):
        store.start_write(batch(1, ("inv_a", created("inv_a")), ("inv_b", Transition(bad, True))))
    with pytest.raises(StoreWriteFailed, match="earlier batch write failed"):
        await store.write_batch(batch(2, ("inv_c", created("inv_c"))))
    assert (await store.partition()).applied_lsn == 0
