"""Pause: stop an invocation until it is resumed (SPEC §3.2).

pre-status `running`:     → `paused`; AbortAttempt(current attempt); reply 202.
pre-status `backing-off`: → `paused`; CancelTimer(RETRY attempt) and its row deleted,
                          `next_retry_at` cleared, `last_failure` kept; reply 202.
pre-status `paused`:      nothing changes; reply 200 (already paused).
not found 404; `scheduled`, `suspended`, `completed` 409 (only running or backing-off
invocations can be paused).

Event 'paused' `{"reason": "manual"}` (no failure). `retry_count` is kept: resume is what grants
a fresh retry budget.
"""

from __future__ import annotations

from processor.actions import AbortAttempt, CancelTimer
from processor.commands import Pause, TimerKey, TimerKind
from processor.state_machine.lifecycle.common import emit, evolve, reply
from processor.state_machine.types import ApplyContext, Transition
from processor.status import InvocationView, Status

NOT_PAUSABLE = "only running or backing-off invocations can be paused"


def _paused(view: InvocationView, cmd: Pause, ctx: ApplyContext, tr: Transition) -> Transition:
    ts = ctx.timestamp_ms
    event_count = emit(tr, view.event_count, "paused", ts, {"reason": "manual"})
    tr.view = evolve(
        view,
        status=Status.PAUSED,
        modified_at=ts,
        next_retry_at=None,
        event_count=event_count,
        transient_streak=0,
    )
    tr.actions += reply(cmd.request_id, 202, {"status": Status.PAUSED.value})
    return tr


def pause_running(view: InvocationView, cmd: Pause, ctx: ApplyContext) -> Transition:
    tr = Transition(view, changed=True, actions=[AbortAttempt(view.id, view.attempt)])
    return _paused(view, cmd, ctx, tr)


def pause_backing_off(view: InvocationView, cmd: Pause, ctx: ApplyContext) -> Transition:
    timer = TimerKey(TimerKind.RETRY, view.attempt)
    tr = Transition(view, changed=True, timers_deleted=[timer])
    tr.actions.append(CancelTimer(view.id, timer))
    return _paused(view, cmd, ctx, tr)


def pause_paused(view: InvocationView, cmd: Pause, ctx: ApplyContext) -> Transition:
    return Transition(view, actions=reply(cmd.request_id, 200, {"status": Status.PAUSED.value}))
