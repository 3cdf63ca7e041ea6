"""A bug inside one attempt is recorded as that attempt's failure; the partition keeps running."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from processor.leader.invoker import Invoker
from processor.retry import RetryPolicy
from processor.status import Status

from .conftest import Shared
from .e2e_support import Env


async def test_an_exception_inside_an_attempt_fails_that_attempt_and_the_partition_keeps_running(
    tmp_path: Path, shared: Shared, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_run_attempt = Invoker.run_attempt
    crashes = 0

    async def crash_once(self: Invoker, request: Any, emit: Any) -> None:
        nonlocal crashes
        if crashes == 0:
            crashes += 1
            raise RuntimeError("bug in the invoker \udcff")  # with a lone surrogate
        await real_run_attempt(self, request, emit)

    monkeypatch.setattr(Invoker, "run_attempt", crash_once)
    env = Env(tmp_path)
    async with env.running() as p:
        await env.registry.register(shared.greeter.uri)
        policy = RetryPolicy(initial_interval_ms=10, max_interval_ms=10)
        inv = await env.invoke("Greeter", "greet", "Ada", policy=policy)
        view = await env.wait_status(inv, Status.COMPLETED)
        assert view.result is not None and view.result.value == b'"Hello Ada!"'
        assert view.attempt == 2
        events = await p.get_events(inv)
        errors = [e for e in events if e.kind == "transient-error"]
        assert "internal error while running attempt 1" in errors[0].data["message"]
        assert "bug in the invoker" in errors[0].data["message"]
