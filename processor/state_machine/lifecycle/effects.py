"""What an attempt reports: pinned, entry, suspended, completed (SPEC §4). `failed` is in
`failed.py`.

Every effect applies only when the invocation is `running` and the effect's attempt is the current
one; otherwise it is stale (`common.stale`: ignored, AbortAttempt of that attempt), for every
other status too, not found included.

pinned(deployment): `pinned_deployment` = deployment if not pinned yet (a pin never moves except
    by resume); `last_attempt_deployment` = deployment. Status stays `running`.
entry(index, entry): index must equal `journal_length` (else a protocol error: the attempt fails,
    retryable, see `failed.py`). The entry is appended as sent, `journal_length` += 1 and
    `retry_count` = 0 (progress resets the retry budget, ours). A `sleep` entry (integer
    `completion_id` not used before, integer `wake_up_at`, both signed 64-bit) also stores a
    SLEEP(c) timer at `wake_up_at` and ScheduleTimer; c joins `sleeping`. Kinds the processor
    writes itself (`input`, `output`, `completion`, `cancel`) are protocol errors; every other
    kind (`run`, kinds of future protocols) is stored as data. Status stays `running` (or follows
    the failure).
suspended(awaiting): an awaited completion already in the journal → StartAttempt(next attempt)
    at once, status stays `running`; otherwise → `suspended` with `awaiting` stored (no abort:
    the attempt ended by itself). Awaiting nothing is a protocol error (it could never wake).
    Awaiting an id no sleep of this invocation produces keeps it suspended until a resume,
    cancel or kill (later protocols complete other kinds of promises; ours does not).
completed(value | failure): → `completed`, `result` (failure wins; no value means empty bytes),
    `completed_at`; the journal's `output` entry; sleep timers deleted; NotifyCompletion; event
    'completed' `{"outcome": "success"}` or `{"outcome": "failure", "failure"}`.
"""

from __future__ import annotations

from typing import TypeGuard

from processor.actions import CancelTimer, NotifyCompletion, ScheduleTimer
from processor.commands import (
    AttemptCompleted,
    AttemptEntry,
    AttemptPinned,
    AttemptSuspended,
    TimerKey,
    TimerKind,
)
from processor.state_machine.lifecycle.common import (
    emit,
    evolve,
    new_journal_append,
    result_body,
    stale,
    start_attempt,
)
from processor.state_machine.lifecycle.failed import PROTOCOL_VIOLATION, fail_attempt
from processor.state_machine.types import ApplyContext, Transition
from processor.status import Failure, InvocationView, Result, Status

PROCESSOR_KINDS = frozenset({"input", "output", "completion", "cancel"})


def _protocol_error(
    view: InvocationView, ctx: ApplyContext, message: str, index: int | None = None
) -> Transition:
    failure = Failure(PROTOCOL_VIOLATION, f"protocol violation: {message}", related_index=index)
    return fail_attempt(view, ctx, failure, retryable=True)


def attempt_pinned(view: InvocationView, cmd: AttemptPinned, ctx: ApplyContext) -> Transition:
    if cmd.attempt != view.attempt:
        return stale(view, cmd, ctx)
    pinned = view.pinned_deployment or cmd.deployment_id
    if pinned == view.pinned_deployment and cmd.deployment_id == view.last_attempt_deployment:
        return Transition(view)  # every attempt reports its pin: most change nothing
    return Transition(
        evolve(view, pinned_deployment=pinned, last_attempt_deployment=cmd.deployment_id),
        changed=True,
    )


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


# Timer keys and fire times are SQLite INTEGERs (signed 64-bit) but msgpack carries up to 2^64 - 1:
# a timer row that cannot be written would fail the batch, and the record with it at every restart.
_INT64 = range(-(1 << 63), 1 << 63)


def attempt_entry(view: InvocationView, cmd: AttemptEntry, ctx: ApplyContext) -> Transition:
    if cmd.attempt != view.attempt:
        return stale(view, cmd, ctx)
    index, entry = cmd.index, cmd.entry
    if index != view.journal_length:
        message = f"journal index gap: expected {view.journal_length}, got {index}"
        return _protocol_error(view, ctx, message, index)
    if not isinstance(entry, dict):
        return _protocol_error(view, ctx, f"journal entry {index} is not a map", index)
    kind = entry.get("kind")
    if isinstance(kind, str) and kind in PROCESSOR_KINDS:
        message = f"journal entry {index} has kind {kind!r}, which only the processor writes"
        return _protocol_error(view, ctx, message, index)
    ts = ctx.timestamp_ms
    tr = Transition(view, changed=True, journal=[new_journal_append(index, entry, ts)])
    if kind == "sleep":
        completion_id, wake_up_at = entry.get("completion_id"), entry.get("wake_up_at")
        if not (_is_int(completion_id) and _is_int(wake_up_at)):
            message = f"sleep entry {index} needs integer completion_id and wake_up_at"
            return _protocol_error(view, ctx, message, index)
        if completion_id not in _INT64 or wake_up_at not in _INT64:
            message = f"sleep entry {index} has a completion_id or wake_up_at beyond 64 bits"
            return _protocol_error(view, ctx, message, index)
        if completion_id in view.sleeping or completion_id in view.completed_ids:
            message = f"sleep entry {index} reuses completion id {completion_id}"
            return _protocol_error(view, ctx, message, index)
        timer = TimerKey(TimerKind.SLEEP, completion_id)
        tr.timers_set.append((timer, wake_up_at))
        tr.actions.append(ScheduleTimer(view.id, timer, wake_up_at))
        tr.view = evolve(
            view,
            journal_length=index + 1,
            retry_count=0,
            sleeping=view.sleeping | {completion_id},
        )
    else:
        tr.view = evolve(view, journal_length=index + 1, retry_count=0)
    return tr


def attempt_suspended(view: InvocationView, cmd: AttemptSuspended, ctx: ApplyContext) -> Transition:
    if cmd.attempt != view.attempt:
        return stale(view, cmd, ctx)
    if not cmd.awaiting:
        return _protocol_error(view, ctx, "the attempt suspended without awaiting a completion")
    tr = Transition(view, changed=True)
    done = view.completed_ids
    if any(c in done for c in cmd.awaiting):
        tr.view = start_attempt(view, ctx, tr)
    else:
        tr.view = evolve(
            view,
            status=Status.SUSPENDED,
            modified_at=ctx.timestamp_ms,
            awaiting=tuple(cmd.awaiting),
        )
    return tr


def attempt_completed(view: InvocationView, cmd: AttemptCompleted, ctx: ApplyContext) -> Transition:
    if cmd.attempt != view.attempt:
        return stale(view, cmd, ctx)
    ts = ctx.timestamp_ms
    if cmd.failure is not None:
        result = Result(failure=Failure(cmd.failure.code, cmd.failure.message))
    else:
        result = Result(value=cmd.value if cmd.value is not None else b"")
    body = result_body(result)
    index = view.journal_length
    tr = Transition(
        view, changed=True, journal=[new_journal_append(index, {"kind": "output", **body}, ts)]
    )
    if view.sleeping:
        tr.clear_timers = True
        tr.actions.append(CancelTimer(view.id, None))
    tr.actions.append(NotifyCompletion(view.id, result))
    if result.failure is not None:
        outcome = {"outcome": "failure", "failure": body["failure"]}
    else:
        outcome = {"outcome": "success"}
    tr.view = evolve(
        view,
        status=Status.COMPLETED,
        modified_at=ts,
        completed_at=ts,
        result=result,
        journal_length=index + 1,
        sleeping=frozenset(),
        event_count=emit(tr, view.event_count, "completed", ts, outcome),
        transient_streak=0,
    )
    return tr
