"""The runner: one transaction per batch with applied_lsn, actions after commit, stops on bad
records, refuses a log behind the store, resumes at applied_lsn + 1, follows the tail."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest

from log import MemoryLog
from processor.actions import Action, StartAttempt
from processor.codec import encode
from processor.commands import AttemptPinned, Invoke, Pause
from processor.retry import RetryPolicy
from processor.runner import Runner, RunnerError
from processor.status import Status
from processor.storage import BatchWrites, Store

from .conftest import StoreFactory, stepping_clock

INV = "inv_" + "0" * 32 + "1"


def invoke(inv: str = INV, request_id: str | None = "r1") -> bytes:
    return encode(Invoke(inv, "Greeter", "greet", b'"Ada"', RetryPolicy(), request_id=request_id))


def applied_lsn_on_disk(path: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT applied_lsn FROM partition").fetchone()[0])
    finally:
        conn.close()


async def test_each_batch_is_one_transaction_ending_with_applied_lsn(
    memlog: MemoryLog, open_store: StoreFactory
) -> None:
    store = await open_store()
    statements: list[str] = []
    store._writer.call_sync(lambda conn: conn.set_trace_callback(statements.append))
    hops = [0]  # writes handed to the writer: a thread hop, or run inline on the loop when small
    submit, run_inline = store._writer.submit, store._writer.run_inline

    def counting_submit(fn: Any) -> Any:
        hops[0] += 1
        return submit(fn)

    def counting_inline(fn: Any) -> Any:
        hops[0] += 1
        return run_inline(fn)

    store._writer.submit = counting_submit  # type: ignore[method-assign]
    store._writer.run_inline = counting_inline  # type: ignore[method-assign]
    runner = Runner(memlog, store, batch_size=100)
    await runner.catch_up()
    store._writer.call_sync(lambda conn: conn.set_trace_callback(None))

    batches = -(-memlog.tail() // 100)
    assert statements.count("COMMIT") == batches
    assert statements.count("BEGIN IMMEDIATE") == batches
    # every transaction stores its applied LSN last, right before COMMIT
    for i, sql in enumerate(statements):
        if sql == "COMMIT":
            assert statements[i - 1].startswith("UPDATE partition SET applied_lsn=")
    # one write call per batch, not per command
    assert hops[0] == batches
    assert runner.applied_lsn == memlog.tail() == applied_lsn_on_disk(store.path)


async def test_views_are_loaded_once_per_batch_and_hot_ones_come_from_the_cache(
    memlog: MemoryLog, open_store: StoreFactory
) -> None:
    store = await open_store()
    loads: list[int] = []
    real = store.load_views

    async def counting(ids: list[str]) -> dict[str, object]:
        loads.append(len(ids))
        return await real(ids)  # type: ignore[return-value]

    real_now = store.load_views_now

    def counting_now(ids: list[str]) -> dict[str, object]:
        loads.append(len(ids))
        return real_now(ids)  # type: ignore[return-value]

    store.load_views = counting  # type: ignore[assignment,method-assign]
    store.load_views_now = counting_now  # type: ignore[assignment,method-assign]
    runner = Runner(memlog, store, batch_size=50)
    await runner.catch_up()
    batches = -(-memlog.tail() // 50)
    assert len(loads) <= batches
    invokes = 150
    # only ids not cached are asked for: new invocations (and completed ones touched again)
    assert sum(loads) < invokes * 2
    assert len(runner.cache) <= runner.cache.capacity


async def test_a_tiny_cache_gives_the_same_state(
    memlog: MemoryLog, open_store: StoreFactory
) -> None:
    big, tiny = await open_store("big.db"), await open_store("tiny.db")
    await Runner(memlog, big, batch_size=64).catch_up()
    runner = Runner(memlog, tiny, batch_size=64, cache_size=3)
    await runner.catch_up()
    assert len(runner.cache) <= 3
    assert await big.digest() == await tiny.digest()


async def test_actions_reach_the_sink_only_after_their_batch_committed(
    memlog: MemoryLog, open_store: StoreFactory
) -> None:
    store = await open_store()
    seen: list[tuple[int, int]] = []
    runner: Runner

    async def sink(actions: list[Action]) -> None:
        # a fresh connection sees only committed data
        seen.append((applied_lsn_on_disk(store.path), runner.applied_lsn))
        assert actions

    runner = Runner(memlog, store, sink=sink, batch_size=37)
    await runner.catch_up()
    assert seen
    previous = 0
    for on_disk, applied in seen:
        assert on_disk >= applied > previous  # committed, and in batch order
        previous = applied


async def test_sink_gets_the_batch_actions_in_log_order(open_store: StoreFactory) -> None:
    log = MemoryLog(clock=stepping_clock())
    invs = [f"inv_{i:033d}" for i in range(5)]
    await log.append_batch([invoke(inv, None) for inv in invs])
    got: list[Action] = []

    async def sink(actions: list[Action]) -> None:
        got.extend(actions)

    await Runner(log, await open_store(), sink=sink, batch_size=2).catch_up()
    assert [a.invocation_id for a in got if isinstance(a, StartAttempt)] == invs


async def test_undecodable_record_stops_the_partition_naming_its_lsn(
    open_store: StoreFactory,
) -> None:
    log = MemoryLog(clock=stepping_clock())
    await log.append_batch([invoke(), encode(AttemptPinned(INV, 1, "dp_x")), b"\x93garbage"])
    await log.append(encode(Pause(INV, "r2")))
    store = await open_store()
    runner = Runner(log, store, batch_size=100)
    with pytest.raises(RunnerError, match="LSN 3"):
        await runner.catch_up()
    # the records before it are committed; the bad one is never skipped
    assert runner.applied_lsn == 2 == applied_lsn_on_disk(store.path)
    with pytest.raises(RunnerError, match="LSN 3"):
        await runner.catch_up()
    assert runner.applied_lsn == 2
    with pytest.raises(RunnerError, match="LSN 3"):
        await runner.wait_applied(4)


async def test_store_ahead_of_the_log_is_a_startup_error_naming_both_lsns(
    open_store: StoreFactory,
) -> None:
    store = await open_store()
    await store.write_batch(BatchWrites(applied_lsn=10))
    log = MemoryLog(clock=stepping_clock())
    await log.append_batch([invoke()] * 3)
    with pytest.raises(RunnerError) as err:
        await Runner(log, store, log_name="/data/partitions/0/log").start()
    message = str(err.value)
    assert "LSN 10" in message and "LSN 3" in message
    assert store.path in message and "/data/partitions/0/log" in message
    assert "went backwards" in message


async def test_restart_resumes_at_applied_lsn_plus_one_with_the_same_end_state(
    memlog: MemoryLog, open_store: StoreFactory, tmp_path: Path
) -> None:
    reference = await open_store("reference.db")
    await Runner(memlog, reference, batch_size=50).catch_up()

    first = await open_store("state.db")
    await Runner(memlog, first, batch_size=50, until_lsn=333).catch_up()
    first.close()
    reads: list[int] = []

    class Spy:
        def tail(self) -> int:
            return memlog.tail()

        async def read_batch(self, from_lsn: int, max_records: int) -> list[object]:
            reads.append(from_lsn)
            return await memlog.read_batch(from_lsn, max_records)  # type: ignore[return-value]

        async def wait_beyond(self, lsn: int) -> int:
            return await memlog.wait_beyond(lsn)

    again = await Store.open(tmp_path / "state.db")
    try:
        runner = Runner(Spy(), again, batch_size=50)  # type: ignore[arg-type]
        await runner.catch_up()
        assert reads[0] == 334
        assert await again.digest() == await reference.digest()
    finally:
        again.close()


async def test_missing_state_file_is_rebuilt_from_the_log(
    memlog: MemoryLog, open_store: StoreFactory
) -> None:
    store = await open_store("fresh/state.db")
    runner = Runner(memlog, store)
    await runner.start()
    assert runner.applied_lsn == 0
    await runner.catch_up()
    assert runner.applied_lsn == memlog.tail()


async def test_run_follows_the_log_and_wait_applied_returns_once_applied(
    open_store: StoreFactory,
) -> None:
    log = MemoryLog(clock=stepping_clock())
    store = await open_store()
    runner = Runner(log, store)
    batches: list[int] = []
    runner.on_batch = lambda n, seconds: batches.append(n)
    async with anyio.create_task_group() as tg:
        tg.start_soon(runner.run)
        lsn = await log.append(invoke())
        with anyio.fail_after(5):
            await runner.wait_applied(lsn)
        view = await store.get_view(INV)
        assert view is not None and view.status is Status.RUNNING
        lsn = await log.append(encode(Pause(INV, "r2")))
        with anyio.fail_after(5):
            await runner.wait_applied(lsn)
        view = await store.get_view(INV)
        assert view is not None and view.status is Status.PAUSED
        tg.cancel_scope.cancel()
    assert sum(batches) == 2


async def test_run_applies_the_records_found_at_start_in_startup_batches(
    memlog: MemoryLog, open_store: StoreFactory
) -> None:
    store = await open_store()
    runner = Runner(memlog, store, batch_size=10, startup_batch_size=400)
    batches: list[int] = []
    runner.on_batch = lambda n, seconds: batches.append(n)
    found = memlog.tail()
    async with anyio.create_task_group() as tg:
        tg.start_soon(runner.run)
        with anyio.fail_after(10):
            await runner.wait_applied(found)
        assert batches[0] == 400 and max(batches) == 400
        startup = len(batches)
        lsns = [await memlog.append(invoke("inv_" + "0" * 32 + str(n))) for n in range(2, 40)]
        with anyio.fail_after(10):
            await runner.wait_applied(lsns[-1])
        tg.cancel_scope.cancel()
    assert sum(batches) == found + len(lsns)
    assert max(batches[startup:]) <= 10  # then batches of batch_size again


async def test_leader_epoch_from_announce_leader_is_stored(open_store: StoreFactory) -> None:
    from processor.commands import AnnounceLeader

    log = MemoryLog(clock=stepping_clock())
    await log.append_batch([invoke(), encode(AnnounceLeader(3)), encode(AnnounceLeader(4))])
    store = await open_store()
    runner = Runner(log, store, batch_size=2)
    await runner.catch_up()
    assert runner.leader_epoch == 4
    assert (await store.partition()).leader_epoch == 4


async def test_failed_commit_stops_the_runner_and_keeps_the_store_at_the_last_batch(
    memlog: MemoryLog, open_store: StoreFactory
) -> None:
    store = await open_store()
    calls = [0]

    def fail_third() -> None:
        calls[0] += 1
        if calls[0] == 3:
            raise OSError("disk full")

    store.before_commit = fail_third
    runner = Runner(memlog, store, batch_size=10)
    with pytest.raises(OSError, match="disk full"):
        await runner.catch_up()
    assert runner.applied_lsn == 20 == applied_lsn_on_disk(store.path)
    with pytest.raises(RunnerError, match="disk full"):
        await runner.wait_applied(21)
