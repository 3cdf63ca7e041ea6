"""Retries, automatic pause, manual pause, and sleeps around a pause (SPEC §3.2-§3.3, §4-§5)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import anyio

from processor.retry import RetryPolicy
from processor.status import Status

from .conftest import Shared
from .e2e_support import GREETER, Env, deployment, ledger_lines, now_clock
from .leader_support import eventually, wait_for


async def test_failing_attempts_back_off_then_pause_after_max_attempts(
    tmp_path: Path, shared: Shared
) -> None:
    clock = now_clock()
    env = Env(tmp_path, clock)
    async with env.running() as p:
        await env.registry.register(shared.v1.uri)
        inv = await env.invoke("Checkout", "process", {"id": "o1"})
        view = await env.wait_status(inv, Status.BACKING_OFF)
        assert view.retry_policy.initial_interval_ms == 20  # from the deployment's discovery
        assert view.retry_count == 1 and view.attempt == 1
        assert view.last_failure is not None
        assert "v1 bug: the ship step crashes" in view.last_failure.message
        assert view.next_retry_at is not None
        assert 20 <= view.next_retry_at - view.modified_at <= 26  # 20ms + up to 30 % jitter

        clock.set(view.next_retry_at - 1)  # not a millisecond early
        await anyio.sleep(0.1)
        assert (await env.view(inv)).attempt == 1
        clock.set(view.next_retry_at)

        view = await env.wait_view(
            inv,
            lambda v: v.status is Status.BACKING_OFF and v.retry_count == 2,
            "the second attempt to fail",
        )
        assert view.attempt == 2 and view.next_retry_at is not None
        assert 40 <= view.next_retry_at - view.modified_at <= 52  # the delay doubled
        clock.set(view.next_retry_at)
        view = await env.wait_status(inv, Status.PAUSED)
        events = await p.get_events(inv)

    assert view.attempt == 3 and view.retry_count == 3
    assert view.last_failure is not None and view.last_failure.attempt == 3
    assert "v1 bug: the ship step crashes" in view.last_failure.message
    assert view.last_failure.stacktrace
    assert [e.kind for e in events] == ["created", "transient-error", "paused"]
    assert events[1].data["count"] == 3  # identical failures collapsed into one event
    assert events[2].data["reason"] == "max-attempts"
    assert "v1 bug" in events[2].data["failure"]["message"]
    # Steps stored before the failure ran once; the failing step ran on every attempt.
    assert Counter(ledger_lines(shared.ledger, inv)) == {"reserve": 1, "charge": 1, "ship": 3}


async def test_on_max_attempts_kill_completes_with_the_failure(
    tmp_path: Path, shared: Shared
) -> None:
    env = Env(tmp_path)
    kill = RetryPolicy(initial_interval_ms=20, max_attempts=3, on_max_attempts="kill")
    async with env.running() as p:
        await env.registry.register(shared.v1.uri)
        inv = await env.invoke("Checkout", "process", {"id": "o2"}, kill)
        done = p.wait_for_completion(inv)
        with anyio.fail_after(15):
            result = await done
        view = await env.view(inv)
        events = await p.get_events(inv)
    assert result.failure is not None and "v1 bug" in result.failure.message
    assert view.status is Status.COMPLETED and view.result == result
    assert view.attempt == 3
    assert events[-1].kind == "completed" and events[-1].data["reason"] == "max-attempts"


async def test_pause_while_running_terminates_the_attempt_without_counting_a_failure(
    tmp_path: Path, shared: Shared
) -> None:
    env = Env(tmp_path)
    async with env.running() as p:
        await env.registry.register(shared.v2.uri)
        inv = await env.invoke("Checkout", "slow", {"seconds": 30})

        def steps() -> list[str]:
            return ledger_lines(shared.ledger, inv)

        await wait_for(lambda: steps() == ["slow-start"], what="the slow step")
        reply = await env.pause(inv)
        assert reply.code == 202
        view = await env.view(inv)
        assert view.status is Status.PAUSED and view.attempt == 1
        await wait_for(lambda: p.leader.attempts.running == 0, what="the attempt to end")
        again = await env.pause(inv)
        assert again.code == 200  # already paused
        await anyio.sleep(0.3)  # nothing runs while paused
        view = await env.view(inv)
        assert (view.status, view.attempt, view.retry_count) == (Status.PAUSED, 1, 0)
        assert view.last_failure is None
        assert [e.kind for e in await p.get_events(inv)] == ["created", "paused"]
        assert steps() == ["slow-start"]

        reply = await env.resume(inv)
        assert reply.code == 200
        await wait_for(lambda: steps() == ["slow-start"] * 2, what="a new attempt")
        view = await env.view(inv)
        assert (view.status, view.attempt) == (Status.RUNNING, 2)
        assert (await env.kill(inv)).code == 200
    assert "slow-done" not in steps()


async def test_pause_while_backing_off_means_no_attempt_even_past_the_retry_time(
    tmp_path: Path, shared: Shared
) -> None:
    clock = now_clock()
    env = Env(tmp_path, clock)
    policy = RetryPolicy(initial_interval_ms=1000, max_attempts=5)
    async with env.running() as p:
        await env.registry.register(shared.v1.uri)
        inv = await env.invoke("Checkout", "process", {"id": "o3"}, policy)
        backing_off = await env.wait_status(inv, Status.BACKING_OFF)
        assert len(await p.store.all_timers()) == 1
        reply = await env.pause(inv)
        assert reply.code == 202
        assert await p.store.all_timers() == []  # the retry timer is gone with the pause
        assert len(p.leader.timers) == 0
        env.advance(3_600_000)  # an hour past the retry time
        await anyio.sleep(0.3)
        view = await env.view(inv)
    assert (view.status, view.attempt) == (Status.PAUSED, 1)
    assert view.last_failure == backing_off.last_failure  # the user still sees why
    assert Counter(ledger_lines(shared.ledger, inv))["ship"] == 1


async def test_sleep_completion_arriving_while_paused_is_stored_and_stays_paused(
    tmp_path: Path,
) -> None:
    clock = now_clock()
    env = Env(tmp_path, clock)
    async with deployment(GREETER, workdir=tmp_path) as greeter, env.running() as p:
        await env.registry.register(greeter.uri)
        inv = await env.invoke("Greeter", "greet_slowly", {"name": "ada", "sleep_seconds": 60})
        await env.wait_status(inv, Status.SUSPENDED)
        wake_up_at = (await p.get_journal(inv))[2][1]["wake_up_at"]
        # Resume the suspended invocation while its deployment is down, and pause it: now it is
        # paused with its sleep timer still stored.
        greeter.kill()
        assert (await env.resume(inv)).code == 200
        assert (await env.pause(inv)).code == 202
        assert (await env.view(inv)).status is Status.PAUSED
        attempts = (await env.view(inv)).attempt

        clock.set(wake_up_at)

        async def completion_stored() -> bool:
            return "completion" in await env.journal_kinds(inv)

        await eventually(completion_stored, what="the sleep completion")
        await anyio.sleep(0.2)
        view = await env.view(inv)
        assert (view.status, view.attempt) == (Status.PAUSED, attempts)

        await greeter.start()  # the same URI again
        done = p.wait_for_completion(inv)
        assert (await env.resume(inv)).code == 200
        with anyio.fail_after(10):
            result = await done
    assert result.value == b'"Hello Ada!"'
