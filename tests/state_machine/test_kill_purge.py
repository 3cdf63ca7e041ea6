"""Kill (SPEC §3.5) and purge (SPEC §3.6): one test per cell of both rows."""

from __future__ import annotations

import pytest

from processor.actions import AbortAttempt, CancelTimer, NotifyCompletion, StartAttempt
from processor.status import Failure, Result, Status
from tests.builders import INV, TestEnv, completed, invoke, kill, purge
from tests.matchers import has_action, no_action, reply_body, reply_code, reply_message

KILLED = Result(failure=Failure(409, "killed"))


def test_kill_unknown_invocation_answers_404() -> None:
    actions = TestEnv().apply(kill())
    assert reply_code(actions) == 404
    assert INV in reply_message(actions)


@pytest.mark.parametrize(
    "status", [Status.SCHEDULED, Status.BACKING_OFF, Status.SUSPENDED, Status.PAUSED]
)
def test_kill_stopped_invocation_completes_it_and_deletes_its_timers(status: Status) -> None:
    env = TestEnv()
    env.given(status)
    actions = env.apply(kill())
    view = env.view()
    assert view.status is Status.COMPLETED
    assert (view.result, view.completed_at) == (KILLED, env.now)
    assert (view.sleeping, view.awaiting, view.next_retry_at) == (frozenset(), (), None)
    assert has_action(actions, CancelTimer, invocation_id=INV, timer=None)
    assert has_action(actions, NotifyCompletion, invocation_id=INV, result=KILLED)
    assert no_action(actions, AbortAttempt)
    assert env.timers() == {}
    assert reply_code(actions) == 200
    assert reply_body(actions) == {"status": "completed"}
    assert env.event_kinds()[-1] == "killed"


def test_kill_running_invocation_aborts_attempt() -> None:
    env = TestEnv()
    env.given(Status.RUNNING)
    actions = env.apply(kill())
    assert env.status() is Status.COMPLETED
    assert has_action(actions, AbortAttempt, invocation_id=INV, attempt=1)
    assert has_action(actions, NotifyCompletion, result=KILLED)
    assert no_action(actions, StartAttempt)
    assert reply_code(actions) == 200


def test_kill_completed_invocation_answers_409() -> None:
    env = TestEnv()
    before = env.given(Status.COMPLETED)
    actions = env.apply(kill())
    assert reply_code(actions) == 409
    assert "already completed" in reply_message(actions)
    assert env.view() == before


def test_purge_unknown_invocation_answers_404() -> None:
    actions = TestEnv().apply(purge())
    assert reply_code(actions) == 404


@pytest.mark.parametrize(
    "status",
    [Status.SCHEDULED, Status.RUNNING, Status.BACKING_OFF, Status.SUSPENDED, Status.PAUSED],
)
def test_purge_invocation_that_is_not_completed_answers_409(status: Status) -> None:
    env = TestEnv()
    before = env.given(status)
    actions = env.apply(purge())
    assert reply_code(actions) == 409
    assert reply_message(actions).startswith(f"invocation {INV} is {status.value}; only completed")
    assert env.view() == before


def test_purge_completed_invocation_deletes_it() -> None:
    env = TestEnv()
    env.given(Status.COMPLETED)
    actions = env.apply(purge())
    assert env.last is not None
    assert env.last.deleted and env.last.view is None
    assert env.status() is None and env.journal() == []
    assert has_action(actions, CancelTimer, invocation_id=INV, timer=None)
    assert reply_code(actions) == 200
    assert reply_body(actions) == {"status": "purged", "invocation_id": INV}


def test_purged_id_can_be_invoked_again_as_new() -> None:
    env = TestEnv()
    env.given(Status.COMPLETED)
    env.apply(purge())
    actions = env.apply(invoke())
    assert reply_body(actions)["status"] == "Accepted"
    assert env.view().attempt == 1


def test_effect_of_purged_invocation_is_stale() -> None:
    env = TestEnv()
    env.given(Status.COMPLETED)
    env.apply(purge())
    actions = env.apply(completed(attempt=1))
    assert actions == [AbortAttempt(INV, 1)]
    assert env.status() is None
