"""Cancel (SPEC §3.5): one test per cell of the cancel row, plus repeated cancels."""

from __future__ import annotations

from processor.actions import AbortAttempt, CancelTimer, NotifyCompletion, StartAttempt
from processor.commands import TimerKey, TimerKind
from processor.retry import RetryPolicy
from processor.status import Failure, Result, Status
from tests.builders import INV, TestEnv, attempt_failed, cancel, sleep_timer_fired
from tests.matchers import has_action, no_action, reply_body, reply_code, reply_message

CANCEL_SIGNAL = {"kind": "cancel"}


def test_cancel_unknown_invocation_answers_404() -> None:
    actions = TestEnv().apply(cancel())
    assert reply_code(actions) == 404
    assert INV in reply_message(actions)


def test_cancel_scheduled_invocation_completes_it_as_canceled() -> None:
    env = TestEnv()
    env.given(Status.SCHEDULED)
    actions = env.apply(cancel())
    view = env.view()
    canceled = Result(failure=Failure(409, "canceled"))
    assert view.status is Status.COMPLETED
    assert (view.result, view.completed_at) == (canceled, env.now)
    assert has_action(actions, CancelTimer, timer=TimerKey(TimerKind.START, 0))
    assert has_action(actions, NotifyCompletion, invocation_id=INV, result=canceled)
    assert no_action(actions, StartAttempt)
    assert env.timers() == {}
    assert reply_code(actions) == 200
    assert env.event_kinds()[-2:] == ["cancel-requested", "completed"]
    assert env.events()[-1].data == {
        "outcome": "failure",
        "failure": {"code": 409, "message": "canceled"},
        "reason": "canceled",
    }


def test_cancel_running_invocation_appends_signal_and_restarts_attempt() -> None:
    env = TestEnv()
    env.given(Status.RUNNING)
    actions = env.apply(cancel())
    view = env.view()
    assert view.status is Status.RUNNING
    assert view.cancel_requested
    assert env.journal()[-1] == CANCEL_SIGNAL
    assert view.journal_length == 2
    assert actions[:2] == [
        AbortAttempt(INV, 1),
        StartAttempt(INV, 2, "Greeter", "greet", None),
    ]
    assert reply_code(actions) == 202
    assert reply_body(actions) == {"status": "running", "attempt": 2}
    assert env.event_kinds()[-1] == "cancel-requested"


def test_cancel_backing_off_invocation_cancels_retry_timer_and_restarts() -> None:
    env = TestEnv()
    env.given(Status.BACKING_OFF)
    actions = env.apply(cancel())
    assert env.status() is Status.RUNNING
    assert env.journal()[-1] == CANCEL_SIGNAL
    assert has_action(actions, CancelTimer, timer=TimerKey(TimerKind.RETRY, 1))
    assert has_action(actions, StartAttempt, attempt=2)
    assert no_action(actions, AbortAttempt)
    assert env.timers() == {}
    assert env.view().next_retry_at is None
    assert reply_code(actions) == 202


def test_cancel_suspended_invocation_appends_signal_and_resumes() -> None:
    env = TestEnv()
    env.given(Status.SUSPENDED)
    actions = env.apply(cancel())
    view = env.view()
    assert view.status is Status.RUNNING
    assert view.awaiting == ()
    assert env.journal()[-1] == CANCEL_SIGNAL
    assert has_action(actions, StartAttempt, attempt=2)
    # the sleep timer stays: the handler sees the cancel first anyway
    assert TimerKey(TimerKind.SLEEP, 1) in env.timers()
    assert reply_code(actions) == 202


def test_cancel_paused_invocation_resumes_it_to_process_the_cancellation() -> None:
    env = TestEnv()
    env.given(Status.PAUSED)
    actions = env.apply(cancel())
    assert env.status() is Status.RUNNING
    assert env.journal()[-1] == CANCEL_SIGNAL
    assert has_action(actions, StartAttempt, attempt=2)
    assert reply_code(actions) == 202


def test_cancel_completed_invocation_answers_409() -> None:
    env = TestEnv()
    before = env.given(Status.COMPLETED)
    actions = env.apply(cancel())
    assert reply_code(actions) == 409
    assert "already completed" in reply_message(actions)
    assert env.view() == before


def test_repeated_cancel_of_running_invocation_appends_no_second_signal() -> None:
    env = TestEnv()
    env.given(Status.RUNNING)
    env.apply(cancel())
    before = env.view()
    actions = env.apply(cancel())
    assert reply_code(actions) == 202
    assert no_action(actions, StartAttempt) and no_action(actions, AbortAttempt)
    assert env.view() == before
    assert env.journal().count(CANCEL_SIGNAL) == 1


def test_repeated_cancel_of_paused_invocation_resumes_it_again() -> None:
    env = TestEnv()
    env.given(Status.RUNNING, policy=RetryPolicy(max_attempts=1))
    env.apply(cancel())
    env.apply(attempt_failed(attempt=2))  # the compensation fails: out of retries → paused
    assert env.status() is Status.PAUSED
    actions = env.apply(cancel())
    assert env.status() is Status.RUNNING
    assert has_action(actions, StartAttempt, attempt=3)
    assert env.journal().count(CANCEL_SIGNAL) == 1
    assert env.events()[-1].data == {"repeated": True}


def test_cancel_gives_the_compensation_a_fresh_retry_budget() -> None:
    env = TestEnv()
    env.given(Status.RUNNING, policy=RetryPolicy(max_attempts=1))
    env.apply(attempt_failed(attempt=1))
    assert env.status() is Status.PAUSED
    assert env.view().retry_count == 1
    env.apply(cancel())
    assert env.view().retry_count == 0


def test_sleep_completion_after_cancel_is_still_stored() -> None:
    env = TestEnv()
    env.given(Status.SUSPENDED)
    env.apply(cancel())
    env.apply(sleep_timer_fired(completion_id=1))
    assert env.journal()[-2:] == [CANCEL_SIGNAL, {"kind": "completion", "completion_id": 1}]
    assert env.timers() == {}
