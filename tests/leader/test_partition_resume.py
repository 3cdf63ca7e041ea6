"""The seed scenario, resume options, cancel while paused, journal mismatch (SPEC §3.4-§3.5)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import anyio

from processor.retry import RetryPolicy
from processor.status import Status

from .conftest import Shared
from .e2e_support import CHECKOUT, Env, deployment, ledger_lines, now_clock


async def test_seed_scenario_v1_pauses_then_v2_resumed_with_latest_completes(
    tmp_path: Path, shared: Shared
) -> None:
    env = Env(tmp_path)
    async with env.running() as p:
        dp1, _ = await env.registry.register(shared.v1.uri)
        inv = await env.invoke("Checkout", "process", {"id": "A-1"})
        paused = await env.wait_status(inv, Status.PAUSED)
        assert paused.pinned_deployment == dp1.id and paused.attempt == 3
        assert paused.last_failure is not None and "v1 bug" in paused.last_failure.message

        dp2, created = await env.registry.register(shared.v2.uri)  # the fix is deployed
        assert created and dp2.id != dp1.id
        done = p.wait_for_completion(inv)
        reply = await env.resume(inv, "latest")
        assert reply.code == 200
        with anyio.fail_after(10):
            result = await done
        view = await env.view(inv)
        events = [e.kind for e in await p.get_events(inv)]

    assert result.value is not None
    assert json.loads(result.value)["shipment"] == "ship-A-1"
    assert view.status is Status.COMPLETED and view.attempt == 4
    assert view.pinned_deployment == dp2.id == view.last_attempt_deployment
    assert events == ["created", "transient-error", "paused", "resumed", "completed"]
    # The steps stored before the failure ran exactly once; ship: 3 times on v1, once on v2.
    assert Counter(ledger_lines(shared.ledger, inv)) == {"reserve": 1, "charge": 1, "ship": 4}


async def test_resume_keep_explicit_id_and_a_deployment_that_does_not_serve_the_service(
    tmp_path: Path, shared: Shared
) -> None:
    env = Env(tmp_path)
    async with env.running() as p:
        dp1, _ = await env.registry.register(shared.v1.uri)
        inv = await env.invoke("Checkout", "process", {"id": "A-2"})
        await env.wait_status(inv, Status.PAUSED)
        dp2, _ = await env.registry.register(shared.v2.uri)
        dpg, _ = await env.registry.register(shared.greeter.uri)

        # A deployment that does not serve Checkout: 400, nothing appended, nothing changes.
        before, tail = await env.view(inv), p.log.tail() if p.log else 0
        rejected = await env.resume(inv, dpg.id)
        assert rejected.code == 400
        assert dpg.id in rejected.body["message"]
        assert "does not serve service 'Checkout'" in rejected.body["message"]
        assert await env.view(inv) == before and p.log is not None and p.log.tail() == tail

        # keep: back on v1 with a fresh retry budget, which runs out again.
        assert (await env.resume(inv, "keep")).code == 200
        view = await env.wait_view(
            inv, lambda v: v.status is Status.PAUSED and v.attempt == 6, "paused after 6 attempts"
        )
        assert view.pinned_deployment == dp1.id and view.retry_count == 3

        # An explicit id re-pins onto it.
        done = p.wait_for_completion(inv)
        assert (await env.resume(inv, dp2.id)).code == 200
        with anyio.fail_after(10):
            result = await done
        view = await env.view(inv)
    assert result.value is not None and view.pinned_deployment == dp2.id
    assert Counter(ledger_lines(shared.ledger, inv)) == {"reserve": 1, "charge": 1, "ship": 7}


async def test_cancel_while_paused_resumes_and_the_handler_sees_the_cancellation(
    tmp_path: Path, shared: Shared
) -> None:
    env = Env(tmp_path)
    async with env.running() as p:
        await env.registry.register(shared.v1.uri)
        inv = await env.invoke("Checkout", "process", {"id": "A-3"})
        await env.wait_status(inv, Status.PAUSED)
        done = p.wait_for_completion(inv)
        reply = await env.cancel(inv)
        assert reply.code == 202
        with anyio.fail_after(10):
            result = await done
        view = await env.view(inv)
        kinds = await env.journal_kinds(inv)
    assert result.failure is not None
    assert (result.failure.code, result.failure.message) == (409, "canceled")
    assert view.status is Status.COMPLETED and view.attempt == 4
    assert kinds[:4] == ["input", "run:reserve", "run:charge", "cancel"]
    # The handler compensated what it had done, once; ship did not run again after the cancel.
    steps = ledger_lines(shared.ledger, inv)
    assert Counter(steps) == {"reserve": 1, "charge": 1, "ship": 3, "refund": 1, "release": 1}
    assert steps[-2:] == ["refund", "release"]


async def test_journal_mismatch_after_a_code_change_retries_then_pauses_naming_the_index(
    tmp_path: Path,
) -> None:
    clock = now_clock()
    env = Env(tmp_path, clock)
    policy = RetryPolicy(initial_interval_ms=1000, max_attempts=3)
    async with env.running():
        async with deployment(CHECKOUT, "--version", "v1", workdir=tmp_path) as v1:
            await env.registry.register(v1.uri)
            inv = await env.invoke("Checkout", "process", {"id": "A-4"}, policy)
            view = await env.wait_status(inv, Status.BACKING_OFF)
            assert await env.journal_kinds(inv) == ["input", "run:reserve", "run:charge"]
        # The code changes under the invocation: v3 renames the charge step, same URI.
        async with deployment(CHECKOUT, "--version", "v3", workdir=tmp_path, port=v1.port):
            for retry in (2, 3):
                assert view.next_retry_at is not None
                clock.set(view.next_retry_at)

                view = await env.wait_view(
                    inv,
                    lambda v, n=retry: (  # type: ignore[misc]
                        v.retry_count == n and v.status in (Status.BACKING_OFF, Status.PAUSED)
                    ),
                    f"failure {retry}",
                )
    assert view.status is Status.PAUSED and view.attempt == 3
    assert view.last_failure is not None
    assert "journal mismatch at index 2" in view.last_failure.message
    assert "charge-card" in view.last_failure.message
    assert view.last_failure.related_index == 2
