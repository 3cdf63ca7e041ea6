"""Attempt effects (SPEC §4): pinned, entry, suspended, completed, and stale effects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from processor.actions import AbortAttempt, CancelTimer, NotifyCompletion, ScheduleTimer
from processor.commands import Command, TimerKey, TimerKind
from processor.status import Failure, Result, Status
from tests.builders import (
    DP_1,
    DP_2,
    INV,
    TestEnv,
    attempt_failed,
    completed,
    entry,
    pause,
    pinned,
    resume,
    retry_timer_fired,
    run_entry,
    sleep_entry,
    sleep_timer_fired,
    suspended,
)
from tests.matchers import has_action, no_action, started_attempts

EFFECTS: dict[str, Callable[[int], Command]] = {
    "pinned": lambda attempt: pinned(attempt=attempt),
    "entry": lambda attempt: run_entry(attempt=attempt, index=1),
    "suspended": lambda attempt: suspended(attempt=attempt),
    "completed": lambda attempt: completed(attempt=attempt),
    "failed": lambda attempt: attempt_failed(attempt=attempt),
}


# --- stale effects: every status but running, and running with another attempt number ---


@pytest.mark.parametrize("effect", list(EFFECTS))
@pytest.mark.parametrize("status", [None, *[s for s in Status if s is not Status.RUNNING]])
def test_effect_on_invocation_that_is_not_running_is_ignored_and_aborted(
    status: Status | None, effect: str
) -> None:
    env = TestEnv()
    before = env.given(status) if status is not None else None
    actions = env.apply(EFFECTS[effect](1))
    assert actions == [AbortAttempt(INV, 1)]
    assert env.last is not None and not env.last.changed and not env.last.journal
    assert env.views.get(INV) == before


@pytest.mark.parametrize("effect", list(EFFECTS))
def test_effect_of_an_older_attempt_of_running_invocation_is_ignored_and_aborted(
    effect: str,
) -> None:
    env = TestEnv()
    env.given(Status.PAUSED)
    env.apply(resume())  # attempt 2 runs now
    before = env.view()
    actions = env.apply(EFFECTS[effect](1))
    assert actions == [AbortAttempt(INV, 1)]  # only the stale attempt, never the current one
    assert env.view() == before


# --- pinned ---


def test_pinned_pins_the_first_deployment_and_records_the_last_one() -> None:
    env = TestEnv()
    env.given(Status.RUNNING)
    assert env.apply(pinned(deployment=DP_1)) == []
    assert (env.view().pinned_deployment, env.view().last_attempt_deployment) == (DP_1, DP_1)
    env.apply(pinned(deployment=DP_1))
    assert env.last is not None and not env.last.changed  # nothing new: nothing to write
    env.apply(pause())
    env.apply(resume())
    env.apply(pinned(attempt=2, deployment=DP_2))
    assert (env.view().pinned_deployment, env.view().last_attempt_deployment) == (DP_1, DP_2)


# --- entry ---


def test_entry_is_appended_and_resets_retry_count() -> None:
    env = TestEnv()
    env.given(Status.BACKING_OFF)
    env.apply(retry_timer_fired(attempt=1))
    assert env.view().retry_count == 1
    actions = env.apply(run_entry(attempt=2, index=1, name="fetch"))
    assert actions == []
    assert env.journal()[1] == {"kind": "run", "name": "fetch", "value": b"1"}
    assert (env.view().journal_length, env.view().retry_count) == (2, 0)
    assert env.last is not None and env.last.journal[0].appended_at == env.now


def test_sleep_entry_stores_and_schedules_a_sleep_timer() -> None:
    env = TestEnv()
    env.given(Status.RUNNING)
    wake = env.now + 5000
    actions = env.apply(sleep_entry(completion_id=9, wake_up_at=wake))
    assert env.view().sleeping == {9}
    assert env.timers() == {TimerKey(TimerKind.SLEEP, 9): wake}
    assert has_action(actions, ScheduleTimer, timer=TimerKey(TimerKind.SLEEP, 9), fire_at=wake)


def test_unknown_entry_kinds_are_stored_as_data() -> None:
    env = TestEnv()
    env.given(Status.RUNNING)
    env.apply(entry(index=1, kind="call", target="Other/handler"))
    assert env.journal()[1] == {"kind": "call", "target": "Other/handler"}
    assert env.status() is Status.RUNNING


@pytest.mark.parametrize("index", [0, 2, 5])
def test_journal_gap_or_duplicate_index_fails_the_attempt(index: int) -> None:
    env = TestEnv()
    env.given(Status.RUNNING)
    actions = env.apply(run_entry(index=index))
    view = env.view()
    assert view.status is Status.BACKING_OFF
    assert view.journal_length == 1 and len(env.journal()) == 1
    assert view.last_failure is not None
    assert view.last_failure.code == 571
    assert f"expected 1, got {index}" in view.last_failure.message
    assert view.last_failure.related_index == index
    assert has_action(actions, ScheduleTimer, timer=TimerKey(TimerKind.RETRY, 1))


@pytest.mark.parametrize("kind", ["input", "output", "completion", "cancel"])
def test_entry_of_a_kind_only_the_processor_writes_fails_the_attempt(kind: str) -> None:
    env = TestEnv()
    env.given(Status.RUNNING)
    env.apply(entry(index=1, kind=kind, completion_id=1))
    assert env.status() is Status.BACKING_OFF
    failure = env.view().last_failure
    assert failure is not None and kind in failure.message
    assert len(env.journal()) == 1


@pytest.mark.parametrize(
    "fields",
    [{"completion_id": "1", "wake_up_at": 5}, {"completion_id": 1}, {"wake_up_at": True}],
)
def test_malformed_sleep_entry_fails_the_attempt(fields: dict[str, Any]) -> None:
    env = TestEnv()
    env.given(Status.RUNNING)
    env.apply(entry(index=1, kind="sleep", **fields))
    assert env.status() is Status.BACKING_OFF
    assert env.timers() == {TimerKey(TimerKind.RETRY, 1): env.view().next_retry_at}


def test_sleep_entry_reusing_a_completion_id_fails_the_attempt() -> None:
    env = TestEnv()
    env.given(Status.RUNNING)
    env.apply(sleep_entry(index=1, completion_id=1))
    env.apply(sleep_entry(index=2, completion_id=1))
    assert env.status() is Status.BACKING_OFF
    assert env.view().journal_length == 2


# --- suspended ---


def test_suspended_awaiting_a_pending_sleep_suspends() -> None:
    env = TestEnv()
    env.given(Status.RUNNING)
    env.apply(sleep_entry(completion_id=1))
    actions = env.apply(suspended(awaiting=(1,)))
    view = env.view()
    assert (view.status, view.awaiting, view.modified_at) == (Status.SUSPENDED, (1,), env.now)
    assert actions == []  # the attempt ended by itself: nothing to abort


def test_suspended_awaiting_a_completion_already_stored_starts_next_attempt() -> None:
    env = TestEnv()
    env.given(Status.RUNNING)
    env.apply(sleep_entry(completion_id=1))
    env.apply(sleep_timer_fired(completion_id=1))  # completes while the attempt still runs
    actions = env.apply(suspended(awaiting=(1,)))
    assert env.status() is Status.RUNNING
    assert started_attempts(actions) == [2]
    assert env.view().awaiting == ()


def test_suspended_awaiting_nothing_fails_the_attempt() -> None:
    env = TestEnv()
    env.given(Status.RUNNING)
    env.apply(suspended(awaiting=()))
    assert env.status() is Status.BACKING_OFF


# --- completed ---


def test_completed_with_value_completes_and_notifies_callers() -> None:
    env = TestEnv()
    env.given(Status.RUNNING)
    actions = env.apply(completed(value=b'"Hello"'))
    view = env.view()
    result = Result(value=b'"Hello"')
    assert (view.status, view.result, view.completed_at) == (Status.COMPLETED, result, env.now)
    assert env.journal()[-1] == {"kind": "output", "value": b'"Hello"'}
    assert has_action(actions, NotifyCompletion, invocation_id=INV, result=result)
    assert no_action(actions, CancelTimer)  # no timers to forget
    assert (env.events()[-1].kind, env.events()[-1].data) == ("completed", {"outcome": "success"})


def test_completed_with_terminal_failure_stores_the_failure() -> None:
    env = TestEnv()
    env.given(Status.RUNNING)
    env.apply(completed(failure=Failure(400, "bad name")))
    assert env.view().result == Result(failure=Failure(400, "bad name"))
    assert env.journal()[-1] == {"kind": "output", "failure": {"code": 400, "message": "bad name"}}


def test_completed_deletes_pending_sleep_timers() -> None:
    env = TestEnv()
    env.given(Status.RUNNING)
    env.apply(sleep_entry(completion_id=1))
    actions = env.apply(completed())
    assert has_action(actions, CancelTimer, timer=None)
    assert env.timers() == {} and env.view().sleeping == frozenset()


def test_a_whole_invocation_with_a_sleep_replays_its_journal() -> None:
    env = TestEnv()
    commands: list[Command] = [
        run_entry(attempt=1, index=1),
        sleep_entry(attempt=1, index=2, completion_id=1),
        suspended(attempt=1, awaiting=(1,)),
        sleep_timer_fired(completion_id=1),
        completed(attempt=2),
    ]
    env.given(Status.RUNNING)
    env.apply_all(*commands)
    assert env.status() is Status.COMPLETED
    assert [e["kind"] for e in env.journal()] == [
        "input",
        "run",
        "sleep",
        "completion",
        "output",
    ]
    assert env.event_kinds() == ["created", "completed"]
