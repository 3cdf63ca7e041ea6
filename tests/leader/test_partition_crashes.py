"""Crashes: a deployment SIGKILLed mid-attempt; a processor restart with work in every status."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import anyio

from processor.retry import RetryPolicy
from processor.status import Status

from .conftest import Shared
from .e2e_support import STEPPER, Env, deployment, ledger_lines, now_clock
from .leader_support import eventually, wait_for


async def test_deployment_killed_mid_attempt_keeps_stored_entries_and_next_attempt_continues(
    tmp_path: Path,
) -> None:
    clock = now_clock()
    env = Env(tmp_path, clock)
    ledger, block = tmp_path / "ledger", tmp_path / "block"
    block.touch()
    args = ("--ledger", str(ledger), "--block", str(block))
    policy = RetryPolicy(initial_interval_ms=1000, max_attempts=5)
    async with deployment(STEPPER, *args, workdir=tmp_path) as stepper, env.running() as p:
        await env.registry.register(stepper.uri)
        inv = await env.invoke("Stepper", "work", None, policy)
        await wait_for(
            lambda: ledger_lines(ledger) == ["step-1", "step-2", "step-3"], what="step 3"
        )
        stored = ["input", "run:step-1", "run:step-2"]

        async def steps_stored() -> bool:
            return await env.journal_kinds(inv) == stored

        await eventually(steps_stored, what="steps 1 and 2 in the journal")
        stepper.kill()  # SIGKILL in the middle of step 3
        view = await env.wait_status(inv, Status.BACKING_OFF)
        assert view.last_failure is not None and "was cut" in view.last_failure.message
        assert await env.journal_kinds(inv) == ["input", "run:step-1", "run:step-2"]

        block.unlink()
        await stepper.start()  # restarted on the same URI
        done = p.wait_for_completion(inv)
        assert view.next_retry_at is not None
        clock.set(view.next_retry_at)
        with anyio.fail_after(10):
            result = await done
        kinds = await env.journal_kinds(inv)
    assert result.value == b'"all steps done"'
    assert kinds == ["input", "run:step-1", "run:step-2", "run:step-3", "output"]
    # Steps 1 and 2 were stored before the kill and never ran again; step 3 ran twice.
    assert ledger_lines(ledger) == ["step-1", "step-2", "step-3", "step-3"]


async def test_restart_with_running_backing_off_suspended_and_paused_invocations(
    tmp_path: Path, shared: Shared
) -> None:
    clock = now_clock()
    env = Env(tmp_path, clock)
    ledger = shared.ledger
    slow_retry = RetryPolicy(initial_interval_ms=10_000, max_attempts=10)
    no_retry = RetryPolicy(max_attempts=1)
    async with env.running() as p:
        await env.registry.register(shared.v1.uri)
        await env.registry.register(shared.greeter.uri)
        running = await env.invoke("Checkout", "slow", {"seconds": 30})
        backing_off = await env.invoke("Checkout", "process", {"id": "b"}, slow_retry)
        paused = await env.invoke("Checkout", "process", {"id": "p"}, no_retry)
        suspended = await env.invoke(
            "Greeter", "greet_slowly", {"name": "ada", "sleep_seconds": 60}
        )
        await wait_for(lambda: "slow-start" in ledger_lines(ledger, running), what="slow")
        retry_at = (await env.wait_status(backing_off, Status.BACKING_OFF)).next_retry_at
        await env.wait_status(paused, Status.PAUSED)
        await env.wait_status(suspended, Status.SUSPENDED)
        wake_up_at = (await p.get_journal(suspended))[2][1]["wake_up_at"]
        before = {inv: await env.view(inv) for inv in (running, backing_off, paused)}
    # The processor is down. Bring it back on the same directories.
    async with env.reopen().running() as p:
        assert p.leader.epoch == 2  # AnnounceLeader(epoch + 1) was appended and applied
        # Running: a new attempt runs (the old one died with the processor).
        await wait_for(
            lambda: ledger_lines(ledger, running) == ["slow-start"] * 2, what="a new attempt"
        )
        view = await env.view(running)
        assert view.status is Status.RUNNING
        assert view.attempt == before[running].attempt  # re-issued under the same number
        # Timers were loaded from the store and fire at their times.
        assert retry_at is not None
        clock.set(retry_at - 1)
        await anyio.sleep(0.1)
        assert (await env.view(backing_off)).attempt == 1
        clock.set(retry_at)
        await env.wait_view(backing_off, lambda v: v.attempt == 2, "the retry after the restart")
        done = p.wait_for_completion(suspended)
        clock.set(max(wake_up_at, clock.now_ms()))
        with anyio.fail_after(10):
            result = await done
        assert result.value == b'"Hello Ada!"'
        # Paused stays paused: not on restart, not when time passes.
        clock.advance(3_600_000)
        await anyio.sleep(0.2)
        assert await env.view(paused) == before[paused]
        assert (await env.kill(running)).code == 200
    assert Counter(ledger_lines(ledger, paused)) == {"reserve": 1, "charge": 1, "ship": 1}
