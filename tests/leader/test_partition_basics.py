"""A partition (FileLog + SQLite + runner + leader) running real deployments as processes."""

from __future__ import annotations

from pathlib import Path

import anyio

from processor.commands import Invoke
from processor.ids import new_invocation_id
from processor.retry import RetryPolicy
from processor.status import Status

from .conftest import Shared
from .e2e_support import Env, now_clock


async def test_invocation_runs_on_the_latest_deployment_and_completes(
    tmp_path: Path, shared: Shared
) -> None:
    env = Env(tmp_path)
    async with env.running() as p:
        dep, _ = await env.registry.register(shared.greeter.uri)
        inv = new_invocation_id()
        done = p.wait_for_completion(inv)  # registered before the invoke is appended
        reply = await p.propose(
            lambda rid: Invoke(inv, "Greeter", "greet", b'"Ada"', RetryPolicy(), request_id=rid)
        )
        assert reply.code == 200 and reply.body["status"] == "Accepted"
        with anyio.fail_after(10):
            result = await done
        assert result.value == b'"Hello Ada!"'
        view = await env.view(inv)
        assert view.status is Status.COMPLETED and view.attempt == 1
        assert view.last_attempt_deployment == dep.id
        assert await env.journal_kinds(inv) == ["input", "output"]


async def test_sleep_suspends_then_the_timer_fires_and_the_invocation_completes(
    tmp_path: Path, shared: Shared
) -> None:
    clock = now_clock()
    env = Env(tmp_path, clock)
    async with env.running() as p:
        await env.registry.register(shared.greeter.uri)
        inv = await env.invoke("Greeter", "greet_slowly", {"name": "ada", "sleep_seconds": 60})
        done = p.wait_for_completion(inv)
        view = await env.wait_status(inv, Status.SUSPENDED)
        assert await env.journal_kinds(inv) == ["input", "run:fetch-profile", "sleep"]
        sleep = (await p.get_journal(inv))[2][1]
        assert view.awaiting == (sleep["completion_id"],)
        # The timer fires exactly at the wake-up time the deployment asked for, not before.
        clock.set(sleep["wake_up_at"] - 1)
        await anyio.sleep(0.1)
        assert (await env.view(inv)).status is Status.SUSPENDED
        clock.set(sleep["wake_up_at"])
        with anyio.fail_after(10):
            result = await done
        assert result.value == b'"Hello Ada!"'
        kinds = await env.journal_kinds(inv)
        assert kinds == ["input", "run:fetch-profile", "sleep", "completion", "output"]
        assert (await env.view(inv)).attempt == 2
