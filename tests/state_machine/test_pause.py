"""Pause (SPEC §3.2): one test per cell of the pause row, plus what a pause keeps and stops."""

from __future__ import annotations

from processor.actions import AbortAttempt, CancelTimer, StartAttempt
from processor.commands import TimerKey, TimerKind
from processor.status import Failure, Status
from tests.builders import (
    INV,
    TestEnv,
    pause,
    retry_timer_fired,
    run_entry,
    sleep_entry,
    sleep_timer_fired,
)
from tests.matchers import has_action, no_action, reply_body, reply_code, reply_message


def test_pause_unknown_invocation_answers_404() -> None:
    env = TestEnv()
    actions = env.apply(pause())
    assert reply_code(actions) == 404
    assert INV in reply_message(actions)
    assert env.status() is None


def test_pause_scheduled_invocation_answers_409() -> None:
    env = TestEnv()
    before = env.given(Status.SCHEDULED)
    actions = env.apply(pause())
    assert reply_code(actions) == 409
    assert reply_message(actions) == (
        f"invocation {INV} is scheduled; only running or backing-off invocations can be paused"
    )
    assert env.view() == before


def test_pause_running_invocation_aborts_attempt() -> None:
    env = TestEnv()
    env.given(Status.RUNNING)
    actions = env.apply(pause())
    view = env.view()
    assert view.status is Status.PAUSED
    assert view.modified_at == env.now
    assert view.last_failure is None
    assert has_action(actions, AbortAttempt, invocation_id=INV, attempt=1)
    assert reply_code(actions) == 202
    assert reply_body(actions) == {"status": "paused"}
    assert env.events()[-1].kind == "paused"
    assert env.events()[-1].data == {"reason": "manual"}


def test_pause_backing_off_invocation_cancels_retry_timer() -> None:
    env = TestEnv()
    env.given(Status.BACKING_OFF)
    assert TimerKey(TimerKind.RETRY, 1) in env.timers()
    actions = env.apply(pause())
    view = env.view()
    assert view.status is Status.PAUSED
    assert view.next_retry_at is None
    assert view.last_failure == Failure(500, "boom", attempt=1)  # the user still sees why
    assert view.retry_count == 1
    assert has_action(actions, CancelTimer, invocation_id=INV, timer=TimerKey(TimerKind.RETRY, 1))
    assert no_action(actions, AbortAttempt)
    assert env.timers() == {}
    assert reply_code(actions) == 202


def test_pause_suspended_invocation_answers_409() -> None:
    env = TestEnv()
    before = env.given(Status.SUSPENDED)
    actions = env.apply(pause())
    assert reply_code(actions) == 409
    assert "is suspended" in reply_message(actions)
    assert env.view() == before


def test_pause_paused_invocation_answers_200_already_paused() -> None:
    env = TestEnv()
    env.given(Status.PAUSED)
    before = env.view()
    actions = env.apply(pause())
    assert reply_code(actions) == 200
    assert reply_body(actions) == {"status": "paused"}
    assert env.view() == before
    assert env.event_kinds().count("paused") == 1


def test_pause_completed_invocation_answers_409() -> None:
    env = TestEnv()
    env.given(Status.COMPLETED)
    actions = env.apply(pause())
    assert reply_code(actions) == 409
    assert "is completed" in reply_message(actions)


def test_late_retry_timer_after_pause_is_ignored() -> None:
    env = TestEnv()
    env.given(Status.BACKING_OFF)
    env.apply(pause())
    before = env.view()
    actions = env.apply(retry_timer_fired(attempt=1))
    assert actions == []
    assert env.view() == before


def test_effects_of_paused_attempt_are_ignored() -> None:
    env = TestEnv()
    env.given(Status.RUNNING)
    env.apply(pause())
    before = env.view()
    actions = env.apply(run_entry(attempt=1, index=1))
    assert actions == [AbortAttempt(INV, 1)]
    assert env.view() == before
    assert len(env.journal()) == 1


def test_sleep_completing_while_paused_is_stored_but_stays_paused() -> None:
    env = TestEnv()
    env.given(Status.RUNNING)
    env.apply(sleep_entry(completion_id=4))
    env.apply(pause())
    actions = env.apply(sleep_timer_fired(completion_id=4))
    assert no_action(actions, StartAttempt)
    assert env.status() is Status.PAUSED
    assert env.journal()[-1] == {"kind": "completion", "completion_id": 4}
    assert 4 in env.view().completed_ids
    assert env.timers() == {}
