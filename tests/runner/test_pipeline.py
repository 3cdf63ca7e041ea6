"""The pipelined catch-up: the next batch is applied and planned while earlier ones are being
written, sees their views (the newest wins), and never commits when one before it failed."""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

import pytest

import processor.storage.store as store_module
from log import MemoryLog
from processor.actions import Action, StartAttempt
from processor.codec import encode
from processor.commands import AttemptCompleted, AttemptEntry, Invoke, Purge
from processor.retry import RetryPolicy
from processor.runner import Runner, RunnerError
from processor.storage import Store
from processor.storage.write_plan import MAX_BATCHES_IN_FLIGHT

from .conftest import StoreFactory, stepping_clock

X = "inv_" + "0" * 32 + "7"
Y = "inv_" + "0" * 32 + "8"


def purge_then_reinvoke() -> list[bytes]:
    """Batch 1 (4 records) creates, completes and purges X; batch 2 invokes X again."""
    policy = RetryPolicy()
    return [
        encode(Invoke(X, "Greeter", "greet", b'"first"', policy)),
        encode(AttemptCompleted(X, 1, b'"done"')),
        encode(Purge(X)),
        encode(Invoke(Y, "Greeter", "greet", b'"filler"', policy)),
        encode(Invoke(X, "Greeter", "greet", b'"second"', policy)),
        encode(AttemptEntry(X, 1, 0, {"kind": "run", "name": "step"})),
    ]


async def purge_then_reinvoke_log() -> MemoryLog:
    log = MemoryLog(clock=stepping_clock())
    await log.append_batch(purge_then_reinvoke())
    return log


def hold_first_commit_until_batch_is_planned(store: Store, batch: int) -> list[str]:
    """Block batch 1's COMMIT (in the writer thread) until the runner has started the write of
    `batch`; if the runner does not overlap them, the hook gives up and fails the batch."""
    started = [0]
    second_planned = threading.Event()
    outcome: list[str] = []
    real_start = store.start_write

    def start_write(writes: Any) -> Any:
        future = real_start(writes)
        started[0] += 1
        if started[0] == batch:
            second_planned.set()
        return future

    def before_commit() -> None:
        if not outcome:
            outcome.append("overlapped" if second_planned.wait(10) else "not overlapped")
            if outcome[0] != "overlapped":
                raise AssertionError(
                    f"batch {batch} was not planned while batch 1 was being written"
                )

    store.start_write = start_write  # type: ignore[method-assign]
    store.before_commit = before_commit
    return outcome


@pytest.fixture
def through_writer_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    # every batch goes to the writer thread, even a tiny one (else it commits inline on the loop)
    monkeypatch.setattr(store_module, "INLINE_WRITE_MAX_VIEWS", 0)


async def catch_up_with_batch_1_held_until_batch_is_planned(
    open_store: StoreFactory, batch_size: int, held_until: int
) -> Store:
    """Apply `purge_then_reinvoke` in batches of `batch_size`, batch 1's COMMIT held until batch
    `held_until` is planned; check it overlapped and matches a run in one batch."""
    log = await purge_then_reinvoke_log()
    reference = await open_store("reference.db")
    await Runner(log, reference, batch_size=1000).catch_up()

    store = await open_store("pipelined.db")
    outcome = hold_first_commit_until_batch_is_planned(store, held_until)
    runner = Runner(log, store, batch_size=batch_size)
    await runner.catch_up()
    await log.close()
    assert outcome == ["overlapped"]
    assert runner.applied_lsn == 6
    assert await store.digest() == await reference.digest()
    view = await store.get_view(X)
    assert view is not None and view.journal_length == 1
    return store


async def test_next_batch_is_applied_while_the_previous_one_commits_and_sees_its_purge(
    open_store: StoreFactory, through_writer_thread: None
) -> None:
    store = await catch_up_with_batch_1_held_until_batch_is_planned(open_store, 4, 2)
    assert [idx for idx, _, _ in await store.get_journal(X)] == [0]


async def test_two_batches_are_written_while_the_third_is_applied_and_it_sees_both(
    open_store: StoreFactory, through_writer_thread: None
) -> None:
    """Batch 1 completes X, batch 2 purges it, batch 3 invokes it again: applied while batches 1
    and 2 are both still being written, batch 3 must see the purge (the newer batch wins)."""
    assert MAX_BATCHES_IN_FLIGHT >= 2
    store = await catch_up_with_batch_1_held_until_batch_is_planned(open_store, 2, 3)
    assert [idx for idx, _, _ in await store.get_journal(X)] == [0]


async def test_a_failed_batch_write_keeps_the_batch_queued_behind_it_from_committing(
    open_store: StoreFactory, through_writer_thread: None
) -> None:
    log = await purge_then_reinvoke_log()
    store = await open_store()
    started = threading.Event()
    real_start = store.start_write

    def start_write(writes: Any) -> Any:
        future = real_start(writes)
        if writes.applied_lsn > 4:
            started.set()  # batch 2 is queued behind batch 1
        return future

    def crash_first_batch() -> None:
        started.wait(10)
        raise OSError("disk full")

    store.start_write = start_write  # type: ignore[method-assign]
    store.before_commit = crash_first_batch
    runner = Runner(log, store, batch_size=4)
    with pytest.raises(OSError, match="disk full"):
        await runner.catch_up()
    assert started.is_set()
    assert runner.applied_lsn == 0
    conn = sqlite3.connect(store.path)
    try:
        assert conn.execute("SELECT applied_lsn FROM partition").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM invocations").fetchone()[0] == 0
    finally:
        conn.close()
    with pytest.raises(RunnerError, match="runner stopped"):
        await runner.wait_applied(1)
    await log.close()


async def test_a_batch_committed_inline_answers_before_the_next_batch_is_applied(
    open_store: StoreFactory,
) -> None:
    log = await purge_then_reinvoke_log()
    store = await open_store()
    events: list[str] = []
    real_start = store.start_write

    def start_write(writes: Any) -> Any:
        events.append(f"write {writes.applied_lsn}")
        return real_start(writes)

    async def sink(actions: list[Action]) -> None:
        events.append(f"actions of {len(actions)}")

    store.start_write = start_write  # type: ignore[method-assign]
    runner = Runner(log, store, sink=sink, batch_size=4, on_batch=lambda n, s: None)
    await runner.catch_up()
    # small batches commit inline: each one's actions go out before the next batch is written
    assert events[0] == "write 4" and events[1].startswith("actions")
    assert events[2] == "write 6"
    await log.close()


async def test_a_batch_in_flight_is_finished_when_reading_the_next_one_fails(
    open_store: StoreFactory, through_writer_thread: None
) -> None:
    log = await purge_then_reinvoke_log()
    store = await open_store()
    real_read = log.read_batch
    reads = [0]

    async def failing_read(from_lsn: int, max_records: int) -> Any:
        reads[0] += 1
        if reads[0] == 2:
            raise OSError("log segment unreadable")
        return await real_read(from_lsn, max_records)

    log.read_batch = failing_read  # type: ignore[method-assign]
    delivered: list[Action] = []

    async def sink(actions: list[Action]) -> None:
        delivered.extend(actions)

    runner = Runner(log, store, sink=sink, batch_size=4)
    with pytest.raises(OSError, match="unreadable"):
        await runner.catch_up()
    # batch 1 committed while batch 2 was being read: it is finished, not dropped
    assert runner.applied_lsn == 4
    assert any(isinstance(a, StartAttempt) for a in delivered)
    await runner.wait_applied(4)
    await log.close()


async def test_small_batches_go_back_to_committing_on_the_loop_after_one_went_to_the_writer(
    open_store: StoreFactory,
) -> None:
    log = await purge_then_reinvoke_log()
    store = await open_store()
    written_on: list[str] = []
    store.before_commit = lambda: written_on.append(threading.current_thread().name)
    store._rewind_due = True  # as after a background checkpoint: the next write leaves the loop
    runner = Runner(log, store, batch_size=2)
    await runner.catch_up()
    assert runner.applied_lsn == 6
    loop = threading.current_thread().name
    # Queued behind the first batch, the second would go to the writer thread too, and so on.
    assert written_on[0] != loop
    assert written_on[1:] == [loop, loop]
    await log.close()
