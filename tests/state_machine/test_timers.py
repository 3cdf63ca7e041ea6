"""Timers firing (SPEC §3.1 rows timer-fired: start, retry(n), sleep(c)), on time and late."""

from __future__ import annotations

import pytest

from processor.actions import StartAttempt
from processor.commands import TimerFired, TimerKey, TimerKind
from processor.status import Status
from tests.builders import (
    TestEnv,
    attempt_failed,
    pause,
    retry_timer_fired,
    sleep_entry,
    sleep_timer_fired,
    start_timer_fired,
    suspended,
)
from tests.matchers import has_action, no_action, started_attempts

ALL = list(Status)


def _ignored(env: TestEnv, command: TimerFired) -> None:
    before = env.views.get(command.invocation_id)
    timers = env.timers()
    actions = env.apply(command)
    assert actions == []
    assert env.last is not None and not env.last.changed
    assert not env.last.journal and not env.last.timers_deleted
    assert env.views.get(command.invocation_id) == before
    assert env.timers() == timers


def test_start_timer_starts_scheduled_invocation() -> None:
    env = TestEnv()
    env.given(Status.SCHEDULED)
    actions = env.apply(start_timer_fired())
    view = env.view()
    assert view.status is Status.RUNNING
    assert (view.attempt, view.running_at, view.modified_at) == (1, env.now, env.now)
    assert started_attempts(actions) == [1]
    assert env.timers() == {}


@pytest.mark.parametrize("status", [None, *[s for s in ALL if s is not Status.SCHEDULED]])
def test_start_timer_is_ignored_unless_scheduled(status: Status | None) -> None:
    env = TestEnv()
    if status is not None:
        env.given(status)
    _ignored(env, start_timer_fired())


def test_retry_timer_starts_next_attempt_of_backing_off_invocation() -> None:
    env = TestEnv()
    env.given(Status.BACKING_OFF)
    actions = env.apply(retry_timer_fired(attempt=1))
    view = env.view()
    assert view.status is Status.RUNNING
    assert (view.attempt, view.next_retry_at, view.retry_count) == (2, None, 1)
    assert has_action(actions, StartAttempt, attempt=2)
    assert env.timers() == {}


def test_retry_timer_of_an_older_attempt_is_ignored_while_backing_off() -> None:
    env = TestEnv()
    env.given(Status.BACKING_OFF)
    _ignored(env, retry_timer_fired(attempt=0))
    _ignored(env, retry_timer_fired(attempt=7))


@pytest.mark.parametrize("status", [None, *[s for s in ALL if s is not Status.BACKING_OFF]])
def test_retry_timer_is_ignored_unless_backing_off(status: Status | None) -> None:
    env = TestEnv()
    if status is not None:
        env.given(status)
    _ignored(env, retry_timer_fired(attempt=1))


def test_sleep_timer_appends_completion_while_running() -> None:
    env = TestEnv()
    env.given(Status.RUNNING)
    env.apply(sleep_entry(completion_id=3, wake_up_at=env.now + 1000))
    assert env.timers() == {TimerKey(TimerKind.SLEEP, 3): env.now + 999}
    actions = env.apply(sleep_timer_fired(completion_id=3))
    view = env.view()
    assert view.status is Status.RUNNING
    assert env.journal()[-1] == {"kind": "completion", "completion_id": 3}
    assert (view.journal_length, view.completed_ids, view.sleeping) == (
        3,
        frozenset({3}),
        frozenset(),
    )
    assert no_action(actions, StartAttempt)
    assert env.timers() == {}


def test_sleep_timer_appends_completion_while_backing_off_and_keeps_retry_timer() -> None:
    env = TestEnv()
    env.given(Status.RUNNING)
    env.apply(sleep_entry(completion_id=3))

    env.apply(attempt_failed(attempt=1))
    actions = env.apply(sleep_timer_fired(completion_id=3))
    assert env.status() is Status.BACKING_OFF
    assert env.journal()[-1] == {"kind": "completion", "completion_id": 3}
    assert no_action(actions, StartAttempt)
    assert list(env.timers()) == [TimerKey(TimerKind.RETRY, 1)]


def test_sleep_timer_wakes_suspended_invocation_that_awaits_it() -> None:
    env = TestEnv()
    env.given(Status.SUSPENDED)
    actions = env.apply(sleep_timer_fired(completion_id=1))
    view = env.view()
    assert view.status is Status.RUNNING
    assert (view.attempt, view.awaiting, view.running_at) == (2, (), env.now)
    assert started_attempts(actions) == [2]
    assert env.journal()[-1] == {"kind": "completion", "completion_id": 1}


def test_sleep_timer_not_awaited_keeps_invocation_suspended() -> None:
    env = TestEnv()
    env.given(Status.RUNNING)
    env.apply_all(sleep_entry(index=1, completion_id=1), sleep_entry(index=2, completion_id=2))
    env.apply(suspended(awaiting=(2,)))
    actions = env.apply(sleep_timer_fired(completion_id=1))
    assert env.status() is Status.SUSPENDED
    assert env.view().completed_ids == {1}
    assert no_action(actions, StartAttempt)


def test_sleep_timer_while_paused_stores_completion_and_stays_paused() -> None:
    env = TestEnv()
    env.given(Status.RUNNING)
    env.apply(sleep_entry(completion_id=5))

    env.apply(pause())
    actions = env.apply(sleep_timer_fired(completion_id=5))
    assert env.status() is Status.PAUSED
    assert no_action(actions, StartAttempt)
    assert 5 in env.view().completed_ids


@pytest.mark.parametrize("status", [None, Status.SCHEDULED, Status.COMPLETED])
def test_sleep_timer_is_ignored_when_nothing_sleeps(status: Status | None) -> None:
    env = TestEnv()
    if status is not None:
        env.given(status)
    _ignored(env, sleep_timer_fired(completion_id=1))


def test_sleep_timer_firing_twice_appends_one_completion() -> None:
    env = TestEnv()
    env.given(Status.RUNNING)
    env.apply(sleep_entry(completion_id=1))
    env.apply(sleep_timer_fired(completion_id=1))
    _ignored(env, sleep_timer_fired(completion_id=1))
    assert env.journal().count({"kind": "completion", "completion_id": 1}) == 1


def test_sleep_timer_of_unknown_completion_is_ignored() -> None:
    env = TestEnv()
    env.given(Status.SUSPENDED)
    _ignored(env, sleep_timer_fired(completion_id=42))
