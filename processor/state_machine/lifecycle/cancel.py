"""Cancel: ask an invocation to stop gracefully (SPEC §3.5).

pre-status `scheduled`: → `completed` with failure 409 "canceled" (it never ran, so there is
    nothing to compensate); CancelTimer(START) and its row deleted; NotifyCompletion; reply 200;
    events 'cancel-requested', 'completed'.
pre-status `running`, `backing-off`, `suspended`, `paused`: the cancel signal `{"kind": "cancel"}`
    is appended to the journal and a new attempt replays it (→ `running`, StartAttempt): the SDK
    raises a terminal "canceled" error at the handler's next suspension point. `running` aborts the
    current attempt first (our protocol cannot push a signal into a running attempt);
    `backing-off` cancels its retry timer; `paused` resumes on its pinned deployment (the seed's
    rule). Event 'cancel-requested'; reply 202. Sleep timers stay: a sleep that completes later is
    stored as usual and the handler sees the cancel first anyway.
    `retry_count` is reset to 0 (ours): the handler's compensation gets a fresh retry budget, as
    after a resume; otherwise an invocation auto-paused at max-attempts would be paused again by
    its first failure.
not found 404; `completed` 409.

A repeated cancel appends no second signal (`cancel_requested` is already set) and answers 202. A
running, backing-off or suspended invocation then changes nothing (its next attempt replays the
signal anyway); a paused one is resumed again to process the cancellation, with a
'cancel-requested' event `{"repeated": true}`.
"""

from __future__ import annotations

from typing import Any

from processor.actions import AbortAttempt, CancelTimer, NotifyCompletion
from processor.commands import Cancel, TimerKey, TimerKind
from processor.state_machine.lifecycle.common import (
    START_TIMER,
    emit,
    evolve,
    failure_body,
    reply,
    start_attempt,
)
from processor.state_machine.types import ApplyContext, JournalAppend, Transition
from processor.status import Failure, InvocationView, Result, Status

CANCELED = Failure(409, "canceled")
ALREADY_COMPLETED = "it is already completed, so there is nothing to cancel"


def cancel_scheduled(view: InvocationView, cmd: Cancel, ctx: ApplyContext) -> Transition:
    ts = ctx.timestamp_ms
    result = Result(failure=CANCELED)
    tr = Transition(view, changed=True, timers_deleted=[START_TIMER])
    seq = emit(tr, view.event_count, "cancel-requested", ts, {})
    completion = {"outcome": "failure", "failure": failure_body(CANCELED), "reason": "canceled"}
    seq = emit(tr, seq, "completed", ts, completion)
    tr.view = evolve(
        view,
        status=Status.COMPLETED,
        modified_at=ts,
        completed_at=ts,
        result=result,
        event_count=seq,
        transient_streak=0,
    )
    tr.actions += [CancelTimer(view.id, START_TIMER), NotifyCompletion(view.id, result)]
    tr.actions += reply(cmd.request_id, 200, {"status": Status.COMPLETED.value})
    return tr


def cancel_active(view: InvocationView, cmd: Cancel, ctx: ApplyContext) -> Transition:
    """running / backing-off / suspended / paused → running with the cancel signal journaled."""
    if view.cancel_requested and view.status is not Status.PAUSED:
        return Transition(view, actions=reply(cmd.request_id, 202, {"status": view.status.value}))
    ts = ctx.timestamp_ms
    tr = Transition(view, changed=True)
    if view.status is Status.RUNNING:
        tr.actions.append(AbortAttempt(view.id, view.attempt))
    elif view.status is Status.BACKING_OFF:
        timer = TimerKey(TimerKind.RETRY, view.attempt)
        tr.timers_deleted.append(timer)
        tr.actions.append(CancelTimer(view.id, timer))
    changes: dict[str, Any] = {"retry_count": 0, "transient_streak": 0}
    if view.cancel_requested:
        changes["event_count"] = emit(
            tr, view.event_count, "cancel-requested", ts, {"repeated": True}
        )
    else:
        tr.journal.append(JournalAppend(view.journal_length, {"kind": "cancel"}, ts))
        changes["journal_length"] = view.journal_length + 1
        changes["cancel_requested"] = True
        changes["event_count"] = emit(tr, view.event_count, "cancel-requested", ts, {})
    tr.view = new = start_attempt(view, ctx, tr, **changes)
    tr.actions += reply(cmd.request_id, 202, {"status": new.status.value, "attempt": new.attempt})
    return tr
