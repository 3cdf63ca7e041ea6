"""Invoke: creating invocations, and repeated invokes of the same id (SPEC §3.1 rows 1-2)."""

from __future__ import annotations

import pytest

from processor.actions import NotifyCompletion, ScheduleTimer, StartAttempt
from processor.commands import TimerKey, TimerKind
from processor.status import Failure, Status
from tests.builders import INV, POLICY, TestEnv, attempt_failed, invoke, kill
from tests.matchers import has_action, no_action, reply_body, reply_code, started_attempts


def test_invoke_new_id_creates_running_invocation_and_starts_attempt_1() -> None:
    env = TestEnv()
    actions = env.apply(invoke(headers={"x-trace": "1"}, idempotency_key="k1"))
    view = env.view()
    assert view.status is Status.RUNNING
    assert (view.attempt, view.running_at, view.created_at) == (1, env.now, env.now)
    assert view.modified_at == env.now
    assert view.journal_length == 1
    assert view.idempotency_key == "k1"
    assert view.retry_policy == POLICY
    assert has_action(
        actions, StartAttempt, invocation_id=INV, attempt=1, service="Greeter", deployment_id=None
    )
    assert env.journal() == [{"kind": "input", "value": b'"Ada"', "headers": {"x-trace": "1"}}]
    assert env.event_kinds() == ["created"]
    assert reply_code(actions) == 200
    assert reply_body(actions) == {"status": "Accepted", "invocation_id": INV}


def test_invoke_with_future_start_is_scheduled_with_a_start_timer() -> None:
    env = TestEnv()
    start = env.now + 10_000
    actions = env.apply(invoke(execute_at=start))
    view = env.view()
    assert view.status is Status.SCHEDULED
    assert (view.execute_at, view.attempt, view.running_at) == (start, 0, None)
    assert env.timers() == {TimerKey(TimerKind.START, 0): start}
    assert has_action(actions, ScheduleTimer, timer=TimerKey(TimerKind.START, 0), fire_at=start)
    assert no_action(actions, StartAttempt)
    assert reply_body(actions)["status"] == "Accepted"


def test_invoke_with_start_time_already_past_runs_now() -> None:
    env = TestEnv()
    actions = env.apply(invoke(execute_at=env.now - 5))
    assert env.status() is Status.RUNNING
    assert started_attempts(actions) == [1]
    assert env.timers() == {}


def test_invoke_without_request_id_replies_nothing() -> None:
    env = TestEnv()
    actions = env.apply(invoke(request_id=None))
    assert [type(a) for a in actions] == [StartAttempt]


@pytest.mark.parametrize(
    "status",
    [Status.SCHEDULED, Status.RUNNING, Status.BACKING_OFF, Status.SUSPENDED, Status.PAUSED],
)
def test_invoke_existing_invocation_attaches_caller_without_change(status: Status) -> None:
    env = TestEnv()
    before = env.given(status)
    actions = env.apply(invoke())
    assert env.last is not None and not env.last.changed
    assert env.view() == before
    assert reply_code(actions) == 200
    assert reply_body(actions) == {"status": "PreviouslyAccepted", "invocation_id": INV}
    assert no_action(actions, StartAttempt)


def test_invoke_completed_invocation_answers_stored_result() -> None:
    env = TestEnv()
    env.given(Status.COMPLETED)
    actions = env.apply(invoke())
    assert reply_body(actions) == {
        "status": "PreviouslyAccepted",
        "invocation_id": INV,
        "result": {"value": b'"Hello Ada"'},
    }
    assert no_action(actions, StartAttempt)
    assert no_action(actions, NotifyCompletion)


def test_invoke_killed_invocation_answers_stored_failure() -> None:
    env = TestEnv()
    env.given(Status.RUNNING)
    env.apply(kill())
    actions = env.apply(invoke())
    assert reply_body(actions)["result"] == {"failure": {"code": 409, "message": "killed"}}


def test_created_event_is_first_and_failures_follow_it() -> None:
    env = TestEnv()
    env.given(Status.RUNNING)
    env.apply(attempt_failed(code=503, message="unavailable"))
    assert [e.seq for e in env.events()] == [0, 1]
    assert env.events()[0].data["target"] == "Greeter/greet"
    assert env.view().last_failure == Failure(503, "unavailable", attempt=1)
