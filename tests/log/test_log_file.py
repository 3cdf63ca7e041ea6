"""FileLog specifics: group commit, fsync policies, segment rolling, reopen, write failures."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest

from log import FileLog, InvalidLogConfig, LogFailed, LogReadOnly, parse_fsync_policy, parse_size
from tests.log.log_helpers import LogFactory, SteppingClock, payload_for, segment_files


async def test_group_commit_writes_concurrent_appends_with_few_fsyncs(
    file_logs: LogFactory,
) -> None:
    log = file_logs.open()
    assert isinstance(log, FileLog)

    async def appender(worker: int) -> list[int]:
        return [await log.append(payload_for(worker * 100 + i)) for i in range(20)]

    results = await asyncio.gather(*(appender(w) for w in range(100)))
    lsns = sorted(lsn for result in results for lsn in result)
    assert lsns == list(range(1, 2001))
    assert log.fsync_count <= 2000 // 10, f"{log.fsync_count} fsyncs for 2000 appends"


async def test_each_sequential_append_is_fsynced_before_it_returns(tmp_path: Path) -> None:
    synced_sizes: list[int] = []

    def recording_sync(fd: int) -> None:
        os.fdatasync(fd)
        synced_sizes.append(os.fstat(fd).st_size)

    log = FileLog(tmp_path, sync_fn=recording_sync)
    for i in range(5):
        await log.append(b"x" * 10)
        assert len(synced_sizes) == i + 1  # the append returned only after its fsync
    assert synced_sizes == [34 * n for n in range(1, 6)]
    await log.close()


async def test_fsync_never_does_not_sync_until_close(tmp_path: Path) -> None:
    log = FileLog(tmp_path, fsync="never")
    for i in range(50):
        await log.append(payload_for(i))
    assert log.fsync_count == 0
    await log.close()
    assert log.fsync_count == 1


async def test_fsync_interval_syncs_dirty_data_within_the_interval(tmp_path: Path) -> None:
    synced = threading.Event()

    def recording_sync(fd: int) -> None:
        os.fdatasync(fd)
        synced.set()

    log = FileLog(tmp_path, fsync="interval:20ms", sync_fn=recording_sync)
    await log.append(b"a")
    assert log.fsync_count == 0  # acknowledged once written, before any fsync
    assert await asyncio.to_thread(synced.wait, 2), "no fsync within the interval"
    assert log.fsync_count == 1
    await log.close()


def test_fsync_policies_parse_and_bad_values_name_the_accepted_ones() -> None:
    assert str(parse_fsync_policy("always")) == "always"
    assert parse_fsync_policy("interval:10ms").interval_ms == 10
    assert parse_fsync_policy("interval:25").interval_ms == 25
    assert str(parse_fsync_policy("NEVER")) == "never"
    for bad in ("sometimes", "interval:", "interval:0ms", "interval:-5"):
        with pytest.raises(InvalidLogConfig, match=r"always.*interval:<ms>.*never"):
            parse_fsync_policy(bad)
    assert parse_size("64MiB") == 64 << 20
    assert parse_size("4096") == 4096
    with pytest.raises(InvalidLogConfig, match="invalid size"):
        parse_size("64 parsecs")


async def test_segments_roll_at_the_size_and_reads_cross_them(tmp_path: Path) -> None:
    log = FileLog(tmp_path, segment_size=2048)
    await log.append_batch([payload_for(i, 100) for i in range(1, 101)])
    for i in range(101, 151):
        await log.append(payload_for(i, 100))
    files = segment_files(tmp_path)
    assert len(files) >= 7
    assert all(f.stat().st_size <= 2048 for f in files)
    assert files[0].name == "00000000000000000001.seg"
    records = [r async for r in log.read(1)]
    assert [r.payload for r in records] == [payload_for(i, 100) for i in range(1, 151)]
    assert [r.lsn for r in await log.read_batch(37, 40)] == list(range(37, 77))
    await log.close()
    reopened = FileLog(tmp_path, segment_size=2048)
    assert reopened.tail() == 150
    assert [r.lsn for r in await reopened.read_batch(99, 5)] == [99, 100, 101, 102, 103]
    first_lsns = [int(f.stem) for f in segment_files(tmp_path)]
    assert first_lsns == sorted(first_lsns) and first_lsns[0] == 1
    await reopened.close()


async def test_a_record_larger_than_a_segment_gets_its_own_segment(tmp_path: Path) -> None:
    log = FileLog(tmp_path, segment_size=1024)
    await log.append(b"small")
    big = os.urandom(5000)
    assert await log.append(big) == 2
    await log.append(b"after")
    assert [r.payload for r in await log.read_batch(1, 3)] == [b"small", big, b"after"]
    await log.close()


async def test_random_reads_seek_through_the_sparse_index(tmp_path: Path) -> None:
    log = FileLog(tmp_path, fsync="never")
    await log.append_batch([payload_for(i) for i in range(1, 1001)])
    for start in (1, 63, 64, 65, 500, 999, 1000, 200, 2):
        batch = await log.read_batch(start, 3)
        assert [r.lsn for r in batch] == list(range(start, min(start + 3, 1001)))
        assert [r.payload for r in batch] == [payload_for(r.lsn) for r in batch]
    await log.close()


async def test_reopened_log_keeps_records_and_continues_lsns(tmp_path: Path) -> None:
    clock = SteppingClock(10_000)
    log = FileLog(tmp_path, clock=clock)
    for i in range(1, 11):
        await log.append(payload_for(i))
    await log.close()
    clock.set(5_000)  # the wall clock went backwards across the restart
    log = FileLog(tmp_path, clock=clock)
    assert log.tail() == 10
    assert await log.append(b"eleven") == 11
    records = [r async for r in log.read(1)]
    assert [r.payload for r in records[:10]] == [payload_for(i) for i in range(1, 11)]
    assert records[-1].timestamp_ms == 10_000
    await log.close()


async def test_trim_deletes_whole_segments_below_the_lsn_only(tmp_path: Path) -> None:
    log = FileLog(tmp_path, segment_size=1024)
    await log.append_batch([payload_for(i, 100) for i in range(1, 61)])
    before = segment_files(tmp_path)
    await log.trim(25)
    after = segment_files(tmp_path)
    assert after == [f for f in before if int(f.stem) >= int(after[0].stem)]
    assert len(after) < len(before)
    assert log.first_lsn() == int(after[0].stem) <= 26
    await log.close()
    reopened = FileLog(tmp_path, segment_size=1024)
    assert reopened.first_lsn() == int(after[0].stem)
    assert reopened.tail() == 60
    await reopened.close()


async def test_a_failed_fsync_fails_the_appends_and_stops_the_log(tmp_path: Path) -> None:
    def failing_sync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    log = FileLog(tmp_path, sync_fn=failing_sync)
    results = await asyncio.gather(*(log.append(b"x") for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, LogFailed) for r in results)
    with pytest.raises(LogFailed, match="reopen the log"):
        await log.append(b"y")
    assert log.tail() == 0
    await log.close()


async def test_a_cancelled_appender_does_not_disturb_the_others(tmp_path: Path) -> None:
    log = FileLog(tmp_path)
    tasks = [asyncio.create_task(log.append(payload_for(i))) for i in range(1, 21)]
    await asyncio.sleep(0)
    tasks[5].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[5], asyncio.CancelledError)
    assert [d for i, d in enumerate(done) if i != 5] == [i for i in range(1, 21) if i != 6]
    assert log.tail() == 20  # the cancelled record is still in the log, no gap
    await log.close()


async def test_cancelling_an_appender_mid_fsync_leaves_the_others_waiting_for_durability(
    tmp_path: Path,
) -> None:
    entered, release = threading.Event(), threading.Event()

    def gated_sync(fd: int) -> None:
        entered.set()
        release.wait(5)
        os.fdatasync(fd)

    log = FileLog(tmp_path, sync_fn=gated_sync)
    singles = [asyncio.create_task(log.append(payload_for(i))) for i in range(1, 11)]
    batch = asyncio.create_task(log.append_batch([payload_for(i) for i in range(11, 14)]))
    assert await asyncio.to_thread(entered.wait, 5)  # the group's fsync is in flight
    singles[3].cancel()
    await asyncio.sleep(0.05)
    assert singles[3].cancelled()
    assert not any(t.done() for i, t in enumerate(singles) if i != 3) and not batch.done()
    assert log.tail() == 0  # nothing acknowledged before its fsync returned
    release.set()
    assert await asyncio.gather(*singles[:3], *singles[4:]) == [1, 2, 3, 5, 6, 7, 8, 9, 10]
    assert await batch == [11, 12, 13]
    assert log.tail() == 13
    await log.close()


async def test_readonly_log_refuses_writes_and_takes_no_lock(tmp_path: Path) -> None:
    writer = FileLog(tmp_path)
    await writer.append(b"one")
    reader = FileLog(tmp_path, readonly=True)
    assert [r.payload for r in await reader.read_batch(1, 5)] == [b"one"]
    with pytest.raises(LogReadOnly):
        await reader.append(b"two")
    await reader.close()
    await writer.close()


async def test_fast_fsyncs_move_onto_the_loop_and_stay_acknowledged_only_after_them(
    tmp_path: Path,
) -> None:
    threads: list[str] = []
    synced_sizes: list[int] = []

    def recording_sync(fd: int) -> None:
        threads.append(threading.current_thread().name)
        synced_sizes.append(os.fstat(fd).st_size)

    log = FileLog(tmp_path, sync_fn=recording_sync, inline_fsync_under_us=1_000_000)
    for i in range(20):
        await log.append(b"x" * 10)
        assert len(synced_sizes) == i + 1  # the append returned only after its fsync
    assert threads[0] != threading.main_thread().name  # measured in the thread first
    assert threads[-1] == threading.main_thread().name
    assert log.inline_fsyncs > 10
    results = await asyncio.gather(*(log.append(b"y") for _ in range(50)))
    assert sorted(results) == list(range(21, 71)) and log.tail() == 70
    assert synced_sizes[-1] == segment_files(tmp_path)[-1].stat().st_size
    await log.close()


async def test_a_slow_fsync_moves_the_fsyncs_back_to_the_thread(tmp_path: Path) -> None:
    slow = threading.Event()
    threads: list[str] = []

    def sync(fd: int) -> None:
        threads.append(threading.current_thread().name)
        if slow.is_set():
            time.sleep(0.01)

    log = FileLog(tmp_path, sync_fn=sync, inline_fsync_under_us=2_000)
    for _ in range(20):
        await log.append(b"x")
    assert threads[-1] == threading.main_thread().name
    slow.set()
    for _ in range(3):
        await log.append(b"x")
    assert threads[-1] != threading.main_thread().name  # one slow fsync on the loop, then off
    assert threads[-3:].count(threading.main_thread().name) <= 1
    await log.close()


async def test_a_failed_inline_fsync_fails_the_appends_and_stops_the_log(tmp_path: Path) -> None:
    fail = threading.Event()

    def sync(fd: int) -> None:
        if fail.is_set():
            raise OSError(5, "Input/output error")

    log = FileLog(tmp_path, sync_fn=sync, inline_fsync_under_us=1_000_000)
    for _ in range(10):
        await log.append(b"x")
    assert log.inline_fsyncs > 0
    fail.set()
    with pytest.raises(LogFailed):
        await log.append(b"y")
    with pytest.raises(LogFailed, match="reopen the log"):
        await log.append(b"z")
    assert log.tail() == 10
    await log.close()
