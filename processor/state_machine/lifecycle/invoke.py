"""Invoke: create an invocation, or answer a repeated invoke of an existing one (SPEC §3.1).

New id (pre-status: not found):
  post-status: `running` (attempt 1, StartAttempt with no pinned deployment), or `scheduled` when
  `execute_at` lies after the record time (a START timer is stored and scheduled; `execute_at` is
  kept in the view whenever the caller gave one, so the user sees what was asked).
  writes: the journal's input entry at index 0 (`{"kind": "input", "value", "headers"}`), event
  'created'.
  reply: 200 `{"status": "Accepted", "invocation_id"}`.

Existing id (any status; an idempotency key maps repeated requests to the same id):
  nothing changes; the shell attaches the waiting caller to the invocation itself.
  reply: 200 `{"status": "PreviouslyAccepted", "invocation_id"}`, plus `"result"` when completed.
"""

from __future__ import annotations

from processor.actions import ScheduleTimer
from processor.commands import Invoke
from processor.state_machine.lifecycle.common import (
    START_TIMER,
    emit,
    new_journal_append,
    new_start_attempt,
    new_view,
    reply,
    result_body,
)
from processor.state_machine.types import ApplyContext, Transition
from processor.status import InvocationView, Status


def invoke_new(view: None, cmd: Invoke, ctx: ApplyContext) -> Transition:
    ts = ctx.timestamp_ms
    delayed = cmd.execute_at is not None and cmd.execute_at > ts
    tr = Transition(None, changed=True)
    tr.journal.append(
        new_journal_append(0, {"kind": "input", "value": cmd.input, "headers": cmd.headers}, ts)
    )
    event_data: dict[str, object] = {"target": f"{cmd.service}/{cmd.handler}"}
    if delayed:
        assert cmd.execute_at is not None  # for mypy: `delayed` implies it
        status, attempt, running_at = Status.SCHEDULED, 0, None
        event_data["execute_at"] = cmd.execute_at
        tr.timers_set.append((START_TIMER, cmd.execute_at))
        tr.actions.append(ScheduleTimer(cmd.invocation_id, START_TIMER, cmd.execute_at))
    else:
        status, attempt, running_at = Status.RUNNING, 1, ts
        tr.actions.append(new_start_attempt(cmd.invocation_id, 1, cmd.service, cmd.handler, None))
    event_data["status"] = status._value_
    event_count = emit(tr, 0, "created", ts, event_data)
    tr.view = new_view(
        id=cmd.invocation_id,
        service=cmd.service,
        handler=cmd.handler,
        status=status,
        created_at=ts,
        modified_at=ts,
        retry_policy=cmd.retry_policy,
        idempotency_key=cmd.idempotency_key,
        headers=cmd.headers,
        execute_at=cmd.execute_at,
        running_at=running_at,
        attempt=attempt,
        journal_length=1,
        event_count=event_count,
    )
    tr.actions += reply(
        cmd.request_id, 200, {"status": "Accepted", "invocation_id": cmd.invocation_id}
    )
    return tr


def invoke_existing(view: InvocationView, cmd: Invoke, ctx: ApplyContext) -> Transition:
    body: dict[str, object] = {"status": "PreviouslyAccepted", "invocation_id": view.id}
    if view.result is not None:
        body["result"] = result_body(view.result)
    return Transition(view, actions=reply(cmd.request_id, 200, body))
