"""Kill: complete an invocation at once with failure 409 "killed" (SPEC §3.5).

pre-status `scheduled`, `running`, `backing-off`, `suspended`, `paused`:
  → `completed` with result failure (409, "killed"), `completed_at`; AbortAttempt(current attempt)
  when `running`; CancelTimer(all) and every timer row deleted (start, retry, sleeps);
  NotifyCompletion to waiting callers; event 'killed'; reply 200 `{"status": "completed"}`.
  No compensation runs and no journal entry is written (that is what cancel is for).
not found 404; `completed` 409.
"""

from __future__ import annotations

from processor.actions import AbortAttempt, CancelTimer, NotifyCompletion
from processor.commands import Kill
from processor.state_machine.lifecycle.common import emit, evolve, reply
from processor.state_machine.types import ApplyContext, Transition
from processor.status import Failure, InvocationView, Result, Status

KILLED = Failure(409, "killed")
ALREADY_COMPLETED = "it is already completed, so there is nothing to kill"


def kill_active(view: InvocationView, cmd: Kill, ctx: ApplyContext) -> Transition:
    ts = ctx.timestamp_ms
    result = Result(failure=KILLED)
    tr = Transition(view, changed=True, clear_timers=True)
    if view.status is Status.RUNNING:
        tr.actions.append(AbortAttempt(view.id, view.attempt))
    tr.actions += [CancelTimer(view.id, None), NotifyCompletion(view.id, result)]
    seq = emit(tr, view.event_count, "killed", ts, {"from_status": view.status.value})
    tr.view = evolve(
        view,
        status=Status.COMPLETED,
        modified_at=ts,
        completed_at=ts,
        result=result,
        next_retry_at=None,
        awaiting=(),
        sleeping=frozenset(),
        event_count=seq,
        transient_streak=0,
    )
    tr.actions += reply(cmd.request_id, 200, {"status": Status.COMPLETED.value})
    return tr
