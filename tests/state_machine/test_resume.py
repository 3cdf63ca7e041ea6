"""Resume (SPEC §3.4): one test per cell of the resume row, plus deployments and retry budget."""

from __future__ import annotations

from processor.actions import AbortAttempt, CancelTimer, StartAttempt
from processor.commands import TimerKey, TimerKind
from processor.retry import RetryPolicy
from processor.status import Status
from tests.builders import (
    DP_1,
    DP_2,
    INV,
    TestEnv,
    attempt_failed,
    pause,
    pinned,
    resume,
    retry_timer_fired,
    sleep_timer_fired,
)
from tests.matchers import (
    has_action,
    no_action,
    reply_body,
    reply_code,
    reply_message,
    started_attempts,
)


def test_resume_unknown_invocation_answers_404() -> None:
    actions = TestEnv().apply(resume())
    assert reply_code(actions) == 404
    assert INV in reply_message(actions)


def test_resume_scheduled_invocation_answers_425() -> None:
    env = TestEnv()
    before = env.given(Status.SCHEDULED)
    actions = env.apply(resume())
    assert reply_code(actions) == 425
    assert "has not started yet" in reply_message(actions)
    assert env.view() == before


def test_resume_running_invocation_answers_200_and_changes_nothing() -> None:
    env = TestEnv()
    before = env.given(Status.RUNNING)
    actions = env.apply(resume())
    assert reply_code(actions) == 200
    assert reply_body(actions) == {"status": "running", "attempt": 1, "already_running": True}
    assert no_action(actions, StartAttempt)
    assert env.view() == before


def test_resume_running_invocation_on_another_deployment_answers_409() -> None:
    env = TestEnv()
    env.given(Status.RUNNING)
    env.apply(pinned(deployment=DP_1))
    before = env.view()
    actions = env.apply(resume(deployment=DP_2))
    assert reply_code(actions) == 409
    assert DP_1 in reply_message(actions) and DP_2 in reply_message(actions)
    assert env.view() == before


def test_resume_running_invocation_on_its_own_deployment_answers_200() -> None:
    env = TestEnv()
    env.given(Status.RUNNING)
    env.apply(pinned(deployment=DP_1))
    assert reply_code(env.apply(resume(deployment=DP_1))) == 200


def test_resume_running_unpinned_invocation_restarts_its_attempt_on_the_deployment() -> None:
    env = TestEnv()
    before = env.given(Status.RUNNING)
    assert before.pinned_deployment is None
    actions = env.apply(resume(deployment=DP_2))
    assert reply_code(actions) == 200
    assert reply_body(actions) == {"status": "running", "attempt": 2}
    assert has_action(actions, AbortAttempt, invocation_id=INV, attempt=1)
    assert has_action(actions, StartAttempt, attempt=2, deployment_id=DP_2)
    view = env.view()
    assert (view.status, view.attempt, view.retry_count) == (Status.RUNNING, 2, 0)
    assert view.pinned_deployment == DP_2
    # The aborted attempt reports late where it ran: stale, the pin stays true.
    env.apply(pinned(attempt=1, deployment=DP_1))
    env.apply(pinned(attempt=2, deployment=DP_2))
    view = env.view()
    assert (view.pinned_deployment, view.last_attempt_deployment) == (DP_2, DP_2)


def test_resume_backing_off_invocation_retries_now_and_cancels_retry_timer() -> None:
    env = TestEnv()
    env.given(Status.BACKING_OFF)
    actions = env.apply(resume())
    view = env.view()
    assert view.status is Status.RUNNING
    assert (view.attempt, view.retry_count, view.next_retry_at) == (2, 0, None)
    assert view.running_at == env.now
    assert has_action(actions, CancelTimer, timer=TimerKey(TimerKind.RETRY, 1))
    assert has_action(actions, StartAttempt, invocation_id=INV, attempt=2)
    assert env.timers() == {}
    assert reply_code(actions) == 200


def test_resume_suspended_invocation_starts_new_attempt() -> None:
    env = TestEnv()
    env.given(Status.SUSPENDED)
    actions = env.apply(resume())
    view = env.view()
    assert view.status is Status.RUNNING
    assert view.awaiting == ()
    assert started_attempts(actions) == [2]
    assert reply_code(actions) == 200
    assert TimerKey(TimerKind.SLEEP, 1) in env.timers()  # the sleep is still pending


def test_resume_paused_invocation_starts_new_attempt_on_pinned_deployment() -> None:
    env = TestEnv()
    env.given(Status.RUNNING)
    env.apply(pinned(deployment=DP_1))
    env.apply(pause())
    actions = env.apply(resume())
    assert env.status() is Status.RUNNING
    assert has_action(actions, StartAttempt, attempt=2, deployment_id=DP_1)
    assert no_action(actions, AbortAttempt)
    assert reply_body(actions) == {"status": "running", "attempt": 2}
    resumed = env.events()[-1]
    assert resumed.kind == "resumed"
    assert resumed.data == {"from_deployment": DP_1, "to_deployment": DP_1}


def test_resume_completed_invocation_answers_409() -> None:
    env = TestEnv()
    env.given(Status.COMPLETED)
    actions = env.apply(resume())
    assert reply_code(actions) == 409
    assert "is completed" in reply_message(actions)


def test_resume_with_deployment_repins_and_records_the_change() -> None:
    env = TestEnv()
    env.given(Status.RUNNING)
    env.apply(pinned(deployment=DP_1))
    env.apply(pause())
    new_policy = RetryPolicy(max_attempts=5)
    actions = env.apply(resume(deployment=DP_2, policy=new_policy))
    view = env.view()
    assert view.pinned_deployment == DP_2
    assert view.retry_policy == new_policy
    assert has_action(actions, StartAttempt, attempt=2, deployment_id=DP_2)
    assert env.events()[-1].data == {"from_deployment": DP_1, "to_deployment": DP_2}


def test_resume_with_deployment_pins_an_unpinned_invocation() -> None:
    env = TestEnv()
    env.given(Status.PAUSED)
    assert env.view().pinned_deployment is None
    actions = env.apply(resume(deployment=DP_2))
    assert env.view().pinned_deployment == DP_2
    assert has_action(actions, StartAttempt, deployment_id=DP_2)


def test_resume_gives_a_fresh_retry_budget() -> None:
    env = TestEnv()
    env.given(Status.RUNNING, policy=RetryPolicy(max_attempts=2))
    env.apply(attempt_failed(attempt=1))
    env.apply(sleep_timer_fired(completion_id=99))  # unrelated noise: ignored
    env.apply(retry_timer_fired(attempt=1))
    env.apply(attempt_failed(attempt=2))
    assert env.status() is Status.PAUSED
    assert env.view().retry_count == 2
    env.apply(resume())
    assert env.view().retry_count == 0
    env.apply(attempt_failed(attempt=3))
    assert env.status() is Status.BACKING_OFF  # one failure no longer exhausts the budget


def test_resume_without_request_id_replies_nothing() -> None:
    env = TestEnv()
    env.given(Status.PAUSED)
    actions = env.apply(resume(request_id=None))
    assert [type(a) for a in actions] == [StartAttempt]
