"""The leader's attempt table and bounded pool, with fake attempt functions."""

from __future__ import annotations

import anyio

from processor.actions import StartAttempt
from processor.leader.attempts import Attempts, Slot

from .leader_support import wait_for


def start(inv: str, n: int) -> StartAttempt:
    return StartAttempt(inv, n, "Svc", "h", None)


class Runs:
    """Attempt functions that block until released; records what started and what was cancelled."""

    def __init__(self) -> None:
        self.started: list[tuple[str, int]] = []
        self.cancelled: list[tuple[str, int]] = []
        self.finished: list[tuple[str, int]] = []
        self.release = anyio.Event()

    async def __call__(self, slot: Slot) -> None:
        key = (slot.invocation_id, slot.attempt)
        self.started.append(key)
        try:
            await self.release.wait()
        except anyio.get_cancelled_exc_class():
            self.cancelled.append(key)
            raise
        self.finished.append(key)


async def test_at_most_max_concurrent_run_and_the_rest_start_in_order() -> None:
    runs = Runs()
    attempts = Attempts(runs, max_concurrent=2)
    async with anyio.create_task_group() as tg:
        attempts.bind(tg)
        for i in range(5):
            attempts.start(start(f"inv_{i}", 1))
        await wait_for(lambda: len(runs.started) == 2)
        assert (attempts.running, attempts.queued) == (2, 3)
        runs.release.set()
        await wait_for(lambda: len(runs.finished) == 5)
    assert runs.started == [(f"inv_{i}", 1) for i in range(5)]
    assert attempts.running == 0 and attempts.current("inv_0") is None


async def test_a_newer_attempt_supersedes_and_an_older_or_equal_one_is_ignored() -> None:
    runs = Runs()
    attempts = Attempts(runs)
    async with anyio.create_task_group() as tg:
        attempts.bind(tg)
        assert attempts.start(start("inv_a", 1))
        await wait_for(lambda: runs.started == [("inv_a", 1)])
        slot1 = attempts.current("inv_a")
        assert slot1 is not None and attempts.is_current(slot1)
        assert not attempts.start(start("inv_a", 1))  # a duplicate, e.g. from the takeover
        assert attempts.start(start("inv_a", 2))
        await wait_for(lambda: runs.cancelled == [("inv_a", 1)])
        assert not attempts.is_current(slot1)
        assert not attempts.abort("inv_a", 1)  # not the current one any more
        assert attempts.abort("inv_a", None)
        await wait_for(lambda: ("inv_a", 2) in runs.cancelled)
    assert runs.finished == []


async def test_aborting_a_queued_attempt_means_it_never_starts() -> None:
    runs = Runs()
    attempts = Attempts(runs, max_concurrent=1)
    async with anyio.create_task_group() as tg:
        attempts.bind(tg)
        attempts.start(start("inv_a", 1))
        attempts.start(start("inv_b", 1))
        await wait_for(lambda: runs.started == [("inv_a", 1)])
        assert attempts.abort("inv_b", 1)
        assert attempts.queued == 0
        runs.release.set()
        await wait_for(lambda: runs.finished == [("inv_a", 1)])
        await anyio.sleep(0.05)
    assert runs.started == [("inv_a", 1)]


async def test_attempts_queued_before_bind_start_when_bound() -> None:
    runs = Runs()
    attempts = Attempts(runs)
    attempts.start(start("inv_a", 3))
    assert attempts.queued == 1 and runs.started == []
    async with anyio.create_task_group() as tg:
        attempts.bind(tg)
        await wait_for(lambda: runs.started == [("inv_a", 3)])
        attempts.abort_all()
    assert runs.cancelled == [("inv_a", 3)]
