"""An attempt failed: count it, then back off, or pause / kill when retries run out (SPEC §3.3,
§4, §5).

pre-status `running` and the effect's attempt = the current attempt (any other case is a stale
effect, see `common.stale`):
  - `last_failure` = the failure tagged with the attempt; `last_attempt_deployment` = the
    deployment the attempt called, when the invoker knew it; `retry_count` += 1.
  - event 'transient-error' `{code, message, stacktrace, attempt, related_index, count}`. Identical
    consecutive failures (same code and message, nothing else logged in between) are collapsed:
    the event is re-emitted with the seq of the previous one and a higher `count` (the store
    upserts events by (invocation, seq)); `transient_streak` tracks the count.
  - retryable and retries left (`max_attempts` unset or `retry_count` < it) → `backing-off`,
    `next_retry_at` = record time + backoff delay (deterministic jitter), a RETRY(attempt) timer
    stored and scheduled.
  - otherwise (`retryable` false, or `retry_count` reached `max_attempts`) the policy's
    `on_max_attempts` applies: 'pause' → `paused`, event 'paused' `{"reason", "failure"}`
    (reason "max-attempts", or "non-retryable" when the failure said so); 'kill' → `completed`
    with the failure (code, message) as result, sleep timers deleted, NotifyCompletion, event
    'completed' `{"outcome": "failure", "failure", "reason"}`.

Protocol errors of an attempt (a journal index gap, a processor-only entry kind, a suspension
that awaits nothing) go through the same path as a retryable failure, with code 571 (Restate's
"protocol violation").
"""

from __future__ import annotations

from typing import Any

from processor.actions import CancelTimer, NotifyCompletion, ScheduleTimer
from processor.commands import AttemptFailed, TimerKey, TimerKind
from processor.retry import next_delay_ms
from processor.state_machine.lifecycle.common import emit, evolve, failure_body, new_event, stale
from processor.state_machine.types import ApplyContext, Transition
from processor.status import Failure, InvocationView, Result, Status

PROTOCOL_VIOLATION = 571


def fail_attempt(
    view: InvocationView,
    ctx: ApplyContext,
    failure: Failure,
    retryable: bool,
    deployment_id: str | None = None,
) -> Transition:
    """Apply the failure of the current attempt of a running `view`."""
    ts = ctx.timestamp_ms
    attempt = view.attempt
    stored = Failure(
        failure.code, failure.message, failure.stacktrace, attempt, failure.related_index
    )
    retry_count = view.retry_count + 1
    last = view.last_failure
    if (
        view.transient_streak
        and last is not None
        and last.code == failure.code
        and last.message == failure.message
    ):
        streak, seq = view.transient_streak + 1, view.event_count - 1
    else:
        streak, seq = 1, view.event_count
    tr = Transition(view, changed=True)
    data = {
        "code": failure.code,
        "message": failure.message,
        "stacktrace": failure.stacktrace,
        "attempt": attempt,
        "related_index": failure.related_index,
        "count": streak,
    }
    tr.events.append(new_event(seq, "transient-error", ts, data))
    changes: dict[str, Any] = {
        "last_failure": stored,
        "retry_count": retry_count,
        "transient_streak": streak,
        "event_count": seq + 1,
        "modified_at": ts,
    }
    if deployment_id is not None:
        changes["last_attempt_deployment"] = deployment_id
    policy = view.retry_policy
    exhausted = policy.max_attempts is not None and retry_count >= policy.max_attempts
    if retryable and not exhausted:
        delay = next_delay_ms(policy, retry_count, view.id, attempt)
        timer = TimerKey(TimerKind.RETRY, attempt)
        tr.timers_set.append((timer, ts + delay))
        tr.actions.append(ScheduleTimer(view.id, timer, ts + delay))
        tr.view = evolve(view, status=Status.BACKING_OFF, next_retry_at=ts + delay, **changes)
        return tr
    out_of_retries = {
        "reason": "max-attempts" if retryable else "non-retryable",
        "failure": failure_body(failure),
    }
    changes["transient_streak"] = 0
    if policy.on_max_attempts == "kill":
        result = Result(failure=Failure(failure.code, failure.message))
        completion = {"outcome": "failure", **out_of_retries}
        changes["event_count"] = emit(tr, seq + 1, "completed", ts, completion)
        tr.clear_timers = True
        tr.actions += [CancelTimer(view.id, None), NotifyCompletion(view.id, result)]
        tr.view = evolve(
            view,
            status=Status.COMPLETED,
            completed_at=ts,
            result=result,
            sleeping=frozenset(),
            **changes,
        )
        return tr
    changes["event_count"] = emit(tr, seq + 1, "paused", ts, out_of_retries)
    tr.view = evolve(view, status=Status.PAUSED, **changes)
    return tr


def attempt_failed(view: InvocationView, cmd: AttemptFailed, ctx: ApplyContext) -> Transition:
    if cmd.attempt != view.attempt:
        return stale(view, cmd, ctx)
    return fail_attempt(view, ctx, cmd.failure, cmd.retryable, cmd.deployment_id)
