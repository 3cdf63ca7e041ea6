"""The `Log` contract, run against every implementation (MemoryLog and FileLog)."""

from __future__ import annotations

import asyncio

import pytest

from log import Log, LogClosed, Record, TrimmedError, follow
from tests.log.log_helpers import LogFactory, SteppingClock, payload_for


async def fill(log: Log, count: int) -> list[int]:
    return [await log.append(payload_for(i + 1)) for i in range(count)]


async def test_empty_log_has_tail_zero_and_reads_nothing(logs: LogFactory) -> None:
    log = logs.open()
    assert isinstance(log, Log)
    assert log.tail() == 0
    assert log.first_lsn() == 1
    assert await log.read_batch(1, 10) == []
    assert [r async for r in log.read(1)] == []


async def test_appends_get_gap_free_lsns_from_one(logs: LogFactory) -> None:
    log = logs.open()
    assert await log.append(b"a") == 1
    assert await log.append(b"b") == 2
    assert await log.append_batch([b"c", b"d", b"e"]) == [3, 4, 5]
    assert await log.append_batch([]) == []
    assert log.tail() == 5
    records = await log.read_batch(1, 100)
    assert [(r.lsn, r.payload) for r in records] == [
        (1, b"a"),
        (2, b"b"),
        (3, b"c"),
        (4, b"d"),
        (5, b"e"),
    ]


async def test_read_batch_respects_start_and_limit(logs: LogFactory) -> None:
    log = logs.open()
    await fill(log, 50)
    batch = await log.read_batch(10, 5)
    assert [r.lsn for r in batch] == [10, 11, 12, 13, 14]
    assert [r.payload for r in batch] == [payload_for(i) for i in range(10, 15)]
    assert [r.lsn for r in await log.read_batch(48, 100)] == [48, 49, 50]
    assert await log.read_batch(51, 10) == []
    assert await log.read_batch(500, 10) == []


async def test_read_iterates_a_closed_range_in_lsn_order(logs: LogFactory) -> None:
    log = logs.open()
    await fill(log, 30)
    assert [r.lsn async for r in log.read(5, 9)] == [5, 6, 7, 8, 9]
    assert [r.lsn async for r in log.read(25)] == list(range(25, 31))
    assert [r.lsn async for r in log.read(28, 1000)] == [28, 29, 30]


async def test_read_below_one_is_rejected(logs: LogFactory) -> None:
    log = logs.open()
    await fill(log, 3)
    with pytest.raises(ValueError, match="LSNs start at 1"):
        await log.read_batch(0, 10)


async def test_timestamps_never_decrease_when_the_clock_goes_backwards(logs: LogFactory) -> None:
    clock = SteppingClock(5_000, 7_000, 3_000, 7_500, 100, 9_000)
    log = logs.open(clock=clock)
    await fill(log, 6)
    stamps = [r.timestamp_ms for r in await log.read_batch(1, 10)]
    assert stamps == [5_000, 7_000, 7_000, 7_500, 7_500, 9_000]


async def test_records_are_immutable(logs: LogFactory) -> None:
    log = logs.open()
    await log.append(b"x")
    (record,) = await log.read_batch(1, 1)
    assert record == Record(1, record.timestamp_ms, b"x")
    with pytest.raises(AttributeError):
        record.lsn = 5  # type: ignore[misc]


async def test_trim_makes_old_lsns_unreadable_and_keeps_newer_ones(logs: LogFactory) -> None:
    log = logs.open(segment_size=1024) if logs.durable else logs.open()
    await fill(log, 100)
    await log.trim(60)
    first = log.first_lsn()
    assert 1 < first <= 61
    with pytest.raises(TrimmedError, match=r"LSN 1 was trimmed.*first readable LSN is"):
        await log.read_batch(1, 10)
    assert [r.lsn async for r in log.read(first)] == list(range(first, 101))
    assert await log.append(b"after trim") == 101


async def test_trimming_everything_keeps_lsns_counting(logs: LogFactory) -> None:
    log = logs.open()
    await fill(log, 5)
    await log.trim(1_000)
    assert log.tail() == 5
    assert await log.append(b"next") == 6
    assert [r.lsn for r in await log.read_batch(log.first_lsn(), 10)][-1] == 6


async def test_wait_beyond_returns_at_once_when_records_exist(logs: LogFactory) -> None:
    log = logs.open()
    await fill(log, 3)
    assert await asyncio.wait_for(log.wait_beyond(2), 1) == 3


async def test_wait_beyond_wakes_up_on_a_new_record(logs: LogFactory) -> None:
    log = logs.open()
    await fill(log, 2)
    waiter = asyncio.create_task(log.wait_beyond(2))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    await log.append(b"new")
    assert await asyncio.wait_for(waiter, 2) == 3


async def test_a_cancelled_wait_leaves_nothing_behind(logs: LogFactory) -> None:
    log = logs.open()
    for _ in range(3):
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(log.wait_beyond(0), 0.01)
    assert await log.append(b"x") == 1
    assert await asyncio.wait_for(log.wait_beyond(0), 1) == 1


async def test_follow_yields_new_records_as_they_arrive(logs: LogFactory) -> None:
    log = logs.open()
    await fill(log, 2)
    seen: list[int] = []

    async def consume() -> None:
        async for batch in follow(log, 1):
            seen.extend(r.lsn for r in batch)
            if len(seen) >= 5:
                return

    consumer = asyncio.create_task(consume())
    for i in range(3):
        await asyncio.sleep(0.005)
        await log.append(payload_for(3 + i))
    await asyncio.wait_for(consumer, 2)
    assert seen == [1, 2, 3, 4, 5]


async def test_close_wakes_waiters_and_rejects_further_use(logs: LogFactory) -> None:
    log = logs.open()
    await fill(log, 1)
    waiter = asyncio.create_task(log.wait_beyond(1))
    await asyncio.sleep(0.01)
    await log.close()
    with pytest.raises(LogClosed):
        await asyncio.wait_for(waiter, 1)
    with pytest.raises(LogClosed):
        await log.append(b"late")
    with pytest.raises(LogClosed):
        await log.read_batch(1, 1)


async def test_concurrent_appenders_get_distinct_gap_free_lsns(logs: LogFactory) -> None:
    log = logs.open()

    async def appender(worker: int) -> list[tuple[int, bytes]]:
        out = []
        for i in range(20):
            payload = f"{worker}:{i}".encode()
            out.append((await log.append(payload), payload))
        return out

    results = await asyncio.gather(*(appender(w) for w in range(50)))
    acked = dict(pair for result in results for pair in result)
    assert sorted(acked) == list(range(1, 1001))
    records = [r async for r in log.read(1)]
    assert [r.lsn for r in records] == list(range(1, 1001))
    assert all(acked[r.lsn] == r.payload for r in records)
    for result in results:  # each appender's own records are in its call order
        assert [lsn for lsn, _ in result] == sorted(lsn for lsn, _ in result)
