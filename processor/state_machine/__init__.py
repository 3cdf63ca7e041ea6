"""The pure state machine: `apply(view, command, ctx) -> Transition` (ARCHITECTURE.md §2).

Synchronous and deterministic: it reads only the invocation's stored view, the command and the
command's log metadata (`ApplyContext`: LSN, record timestamp). No I/O, clock, randomness, logging
or configuration. It never mutates the view it is given. A command that does not apply in the
current status is answered with a negative `Reply`, never with an exception: a command already in
the log must not be able to crash the partition. Which handler runs is decided by the table in
`transitions.py`.
"""

from __future__ import annotations

from processor.commands import AnnounceLeader, Command, TimerFired
from processor.state_machine.lifecycle.common import Handler
from processor.state_machine.transitions import KINDS, TABLE, TIMER_KINDS
from processor.state_machine.types import ApplyContext, Transition
from processor.status import InvocationView, Status

__all__ = ["apply"]

# The table flattened for dispatch: one dict lookup on the command's type, one on the status.
_Row = dict[Status | None, Handler]
_ROWS: dict[type, _Row] = {
    t: {status: cell.handler for status, cell in TABLE[kind].items()} for t, kind in KINDS.items()
}
_TIMER_ROWS = {
    timer: {status: cell.handler for status, cell in TABLE[kind].items()}
    for timer, kind in TIMER_KINDS.items()
}


def apply(view: InvocationView | None, command: Command, ctx: ApplyContext) -> Transition:
    """Apply `command` to `view` (the stored view of `command.invocation_id`, None if not found).

    AnnounceLeader concerns no invocation: it returns `Transition(view=None, leader_epoch=...)`.
    """
    row = _ROWS.get(type(command))
    if row is None:
        if isinstance(command, TimerFired):
            row = _TIMER_ROWS[command.timer.kind]
        elif isinstance(command, AnnounceLeader):
            return Transition(None, leader_epoch=command.epoch)
        else:  # not a command at all: a programming error, not data from the log
            raise TypeError(f"not a command: {command!r}")
    return row[None if view is None else view.status](view, command, ctx)
