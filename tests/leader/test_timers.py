"""TimerService driven by a FakeClock: exact firing, batching, cancellation, rescheduling."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio

from processor.commands import TimerKey, TimerKind
from processor.leader.clock import FakeClock, SystemClock
from processor.leader.timers import DueTimer, TimerService

T0 = 1_700_000_000_000


def sleep_key(c: int) -> TimerKey:
    return TimerKey(TimerKind.SLEEP, c)


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[DueTimer]] = []
        self.fired_at: list[int] = []
        self.clock: FakeClock | None = None

    async def __call__(self, due: list[DueTimer]) -> None:
        self.batches.append(due)
        if self.clock is not None:
            self.fired_at.append(self.clock.now_ms())

    @property
    def fired(self) -> list[DueTimer]:
        return [t for batch in self.batches for t in batch]


async def wait_for(predicate: Callable[[], bool], limit_s: float = 2.0) -> None:
    with anyio.fail_after(limit_s):
        while not predicate():  # noqa: ASYNC110 - polls a plain condition
            await anyio.sleep(0.001)


Env = tuple[FakeClock, TimerService, Recorder]


@asynccontextmanager
async def running() -> AsyncIterator[Env]:
    clock = FakeClock(T0)
    rec = Recorder()
    rec.clock = clock
    service = TimerService(clock, rec)
    async with anyio.create_task_group() as tg:
        await tg.start(service.run)
        yield clock, service, rec
        tg.cancel_scope.cancel()


async def settle() -> None:
    for _ in range(20):
        await anyio.lowlevel.checkpoint()


async def test_timer_fires_exactly_at_its_time_and_not_before() -> None:
    async with running() as (clock, service, rec):
        service.schedule("inv_a", sleep_key(1), T0 + 100)
        await settle()
        clock.advance(99)
        await settle()
        assert rec.fired == []
        clock.advance(1)
        await wait_for(lambda: rec.fired == [("inv_a", sleep_key(1))])
        assert rec.fired_at == [T0 + 100]
        assert len(service) == 0


async def test_due_timers_fire_together_in_one_batch() -> None:
    async with running() as (clock, service, rec):
        service.load([("inv_a", sleep_key(1), T0 + 50), ("inv_b", sleep_key(2), T0 + 60)])
        service.schedule("inv_c", TimerKey(TimerKind.RETRY, 3), T0 + 500)
        await settle()
        clock.advance(100)
        await wait_for(lambda: len(rec.fired) == 2)
        assert rec.batches == [[("inv_a", sleep_key(1)), ("inv_b", sleep_key(2))]]
        assert service.fire_at("inv_c", TimerKey(TimerKind.RETRY, 3)) == T0 + 500


async def test_timer_already_due_when_loaded_fires_at_once() -> None:
    async with running() as (_, service, rec):
        service.load([("inv_a", TimerKey(TimerKind.START), T0 - 1000)])
        await wait_for(lambda: rec.fired == [("inv_a", TimerKey(TimerKind.START))])


async def test_cancelled_timer_never_fires() -> None:
    async with running() as (clock, service, rec):
        service.schedule("inv_a", sleep_key(1), T0 + 10)
        service.schedule("inv_a", sleep_key(2), T0 + 20)
        service.schedule("inv_b", sleep_key(1), T0 + 30)
        service.cancel("inv_a", sleep_key(1))
        await settle()
        clock.advance(25)
        await wait_for(lambda: len(rec.fired) == 1)
        service.cancel("inv_b")  # all timers of inv_b
        clock.advance(100)
        await settle()
        assert rec.fired == [("inv_a", sleep_key(2))]
        assert len(service) == 0


async def test_rescheduling_a_timer_keeps_only_the_new_time() -> None:
    async with running() as (clock, service, rec):
        service.schedule("inv_a", sleep_key(1), T0 + 10)
        service.schedule("inv_a", sleep_key(1), T0 + 40)
        await settle()
        clock.advance(20)
        await settle()
        assert rec.fired == []
        clock.advance(20)
        await wait_for(lambda: rec.fired == [("inv_a", sleep_key(1))])
        assert rec.fired_at == [T0 + 40]


async def test_earlier_timer_scheduled_while_sleeping_wakes_the_loop() -> None:
    async with running() as (clock, service, rec):
        service.schedule("inv_late", sleep_key(1), T0 + 10_000)
        await settle()
        service.schedule("inv_early", sleep_key(1), T0 + 5)
        await settle()
        clock.advance(5)
        await wait_for(lambda: rec.fired == [("inv_early", sleep_key(1))])
        assert rec.fired_at == [T0 + 5]


async def test_many_cancellations_compact_the_heap() -> None:
    rec = Recorder()
    service = TimerService(FakeClock(T0), rec)
    for i in range(5000):
        service.schedule(f"inv_{i}", sleep_key(1), T0 + 1000 + i)
    for i in range(4990):
        service.cancel(f"inv_{i}")
    assert len(service) == 10
    assert len(service._heap) < 5000  # tombstones were dropped
    assert [inv for inv, _ in service.pop_due(T0 + 10_000)] == [
        f"inv_{i}" for i in range(4990, 5000)
    ]


async def test_system_clock_timer_fires_after_its_time() -> None:
    clock = SystemClock()
    rec = Recorder()
    service = TimerService(clock, rec)
    async with anyio.create_task_group() as tg:
        await tg.start(service.run)
        fire_at = clock.now_ms() + 30
        service.schedule("inv_a", sleep_key(1), fire_at)
        await wait_for(lambda: len(rec.fired) == 1)
        assert clock.now_ms() >= fire_at
        tg.cancel_scope.cancel()
