"""What one application of a command produces: `Transition` (new view + writes + actions).

The runner folds transitions into one SQLite transaction per batch; the state machine itself never
touches storage. `ApplyContext` carries the only facts a command may read besides stored state: its
LSN and its log timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from processor.actions import Action
from processor.commands import TimerKey
from processor.status import InvocationView


@dataclass(frozen=True, slots=True)
class ApplyContext:
    lsn: int
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class Event:
    """One line of an invocation's event list (SPEC §4): 'created', 'transient-error', 'paused',
    'resumed', 'cancel-requested', 'killed', 'completed', ...; `data` holds the kind's fields."""

    seq: int
    kind: str
    at: int
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class JournalAppend:
    index: int
    entry: dict[str, Any]  # as sent by the deployment or written by the state machine
    appended_at: int


@dataclass(slots=True)
class Transition:
    """The outcome of applying one command.

    `view` is the invocation after the command (None when it does not exist, e.g. after purge or for
    an unknown id). `changed` says whether the view must be written; `deleted` that the invocation
    and everything it owns (journal, events, timers) must be removed. `leader_epoch` is set by
    AnnounceLeader only.
    """

    view: InvocationView | None
    changed: bool = False
    deleted: bool = False
    journal: list[JournalAppend] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    timers_set: list[tuple[TimerKey, int]] = field(default_factory=list)
    timers_deleted: list[TimerKey] = field(default_factory=list)
    clear_timers: bool = False
    actions: list[Action] = field(default_factory=list)
    leader_epoch: int | None = None
