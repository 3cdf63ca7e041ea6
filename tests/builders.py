"""Readable builders for state machine tests: commands, views, and a `TestEnv`.

`TestEnv` plays the runner's part in memory: it keeps the views per invocation id, applies
commands with increasing LSN and record time, folds each `Transition` into its journal, events and
timers (the way the store does: events upserted by seq, timers cleared → deleted → set), and
returns the actions. Tests then read like sentences:

    env = TestEnv()
    env.given(Status.BACKING_OFF)
    actions = env.apply(pause())
    assert has_action(actions, CancelTimer, timer=TimerKey(TimerKind.RETRY, 1))
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from processor.actions import Action
from processor.commands import (
    AnnounceLeader,
    AttemptCompleted,
    AttemptEntry,
    AttemptFailed,
    AttemptPinned,
    AttemptSuspended,
    Cancel,
    Command,
    Invoke,
    Kill,
    Pause,
    Purge,
    Resume,
    TimerFired,
    TimerKey,
    TimerKind,
)
from processor.ids import make_invocation_id
from processor.retry import RetryPolicy
from processor.state_machine import apply
from processor.state_machine.types import ApplyContext, Event, Transition
from processor.status import Failure, InvocationView, Result, Status

INV = make_invocation_id(7, 1)
INV_2 = make_invocation_id(7, 2)
DP_1 = "dp_" + "1" * 22
DP_2 = "dp_" + "2" * 22
T0 = 1_700_000_000_000
POLICY = RetryPolicy()  # the defaults: 500ms, ×2, 60s cap, 70 attempts, pause


# --- user commands ---


def invoke(
    invocation_id: str = INV,
    *,
    service: str = "Greeter",
    handler: str = "greet",
    input: bytes = b'"Ada"',
    policy: RetryPolicy = POLICY,
    headers: dict[str, str] | None = None,
    idempotency_key: str | None = None,
    execute_at: int | None = None,
    request_id: str | None = "req-invoke",
) -> Invoke:
    return Invoke(
        invocation_id,
        service,
        handler,
        input,
        policy,
        headers or {},
        idempotency_key,
        execute_at,
        request_id,
    )


def pause(invocation_id: str = INV, *, request_id: str | None = "req-pause") -> Pause:
    return Pause(invocation_id, request_id)


def resume(
    invocation_id: str = INV,
    *,
    deployment: str | None = None,
    policy: RetryPolicy | None = None,
    request_id: str | None = "req-resume",
) -> Resume:
    return Resume(invocation_id, deployment, policy, request_id)


def cancel(invocation_id: str = INV, *, request_id: str | None = "req-cancel") -> Cancel:
    return Cancel(invocation_id, request_id)


def kill(invocation_id: str = INV, *, request_id: str | None = "req-kill") -> Kill:
    return Kill(invocation_id, request_id)


def purge(invocation_id: str = INV, *, request_id: str | None = "req-purge") -> Purge:
    return Purge(invocation_id, request_id)


# --- timers ---


def start_timer_fired(invocation_id: str = INV) -> TimerFired:
    return TimerFired(invocation_id, TimerKey(TimerKind.START, 0))


def retry_timer_fired(invocation_id: str = INV, attempt: int = 1) -> TimerFired:
    return TimerFired(invocation_id, TimerKey(TimerKind.RETRY, attempt))


def sleep_timer_fired(invocation_id: str = INV, completion_id: int = 1) -> TimerFired:
    return TimerFired(invocation_id, TimerKey(TimerKind.SLEEP, completion_id))


# --- attempt effects ---


def pinned(invocation_id: str = INV, attempt: int = 1, deployment: str = DP_1) -> AttemptPinned:
    return AttemptPinned(invocation_id, attempt, deployment)


def entry(
    invocation_id: str = INV, attempt: int = 1, index: int = 1, **fields: Any
) -> AttemptEntry:
    """An entry of any kind: `entry(index=1, kind="run", name="x", value=b"1")`."""
    return AttemptEntry(invocation_id, attempt, index, {"kind": "run", **fields})


def run_entry(
    invocation_id: str = INV, attempt: int = 1, index: int = 1, name: str = "step"
) -> AttemptEntry:
    return AttemptEntry(invocation_id, attempt, index, {"kind": "run", "name": name, "value": b"1"})


def sleep_entry(
    invocation_id: str = INV,
    attempt: int = 1,
    index: int = 1,
    completion_id: int = 1,
    wake_up_at: int = T0 + 60_000,
) -> AttemptEntry:
    body = {"kind": "sleep", "completion_id": completion_id, "wake_up_at": wake_up_at}
    return AttemptEntry(invocation_id, attempt, index, body)


def suspended(
    invocation_id: str = INV, attempt: int = 1, awaiting: tuple[int, ...] = (1,)
) -> AttemptSuspended:
    return AttemptSuspended(invocation_id, attempt, awaiting)


def completed(
    invocation_id: str = INV,
    attempt: int = 1,
    value: bytes | None = b'"Hello Ada"',
    failure: Failure | None = None,
) -> AttemptCompleted:
    return AttemptCompleted(invocation_id, attempt, None if failure else value, failure)


def attempt_failed(
    invocation_id: str = INV,
    attempt: int = 1,
    *,
    code: int = 500,
    message: str = "boom",
    retryable: bool = True,
    deployment: str | None = None,
    stacktrace: str | None = None,
) -> AttemptFailed:
    failure = Failure(code, message, stacktrace)
    return AttemptFailed(invocation_id, attempt, failure, retryable, deployment)


def announce_leader(epoch: int = 1) -> AnnounceLeader:
    return AnnounceLeader(epoch)


# --- views ---


def a_view(status: Status = Status.RUNNING, **overrides: Any) -> InvocationView:
    """A plausible stored view in `status` (for calling `apply` directly)."""
    fields: dict[str, Any] = {"attempt": 1, "running_at": T0, "journal_length": 1}
    if status is Status.SCHEDULED:
        fields = {"attempt": 0, "execute_at": T0 + 60_000, "journal_length": 1}
    elif status is Status.BACKING_OFF:
        fields |= {
            "retry_count": 1,
            "next_retry_at": T0 + 500,
            "last_failure": Failure(500, "boom", attempt=1),
        }
    elif status is Status.SUSPENDED:
        fields |= {"journal_length": 2, "sleeping": frozenset({1}), "awaiting": (1,)}
    elif status is Status.COMPLETED:
        fields |= {"completed_at": T0, "result": Result(value=b'"Hello Ada"')}
    view = InvocationView(
        id=INV,
        service="Greeter",
        handler="greet",
        status=status,
        created_at=T0,
        modified_at=T0,
        retry_policy=POLICY,
        event_count=1,
        **fields,
    )
    return replace(view, **overrides)


class TestEnv:
    """An in-memory partition: views, journals, events and timers, fed by `apply`."""

    __test__ = False  # not a pytest test class

    def __init__(self, start_ms: int = T0, step_ms: int = 1) -> None:
        self.now = start_ms
        self.step_ms = step_ms
        self.lsn = 0
        self.views: dict[str, InvocationView] = {}
        self.journals: dict[str, list[tuple[dict[str, Any], int]]] = {}
        self.event_rows: dict[str, dict[int, Event]] = {}
        self.timer_rows: dict[str, dict[TimerKey, int]] = {}
        self.leader_epoch: int | None = None
        self.last: Transition | None = None

    def apply(self, command: Command) -> list[Action]:
        """Apply one command as the next log record; return its actions."""
        self.lsn += 1
        self.now += self.step_ms
        invocation_id = getattr(command, "invocation_id", None)
        view = self.views.get(invocation_id) if invocation_id is not None else None
        t = apply(view, command, ApplyContext(self.lsn, self.now))
        self.last = t
        if t.leader_epoch is not None:
            self.leader_epoch = t.leader_epoch
        if invocation_id is not None:
            self._fold(invocation_id, t)
        return t.actions

    def apply_all(self, *commands: Command) -> list[Action]:
        actions: list[Action] = []
        for command in commands:
            actions += self.apply(command)
        return actions

    def advance(self, ms: int) -> None:
        self.now += ms

    def _fold(self, invocation_id: str, t: Transition) -> None:
        if t.deleted:
            for table in (self.views, self.journals, self.event_rows, self.timer_rows):
                table.pop(invocation_id, None)
            return
        if t.changed and t.view is not None:
            self.views[invocation_id] = t.view
        journal = self.journals.setdefault(invocation_id, [])
        for j in t.journal:
            assert j.index == len(journal), f"journal row {j.index} after {len(journal)} rows"
            journal.append((j.entry, j.appended_at))
        events = self.event_rows.setdefault(invocation_id, {})
        for e in t.events:
            events[e.seq] = e
        timers = self.timer_rows.setdefault(invocation_id, {})
        if t.clear_timers:
            timers.clear()
        for key in t.timers_deleted:
            timers.pop(key, None)
        for key, fire_at in t.timers_set:
            timers[key] = fire_at

    # --- reading ---

    def view(self, invocation_id: str = INV) -> InvocationView:
        return self.views[invocation_id]

    def status(self, invocation_id: str = INV) -> Status | None:
        view = self.views.get(invocation_id)
        return None if view is None else view.status

    def journal(self, invocation_id: str = INV) -> list[dict[str, Any]]:
        return [e for e, _ in self.journals.get(invocation_id, [])]

    def events(self, invocation_id: str = INV) -> list[Event]:
        rows = self.event_rows.get(invocation_id, {})
        return [rows[seq] for seq in sorted(rows)]

    def event_kinds(self, invocation_id: str = INV) -> list[str]:
        return [e.kind for e in self.events(invocation_id)]

    def timers(self, invocation_id: str = INV) -> dict[TimerKey, int]:
        return dict(self.timer_rows.get(invocation_id, {}))

    # --- arranging ---

    def given(
        self, status: Status, invocation_id: str = INV, policy: RetryPolicy = POLICY
    ) -> InvocationView:
        """Bring a new invocation to `status` through real commands; returns its view."""
        if status is Status.SCHEDULED:
            self.apply(invoke(invocation_id, policy=policy, execute_at=self.now + 60_000))
        else:
            self.apply(invoke(invocation_id, policy=policy))
        if status is Status.BACKING_OFF:
            self.apply(attempt_failed(invocation_id, 1))
        elif status is Status.SUSPENDED:
            self.apply(sleep_entry(invocation_id, 1, 1, 1, self.now + 60_000))
            self.apply(suspended(invocation_id, 1, (1,)))
        elif status is Status.PAUSED:
            self.apply(pause(invocation_id))
        elif status is Status.COMPLETED:
            self.apply(completed(invocation_id, 1))
        view = self.view(invocation_id)
        assert view.status is status
        return view
