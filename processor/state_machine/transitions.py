"""THE transition table: every status change of an invocation lives here (SPEC §3.1).

One row per command kind, one cell per status (None = not found). A cell names the handler that
applies the command and the statuses the invocation may have afterwards (`to`; empty = the status
does not change). Rejections (`reject(code, advice)`) answer with a negative Reply and change
nothing; `IGNORE` does nothing at all; `STALE` ignores an effect of an attempt that is not the
current one and aborts that attempt. Handlers live one per command in `lifecycle/`.

The table is data: `apply` dispatches on it, a test checks it is total (every status × kind),
the Hypothesis state machine checks every applied command against `to`, and
`python -m processor.state_machine.diagram` draws docs/states.md from it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from processor.commands import (
    AttemptCompleted,
    AttemptEntry,
    AttemptFailed,
    AttemptPinned,
    AttemptSuspended,
    Cancel,
    InvocationCommand,
    Invoke,
    Kill,
    Pause,
    Purge,
    Resume,
    TimerFired,
    TimerKind,
)
from processor.state_machine.lifecycle import (
    cancel,
    effects,
    failed,
    invoke,
    kill,
    pause,
    purge,
    resume,
    timer_fired,
)
from processor.state_machine.lifecycle.common import Handler, ignore, reject, stale
from processor.status import Status


class Kind(enum.StrEnum):
    """What a command is, for the table: its type, and for timers which timer fired."""

    INVOKE = "invoke"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    KILL = "kill"
    PURGE = "purge"
    TIMER_START = "timer-fired: start"
    TIMER_RETRY = "timer-fired: retry"
    TIMER_SLEEP = "timer-fired: sleep"
    ATTEMPT_PINNED = "attempt: pinned"
    ATTEMPT_ENTRY = "attempt: entry"
    ATTEMPT_SUSPENDED = "attempt: suspended"
    ATTEMPT_COMPLETED = "attempt: completed"
    ATTEMPT_FAILED = "attempt: failed"


TIMER_KINDS = {
    TimerKind.START: Kind.TIMER_START,
    TimerKind.RETRY: Kind.TIMER_RETRY,
    TimerKind.SLEEP: Kind.TIMER_SLEEP,
}


KINDS: dict[type, Kind] = {
    Invoke: Kind.INVOKE,
    Pause: Kind.PAUSE,
    Resume: Kind.RESUME,
    Cancel: Kind.CANCEL,
    Kill: Kind.KILL,
    Purge: Kind.PURGE,
    AttemptPinned: Kind.ATTEMPT_PINNED,
    AttemptEntry: Kind.ATTEMPT_ENTRY,
    AttemptSuspended: Kind.ATTEMPT_SUSPENDED,
    AttemptCompleted: Kind.ATTEMPT_COMPLETED,
    AttemptFailed: Kind.ATTEMPT_FAILED,
}


def kind_of(command: InvocationCommand) -> Kind:
    """The table row of an invocation command (AnnounceLeader has none: it is not about one)."""
    if isinstance(command, TimerFired):
        return TIMER_KINDS[command.timer.kind]
    return KINDS[type(command)]


@dataclass(frozen=True, slots=True)
class Cell:
    handler: Handler
    to: frozenset[Status | None] = frozenset()  # statuses after the command; empty = unchanged
    code: int | None = None  # the answer of a rejection cell

    def allows(self, before: Status | None, after: Status | None) -> bool:
        return after in self.to if self.to else after == before


def go(handler: Handler, *to: Status | None) -> Cell:
    return Cell(handler, frozenset(to))


def no(code: int, advice: str) -> Cell:
    return Cell(reject(code, advice), code=code)


NOT_FOUND = None
SCHEDULED, RUNNING, BACKING_OFF = Status.SCHEDULED, Status.RUNNING, Status.BACKING_OFF
SUSPENDED, PAUSED, COMPLETED = Status.SUSPENDED, Status.PAUSED, Status.COMPLETED
IGNORE = Cell(ignore)
STALE = Cell(stale)
MISSING = no(404, "")  # the message names the id; not found needs no advice
FAILED_TO = (BACKING_OFF, PAUSED, COMPLETED)  # where a failed attempt (or a protocol error) leads
_attached = Cell(invoke.invoke_existing)
_killed = go(kill.kill_active, COMPLETED)
_canceled = go(cancel.cancel_active, RUNNING)
_resumed = go(resume.resume_stopped, RUNNING)
_not_purgeable = no(409, purge.NOT_COMPLETED)

# fmt: off
TABLE: dict[Kind, dict[Status | None, Cell]] = {
    Kind.INVOKE: {
        NOT_FOUND: go(invoke.invoke_new, RUNNING, SCHEDULED),
        SCHEDULED: _attached, RUNNING: _attached, BACKING_OFF: _attached,
        SUSPENDED: _attached, PAUSED: _attached, COMPLETED: _attached,
    },
    Kind.PAUSE: {
        NOT_FOUND: MISSING,
        SCHEDULED: no(409, pause.NOT_PAUSABLE),
        RUNNING: go(pause.pause_running, PAUSED),
        BACKING_OFF: go(pause.pause_backing_off, PAUSED),
        SUSPENDED: no(409, pause.NOT_PAUSABLE),
        PAUSED: Cell(pause.pause_paused),
        COMPLETED: no(409, pause.NOT_PAUSABLE),
    },
    Kind.RESUME: {
        NOT_FOUND: MISSING,
        SCHEDULED: no(425, resume.NOT_STARTED),
        RUNNING: Cell(resume.resume_running),
        BACKING_OFF: go(resume.resume_backing_off, RUNNING),
        SUSPENDED: _resumed,
        PAUSED: _resumed,
        COMPLETED: no(409, resume.COMPLETED),
    },
    Kind.CANCEL: {
        NOT_FOUND: MISSING,
        SCHEDULED: go(cancel.cancel_scheduled, COMPLETED),
        RUNNING: _canceled,
        BACKING_OFF: go(cancel.cancel_active, RUNNING, BACKING_OFF),  # repeated cancel: stays
        SUSPENDED: go(cancel.cancel_active, RUNNING, SUSPENDED),  # repeated cancel: stays
        PAUSED: _canceled,
        COMPLETED: no(409, cancel.ALREADY_COMPLETED),
    },
    Kind.KILL: {
        NOT_FOUND: MISSING,
        SCHEDULED: _killed, RUNNING: _killed, BACKING_OFF: _killed, SUSPENDED: _killed,
        PAUSED: _killed,
        COMPLETED: no(409, kill.ALREADY_COMPLETED),
    },
    Kind.PURGE: {
        NOT_FOUND: MISSING,
        SCHEDULED: _not_purgeable, RUNNING: _not_purgeable, BACKING_OFF: _not_purgeable,
        SUSPENDED: _not_purgeable, PAUSED: _not_purgeable,
        COMPLETED: go(purge.purge_completed, NOT_FOUND),
    },
    Kind.TIMER_START: {
        NOT_FOUND: IGNORE,
        SCHEDULED: go(timer_fired.fire_start, RUNNING),
        RUNNING: IGNORE, BACKING_OFF: IGNORE, SUSPENDED: IGNORE, PAUSED: IGNORE,
        COMPLETED: IGNORE,
    },
    Kind.TIMER_RETRY: {
        NOT_FOUND: IGNORE, SCHEDULED: IGNORE, RUNNING: IGNORE,
        BACKING_OFF: go(timer_fired.fire_retry, RUNNING, BACKING_OFF),  # late timer: stays
        SUSPENDED: IGNORE, PAUSED: IGNORE, COMPLETED: IGNORE,
    },
    Kind.TIMER_SLEEP: {
        NOT_FOUND: IGNORE, SCHEDULED: IGNORE,
        RUNNING: Cell(timer_fired.fire_sleep),
        BACKING_OFF: Cell(timer_fired.fire_sleep),
        SUSPENDED: go(timer_fired.fire_sleep, RUNNING, SUSPENDED),  # wakes if awaited
        PAUSED: Cell(timer_fired.fire_sleep),  # stores the completion, stays paused
        COMPLETED: IGNORE,
    },
    Kind.ATTEMPT_PINNED: {
        NOT_FOUND: STALE, SCHEDULED: STALE,
        RUNNING: Cell(effects.attempt_pinned),
        BACKING_OFF: STALE, SUSPENDED: STALE, PAUSED: STALE, COMPLETED: STALE,
    },
    Kind.ATTEMPT_ENTRY: {
        NOT_FOUND: STALE, SCHEDULED: STALE,
        RUNNING: go(effects.attempt_entry, RUNNING, *FAILED_TO),  # a gap fails the attempt
        BACKING_OFF: STALE, SUSPENDED: STALE, PAUSED: STALE, COMPLETED: STALE,
    },
    Kind.ATTEMPT_SUSPENDED: {
        NOT_FOUND: STALE, SCHEDULED: STALE,
        RUNNING: go(effects.attempt_suspended, SUSPENDED, RUNNING, *FAILED_TO),
        BACKING_OFF: STALE, SUSPENDED: STALE, PAUSED: STALE, COMPLETED: STALE,
    },
    Kind.ATTEMPT_COMPLETED: {
        NOT_FOUND: STALE, SCHEDULED: STALE,
        RUNNING: go(effects.attempt_completed, COMPLETED, RUNNING),  # stale: stays running
        BACKING_OFF: STALE, SUSPENDED: STALE, PAUSED: STALE, COMPLETED: STALE,
    },
    Kind.ATTEMPT_FAILED: {
        NOT_FOUND: STALE, SCHEDULED: STALE,
        RUNNING: go(failed.attempt_failed, *FAILED_TO, RUNNING),  # stale: stays running
        BACKING_OFF: STALE, SUSPENDED: STALE, PAUSED: STALE, COMPLETED: STALE,
    },
}
# fmt: on

STATUSES: tuple[Status | None, ...] = (NOT_FOUND, *Status)
