"""Attempt tasks stay tied to the leader's task group although they are plain asyncio tasks."""

from __future__ import annotations

import anyio
import anyio.lowlevel

from processor.actions import StartAttempt
from processor.leader.attempts import Attempts, Slot

from .leader_support import wait_for


def start(inv: str, n: int = 1) -> StartAttempt:
    return StartAttempt(inv, n, "Svc", "h", None)


async def test_cancelling_the_group_cancels_running_attempts_and_waits_for_them() -> None:
    cleaned: list[str] = []
    started: list[str] = []

    async def run(slot: Slot) -> None:
        started.append(slot.invocation_id)
        try:
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.01)  # cleanup that itself awaits
            cleaned.append(slot.invocation_id)

    attempts = Attempts(run)
    async with anyio.create_task_group() as tg:
        attempts.bind(tg)
        for i in range(3):
            attempts.start(start(f"inv_{i}"))
        await wait_for(lambda: len(started) == 3)
        tg.cancel_scope.cancel()
    assert sorted(cleaned) == ["inv_0", "inv_1", "inv_2"]
    assert attempts.running == 0


async def test_an_attempt_that_crashes_crashes_the_group() -> None:
    async def run(slot: Slot) -> None:
        await anyio.lowlevel.checkpoint()
        raise RuntimeError(f"bug in {slot.invocation_id}")

    attempts = Attempts(run)
    caught: list[str] = []
    try:
        async with anyio.create_task_group() as tg:
            attempts.bind(tg)
            attempts.start(start("inv_x"))
            await anyio.sleep_forever()
    except* RuntimeError as group:
        caught = [str(e) for e in group.exceptions]
    assert caught == ["bug in inv_x"]


async def test_an_attempt_aborted_before_its_first_step_frees_its_place() -> None:
    runs: list[str] = []

    async def run(slot: Slot) -> None:
        runs.append(slot.invocation_id)

    attempts = Attempts(run, max_concurrent=1)
    async with anyio.create_task_group() as tg:
        attempts.bind(tg)
        attempts.start(start("inv_a"))
        attempts.abort("inv_a")  # its task exists but has not run yet
        attempts.start(start("inv_b"))
        await wait_for(lambda: runs == ["inv_b"])
    assert attempts.running == 0 and attempts.current("inv_b") is None
