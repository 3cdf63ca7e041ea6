"""Timer fired: a delayed start, a retry, or a sleep's wake-up time has come (SPEC §3.1).

start:    pre `scheduled` → `running`; StartAttempt(attempt 1); the START row is deleted.
          Any other status (or not found): ignore.
retry(n): pre `backing-off` and n = the attempt that failed → `running`; StartAttempt(n + 1); the
          RETRY row is deleted. Otherwise ignore (a timer that fired late, after a pause, resume,
          cancel or kill already dealt with it).
sleep(c): pre `running`, `backing-off`, `suspended`, `paused`, and c is a sleep whose timer is
          still stored (c in `sleeping`): the void completion `{"kind": "completion",
          "completion_id": c}` is appended to the journal, c moves from `sleeping` to
          `completed_ids`, the SLEEP row is deleted. Status stays, except `suspended` when c is
          awaited → `running` + StartAttempt. A `paused` invocation stays paused (SPEC §3.2).
          Not found, `scheduled`, `completed`, or c not sleeping (already completed, or unknown):
          ignore.

"Ignore" = no change, no writes, no actions, no reply.
"""

from __future__ import annotations

from processor.commands import TimerFired
from processor.state_machine.lifecycle.common import evolve, start_attempt
from processor.state_machine.types import ApplyContext, JournalAppend, Transition
from processor.status import InvocationView, Status


def fire_start(view: InvocationView, cmd: TimerFired, ctx: ApplyContext) -> Transition:
    """scheduled → running."""
    tr = Transition(view, changed=True, timers_deleted=[cmd.timer])
    tr.view = start_attempt(view, ctx, tr)
    return tr


def fire_retry(view: InvocationView, cmd: TimerFired, ctx: ApplyContext) -> Transition:
    """backing-off → running, if the timer is the current retry."""
    if cmd.timer.key != view.attempt:
        return Transition(view)
    tr = Transition(view, changed=True, timers_deleted=[cmd.timer])
    tr.view = start_attempt(view, ctx, tr)
    return tr


def fire_sleep(view: InvocationView, cmd: TimerFired, ctx: ApplyContext) -> Transition:
    """Store the sleep's completion; wake a suspended invocation that awaits it."""
    completion_id = cmd.timer.key
    if completion_id not in view.sleeping:
        return Transition(view)
    ts = ctx.timestamp_ms
    index = view.journal_length
    entry = {"kind": "completion", "completion_id": completion_id}
    tr = Transition(
        view, changed=True, journal=[JournalAppend(index, entry, ts)], timers_deleted=[cmd.timer]
    )
    changes = {
        "journal_length": index + 1,
        "completed_ids": view.completed_ids | {completion_id},
        "sleeping": view.sleeping - {completion_id},
    }
    if view.status is Status.SUSPENDED and completion_id in view.awaiting:
        tr.view = start_attempt(view, ctx, tr, **changes)
    else:
        tr.view = evolve(view, **changes)
    return tr
