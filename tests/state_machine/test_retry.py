"""Failed attempts, backoff and running out of retries (SPEC §3.3, §4, §5)."""

from __future__ import annotations

from processor.actions import AbortAttempt, CancelTimer, NotifyCompletion, ScheduleTimer
from processor.commands import TimerKey, TimerKind
from processor.retry import RetryPolicy
from processor.state_machine import apply
from processor.state_machine.types import ApplyContext
from processor.status import Failure, Result, Status
from tests.builders import (
    DP_1,
    INV,
    INV_2,
    TestEnv,
    a_view,
    attempt_failed,
    pause,
    resume,
    retry_timer_fired,
    run_entry,
    sleep_entry,
)
from tests.matchers import has_action, no_action

FAST = RetryPolicy(initial_interval_ms=100, exponentiation_factor=2.0, max_interval_ms=1000)


def _fail_and_retry(env: TestEnv, times: int, invocation_id: str = INV, **failure: object) -> None:
    """Let the current attempt fail and its retry fire, `times` times."""
    for _ in range(times):
        attempt = env.view(invocation_id).attempt
        env.apply(attempt_failed(invocation_id, attempt, **failure))  # type: ignore[arg-type]
        if env.status(invocation_id) is Status.BACKING_OFF:
            env.apply(retry_timer_fired(invocation_id, attempt))


def test_failed_attempt_backs_off_with_a_retry_timer() -> None:
    env = TestEnv()
    env.given(Status.RUNNING, policy=FAST)
    actions = env.apply(
        attempt_failed(code=503, message="unavailable", stacktrace="tb", deployment=DP_1)
    )
    view = env.view()
    assert view.status is Status.BACKING_OFF
    assert view.retry_count == 1
    assert view.last_failure == Failure(503, "unavailable", "tb", attempt=1)
    assert view.last_attempt_deployment == DP_1
    assert view.next_retry_at is not None
    assert 100 <= view.next_retry_at - env.now <= 130
    retry = TimerKey(TimerKind.RETRY, 1)
    assert env.timers() == {retry: view.next_retry_at}
    assert has_action(actions, ScheduleTimer, timer=retry, fire_at=view.next_retry_at)
    assert no_action(actions, AbortAttempt)  # the attempt is over already
    error = env.events()[-1]
    assert (error.kind, error.at) == ("transient-error", env.now)
    assert error.data == {
        "code": 503,
        "message": "unavailable",
        "stacktrace": "tb",
        "attempt": 1,
        "related_index": None,
        "count": 1,
    }


def test_backoff_grows_by_the_factor_with_jitter_and_is_capped() -> None:
    env = TestEnv()
    env.given(Status.RUNNING, policy=FAST)
    delays = []
    for _ in range(7):
        attempt = env.view().attempt
        env.apply(attempt_failed(attempt=attempt))
        next_retry_at = env.view().next_retry_at
        assert next_retry_at is not None
        delays.append(next_retry_at - env.now)
        env.apply(retry_timer_fired(attempt=attempt))
    for k, delay in enumerate(delays, start=1):
        base = min(100 * 2 ** (k - 1), 1000)
        assert base <= delay <= base * 1.3, (k, delay)
    assert max(delays) <= 1300


def test_backoff_jitter_is_deterministic_and_differs_per_invocation() -> None:
    def next_retry(invocation_id: str) -> int:
        env = TestEnv()
        env.given(Status.RUNNING, invocation_id, policy=RetryPolicy(initial_interval_ms=10_000))
        env.apply(attempt_failed(invocation_id))
        at = env.view(invocation_id).next_retry_at
        assert at is not None
        return at

    assert next_retry(INV) == next_retry(INV)
    assert next_retry(INV) != next_retry(INV_2)


def test_retries_running_out_pause_the_invocation_with_the_failure() -> None:
    env = TestEnv()
    env.given(Status.RUNNING, policy=RetryPolicy(initial_interval_ms=10, max_attempts=3))
    _fail_and_retry(env, 2)
    assert env.view().retry_count == 2
    actions = env.apply(attempt_failed(attempt=3, message="still broken"))
    view = env.view()
    assert view.status is Status.PAUSED
    assert view.retry_count == 3
    assert view.last_failure == Failure(500, "still broken", attempt=3)
    assert view.next_retry_at is None
    assert env.timers() == {}
    assert no_action(actions, ScheduleTimer)
    paused = env.events()[-1]
    assert paused.kind == "paused"
    assert paused.data == {
        "reason": "max-attempts",
        "failure": {"code": 500, "message": "still broken"},
    }


def test_retries_running_out_kill_the_invocation_when_the_policy_says_so() -> None:
    env = TestEnv()
    policy = RetryPolicy(initial_interval_ms=10, max_attempts=2, on_max_attempts="kill")
    env.given(Status.RUNNING, policy=policy)
    env.apply(sleep_entry(completion_id=1))
    _fail_and_retry(env, 1)
    actions = env.apply(attempt_failed(attempt=2, code=502, message="bad gateway"))
    view = env.view()
    result = Result(failure=Failure(502, "bad gateway"))
    assert (view.status, view.result, view.completed_at) == (Status.COMPLETED, result, env.now)
    assert has_action(actions, NotifyCompletion, invocation_id=INV, result=result)
    assert has_action(actions, CancelTimer, timer=None)
    assert env.timers() == {}  # the sleep timer is gone too
    assert env.event_kinds()[-1] == "completed"


def test_max_attempts_one_means_no_retry() -> None:
    env = TestEnv()
    env.given(Status.RUNNING, policy=RetryPolicy(max_attempts=1))
    env.apply(attempt_failed())
    assert env.status() is Status.PAUSED


def test_non_retryable_failure_skips_the_remaining_retries() -> None:
    env = TestEnv()
    env.given(Status.RUNNING)  # 70 attempts by default
    env.apply(attempt_failed(retryable=False, code=400, message="journal mismatch"))
    assert env.status() is Status.PAUSED
    assert env.events()[-1].data["reason"] == "non-retryable"


def test_non_retryable_failure_kills_when_the_policy_says_so() -> None:
    env = TestEnv()
    env.given(Status.RUNNING, policy=RetryPolicy(on_max_attempts="kill"))
    env.apply(attempt_failed(retryable=False))
    assert env.status() is Status.COMPLETED


def test_progress_resets_retry_count() -> None:
    env = TestEnv()
    env.given(Status.RUNNING, policy=RetryPolicy(initial_interval_ms=10, max_attempts=3))
    _fail_and_retry(env, 2)
    assert env.view().retry_count == 2
    env.apply(run_entry(attempt=3, index=1))
    assert env.view().retry_count == 0
    _fail_and_retry(env, 2)
    assert env.status() is Status.RUNNING  # two more failures fit in the fresh budget


def test_unlimited_retries_never_pause_and_stay_capped() -> None:
    policy = RetryPolicy(initial_interval_ms=500, max_interval_ms=60_000, max_attempts=None)
    view = a_view(Status.RUNNING, retry_policy=policy, retry_count=5000, attempt=5001)
    t = apply(view, attempt_failed(attempt=5001), ApplyContext(1, 1_000))
    assert t.view is not None and t.view.status is Status.BACKING_OFF
    assert t.view.next_retry_at is not None
    assert 60_000 <= t.view.next_retry_at - 1_000 <= 78_000


def test_identical_consecutive_failures_collapse_into_one_event() -> None:
    env = TestEnv()
    env.given(Status.RUNNING, policy=RetryPolicy(initial_interval_ms=10))
    _fail_and_retry(env, 3, message="connection refused")
    errors = [e for e in env.events() if e.kind == "transient-error"]
    assert len(errors) == 1
    assert (errors[0].data["count"], errors[0].data["attempt"]) == (3, 3)
    assert env.view().transient_streak == 3
    assert env.view().event_count == 2  # created + one collapsed transient-error


def test_a_different_failure_starts_a_new_event() -> None:
    env = TestEnv()
    env.given(Status.RUNNING, policy=RetryPolicy(initial_interval_ms=10))
    _fail_and_retry(env, 2, message="a")
    _fail_and_retry(env, 1, message="b")
    _fail_and_retry(env, 1, message="a")
    errors = [(e.data["message"], e.data["count"]) for e in env.events()[1:]]
    assert errors == [("a", 2), ("b", 1), ("a", 1)]
    assert [e.seq for e in env.events()] == [0, 1, 2, 3]


def test_another_event_in_between_breaks_the_collapse() -> None:
    env = TestEnv()
    env.given(Status.RUNNING, policy=RetryPolicy(initial_interval_ms=10))
    _fail_and_retry(env, 1)
    env.apply(pause())
    env.apply(resume())
    _fail_and_retry(env, 1)
    assert env.event_kinds() == [
        "created",
        "transient-error",
        "paused",
        "resumed",
        "transient-error",
    ]
