"""Resume: run a stopped invocation again, optionally on another deployment (SPEC §3.4).

pre-status `paused`, `suspended`: → `running`; StartAttempt(next attempt) from the stored journal.
pre-status `backing-off`: → `running` now; CancelTimer(RETRY attempt) and its row deleted;
                          StartAttempt(next attempt).
pre-status `running`: nothing changes, 200 (`already_running` in the body); but 409 when the
                      command asks for a deployment other than the pin (a running invocation
                      runs on its pin; pause it first). Not pinned yet (its attempt has not
                      reported where it runs): accepted and pinned (SPEC §3.4), and to make the
                      pin true the attempt in flight is aborted (AbortAttempt; it has stored
                      nothing) and the next one starts on that deployment, as for a paused
                      invocation. (Until 2026-11-28 the attempt in flight went on and could
                      write the journal on another deployment than the pin.)
not found 404; `scheduled` 425 (not started yet); `completed` 409.

Every resume that starts an attempt: `retry_count` = 0 (a fresh retry budget), `pinned_deployment`
= the command's (already resolved) deployment when it carries one, the retry policy replaced when
the command carries one, awaited completions and `next_retry_at` cleared, event 'resumed'
`{"from_deployment", "to_deployment"}`; reply 200 `{"status": "running", "attempt": n}`.
"""

from __future__ import annotations

from typing import Any

from processor.actions import CancelTimer
from processor.commands import Resume, TimerKey, TimerKind
from processor.state_machine.lifecycle.common import emit, new_abort_attempt, reply, start_attempt
from processor.state_machine.types import ApplyContext, Transition
from processor.status import InvocationView

COMPLETED = "a completed invocation cannot be resumed; invoke the handler again instead"
NOT_STARTED = (
    "it has not started yet and starts by itself at its scheduled time; "
    "cancel or kill it to stop it"
)


def _resumed(view: InvocationView, cmd: Resume, ctx: ApplyContext, tr: Transition) -> Transition:
    ts = ctx.timestamp_ms
    to_deployment = cmd.deployment_id or view.pinned_deployment
    event_count = emit(
        tr,
        view.event_count,
        "resumed",
        ts,
        {"from_deployment": view.pinned_deployment, "to_deployment": to_deployment},
    )
    changes: dict[str, Any] = {
        "retry_count": 0,
        "pinned_deployment": to_deployment,
        "event_count": event_count,
        "transient_streak": 0,
    }
    if cmd.retry_policy is not None:
        changes["retry_policy"] = cmd.retry_policy
    tr.view = new = start_attempt(view, ctx, tr, **changes)
    tr.actions += reply(cmd.request_id, 200, {"status": new.status.value, "attempt": new.attempt})
    return tr


def resume_stopped(view: InvocationView, cmd: Resume, ctx: ApplyContext) -> Transition:
    """paused / suspended → running."""
    return _resumed(view, cmd, ctx, Transition(view, changed=True))


def resume_backing_off(view: InvocationView, cmd: Resume, ctx: ApplyContext) -> Transition:
    timer = TimerKey(TimerKind.RETRY, view.attempt)
    tr = Transition(view, changed=True, timers_deleted=[timer])
    tr.actions.append(CancelTimer(view.id, timer))
    return _resumed(view, cmd, ctx, tr)


def resume_running(view: InvocationView, cmd: Resume, ctx: ApplyContext) -> Transition:
    # `already_running` tells the caller nothing was resumed (both answers are 200).
    ok: dict[str, Any] = {"status": view.status.value, "attempt": view.attempt}
    ok["already_running"] = True
    if cmd.deployment_id is not None and view.pinned_deployment is None:
        # The attempt in flight has stored nothing yet, and nobody knows where it runs: it is
        # aborted and the next one starts on the deployment asked for, so the pin always names
        # the deployment that writes the journal (its late effects are stale: older attempt).
        tr = Transition(view, changed=True, actions=[new_abort_attempt(view.id, view.attempt)])
        return _resumed(view, cmd, ctx, tr)
    if cmd.deployment_id is not None and cmd.deployment_id != view.pinned_deployment:
        pinned = view.pinned_deployment
        message = (
            f"invocation {view.id} is running (pinned to {pinned}); it cannot move to "
            f"deployment {cmd.deployment_id} while an attempt runs: pause it first, then resume "
            "it with the deployment"
        )
        return Transition(view, actions=reply(cmd.request_id, 409, {"message": message}))
    return Transition(view, actions=reply(cmd.request_id, 200, ok))
