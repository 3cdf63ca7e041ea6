"""Building blocks shared by the lifecycle handlers: replies, rejections, events, new attempts.

Everything here is pure and returns data. Handlers compose these helpers; none of them decides a
status on its own (that is the handler's job, and the table's).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from processor.actions import AbortAttempt, Action, Reply, StartAttempt
from processor.commands import TimerKey, TimerKind
from processor.state_machine.fast import maker
from processor.state_machine.types import ApplyContext, Event, JournalAppend, Transition
from processor.status import Failure, InvocationView, Result, Status

Handler = Callable[[Any, Any, ApplyContext], Transition]
"""`(view | None, command, ctx) -> Transition`; the table stores these."""

START_TIMER = TimerKey(TimerKind.START, 0)

# Fast positional constructors (all fields, in order) for the objects most commands produce; see
# `state_machine.fast` for why.
new_event = maker(Event)
new_journal_append = maker(JournalAppend)
new_reply = maker(Reply)
new_start_attempt = maker(StartAttempt)
new_abort_attempt = maker(AbortAttempt)
new_view = maker(InvocationView)  # 26 fields: the dataclass's own __init__ costs ~13 µs here


def make_evolve(use_twin: bool = True) -> Callable[..., InvocationView]:
    # `dataclasses.replace` on this 26-field frozen dataclass costs ~25 µs on this machine (it
    # walks `fields()` and goes through the frozen `__init__`, one `object.__setattr__` per field);
    # the apply path runs it once per command at >= 50k commands/s. So the copy is generated
    # straight-line from `__slots__` (fields added to the view later are copied too) and written
    # into an unfrozen twin class with the same slot layout, whose `__class__` is then switched to
    # `InvocationView`: plain slot stores, ~3 µs. Where CPython refuses the switch (a layout that
    # differs, e.g. a `__weakref__` slot), the copy goes through the slot descriptors (~8 µs).
    slots = InvocationView.__slots__
    twin = type("_InvocationViewTwin", (), {"__slots__": slots})
    namespace: dict[str, Any] = {"new": object.__new__, "twin": twin, "cls": InvocationView}
    lines = ["def evolve(view, /, **changes):", "    copy = new(twin)"]
    lines += [f"    copy.{name} = view.{name}" for name in slots]
    # An unknown field name raises AttributeError (slotted class), so typos fail loudly in tests.
    lines += ["    for name, value in changes.items():", "        setattr(copy, name, value)"]
    lines += ["    copy.__class__ = cls", "    return copy"]
    probe: Any = object.__new__(twin)
    try:
        if not use_twin:
            raise TypeError("the twin is not wanted")
        probe.__class__ = InvocationView
    except TypeError:
        namespace["setattr"] = object.__setattr__
        lines[1] = "    copy = new(cls)"
        lines[2 : 2 + len(slots)] = [f"    setattr(copy, {name!r}, view.{name})" for name in slots]
        lines.remove("    copy.__class__ = cls")
    exec("\n".join(lines), namespace)
    evolve: Callable[..., InvocationView] = namespace["evolve"]
    return evolve


evolve = make_evolve()
evolve.__doc__ = "`dataclasses.replace(view, **changes)`, faster; never mutates `view`."


def reply(request_id: str | None, code: int, body: dict[str, Any]) -> list[Action]:
    """The Reply action for a command, or nothing when nobody waits for an answer."""
    if request_id is None:
        return []
    return [new_reply(request_id, code, body)]


def not_found(invocation_id: str) -> str:
    return (
        f"invocation {invocation_id} not found: it never existed on this partition or was "
        "purged; check the id (`processor invocations list`)"
    )


def reject(code: int, advice: str) -> Handler:
    """A cell that changes nothing and answers `code` with a message naming the invocation, its
    status and `advice` (what the command needs / what to do instead)."""

    def rejected(view: InvocationView | None, command: Any, ctx: ApplyContext) -> Transition:
        if view is None:
            message = not_found(command.invocation_id)
        else:
            message = f"invocation {view.id} is {view.status.value}; {advice}"
        return Transition(view, actions=reply(command.request_id, code, {"message": message}))

    rejected.__name__ = f"reject_{code}"
    rejected.__doc__ = f"reply {code}: {advice}"
    return rejected


def ignore(view: InvocationView | None, command: Any, ctx: ApplyContext) -> Transition:
    """Nothing changes, nothing is answered (e.g. a timer that fired late)."""
    return Transition(view)


def stale(view: InvocationView | None, effect: Any, ctx: ApplyContext) -> Transition:
    """An effect of an attempt that is not the current one of a running invocation (it was
    paused, killed, superseded, or the invocation is gone): ignore it and make sure that attempt
    is closed. Only that attempt number is aborted, never the current one."""
    return Transition(view, actions=[new_abort_attempt(effect.invocation_id, effect.attempt)])


def emit(tr: Transition, seq: int, kind: str, at: int, data: dict[str, Any]) -> int:
    """Append event number `seq` to `tr` and return the next free seq (the new `event_count`).

    Callers also reset `transient_streak` to 0: only `failed.py` collapses repeated events.
    """
    tr.events.append(new_event(seq, kind, at, data))
    return seq + 1


def failure_body(failure: Failure) -> dict[str, Any]:
    return {"code": failure.code, "message": failure.message}


def result_body(result: Result) -> dict[str, Any]:
    """A result as the API and the journal carry it: `{"value": bytes}` or `{"failure": {...}}`."""
    if result.failure is not None:
        return {"failure": failure_body(result.failure)}
    return {"value": result.value}


def start_attempt(
    view: InvocationView, ctx: ApplyContext, tr: Transition, **changes: Any
) -> InvocationView:
    """Move `view` to `running` with the next attempt number and ask the leader to start it.

    Clears what only made sense while nothing ran (awaited completions, the retry time).
    `modified_at` moves only when the status really changes (a new attempt of a running
    invocation is not a status change).
    """
    ts = ctx.timestamp_ms
    attempt = view.attempt + 1
    if view.status is not Status.RUNNING:
        changes["modified_at"] = ts
    new = evolve(
        view,
        status=Status.RUNNING,
        attempt=attempt,
        running_at=ts,
        awaiting=(),
        next_retry_at=None,
        **changes,
    )
    tr.actions.append(
        new_start_attempt(new.id, attempt, new.service, new.handler, new.pinned_deployment)
    )
    return new
