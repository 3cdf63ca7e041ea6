"""Determinism and purity of `apply` (SPEC §8): same inputs, same outputs; no clock, no random."""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable
from typing import Any

import pytest

from processor.commands import Command
from processor.retry import RetryPolicy
from processor.state_machine import apply
from processor.state_machine.lifecycle.common import evolve, make_evolve
from processor.state_machine.types import ApplyContext
from processor.status import Failure, InvocationView, Status
from tests import builders as b
from tests.builders import INV, INV_2, TestEnv, a_view

POLICY = RetryPolicy(initial_interval_ms=100, max_attempts=3)


def _script() -> list[Command]:
    """A history touching every row of the table, for two invocations."""
    return [
        b.invoke(INV, policy=POLICY),
        b.invoke(INV_2, execute_at=b.T0 + 50),
        b.pinned(INV, 1, b.DP_1),
        b.run_entry(INV, 1, 1),
        b.sleep_entry(INV, 1, 2, completion_id=1, wake_up_at=b.T0 + 40),
        b.suspended(INV, 1, (1,)),
        b.start_timer_fired(INV_2),
        b.attempt_failed(INV_2, 1, message="down"),
        b.attempt_failed(INV_2, 1, message="down"),  # duplicate: stale now
        b.retry_timer_fired(INV_2, 1),
        b.attempt_failed(INV_2, 2, message="down"),
        b.sleep_timer_fired(INV, 1),
        b.pause(INV),
        b.resume(INV, deployment=b.DP_2),
        b.cancel(INV_2),
        b.entry(INV, 3, 4, kind="output"),  # protocol error
        b.retry_timer_fired(INV, 3),
        b.completed(INV, 4),
        b.kill(INV_2),
        b.purge(INV),
        b.announce_leader(2),
        b.purge(INV_2),
    ]


def test_applying_the_same_log_twice_gives_the_same_views_and_actions() -> None:
    first, second = TestEnv(), TestEnv()
    actions_1 = [first.apply(c) for c in _script()]
    actions_2 = [second.apply(c) for c in _script()]
    assert actions_1 == actions_2
    assert first.views == second.views
    assert first.journals == second.journals
    assert first.event_rows == second.event_rows
    assert first.timer_rows == second.timer_rows
    assert first.status(INV) is None and first.status(INV_2) is None  # both purged in the end


def test_apply_reads_no_clock_and_no_randomness(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object) -> None:
        raise AssertionError("the state machine must not read the clock or random")

    for name in ("time", "time_ns", "monotonic", "monotonic_ns", "perf_counter"):
        monkeypatch.setattr(time, name, forbidden)
    for name in ("random", "randint", "randrange", "choice", "getrandbits"):
        monkeypatch.setattr(random, name, forbidden)
    env = TestEnv()
    for command in _script():
        env.apply(command)


def test_same_view_and_command_give_equal_transitions() -> None:
    view = a_view(Status.RUNNING, retry_policy=POLICY)
    command = b.attempt_failed(attempt=1, message="flaky")
    ctx = ApplyContext(42, b.T0 + 7)
    assert apply(view, command, ctx) == apply(view, command, ctx)


@pytest.mark.parametrize("evolve", [evolve, make_evolve(use_twin=False)], ids=["twin", "plain"])
def test_evolve_equals_dataclasses_replace(evolve: Callable[..., InvocationView]) -> None:
    view = a_view(Status.BACKING_OFF, headers={"a": "b"})
    changes: dict[str, Any] = {
        "status": Status.PAUSED,
        "attempt": 9,
        "completed_ids": frozenset({1, 2}),
        "last_failure": Failure(500, "x"),
        "awaiting": (3,),
    }
    assert evolve(view, **changes) == dataclasses.replace(view, **changes)
    assert evolve(view) == view and evolve(view) is not view
    assert type(evolve(view)) is InvocationView
    with pytest.raises(dataclasses.FrozenInstanceError):
        evolve(view).attempt = 3  # type: ignore[misc]
    with pytest.raises(AttributeError):
        evolve(view, no_such_field=1)
