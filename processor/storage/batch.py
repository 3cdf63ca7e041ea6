"""Folding a batch of `Transition`s into the net writes of one SQLite transaction.

Several commands of one batch may touch the same invocation, so the fold keeps only the net effect
per row (the last view, the last version of an event seq, the last state of a timer), which makes
the written state independent of how the log was cut into batches. Within one transition the timer
writes apply in the order: `clear_timers`, then `timers_deleted`, then `timers_set`. A purge drops
what the batch had pending for that invocation and deletes its stored rows first, so a purge
followed by a new invoke of the same id in the same batch writes only the new invocation.
"""

from __future__ import annotations

from typing import Any

from processor.state_machine.types import Transition
from processor.status import InvocationView

# (invocation_id, idx) -> (entry, appended_at)
JournalRows = dict[str, list[tuple[int, dict[str, Any], int]]]


class BatchWrites:
    __slots__ = (
        "absent",
        "applied_lsn",
        "cleared_timers",
        "events",
        "journal",
        "leader_epoch",
        "purged",
        "timers",
        "views",
    )

    def __init__(self, applied_lsn: int = 0, leader_epoch: int | None = None) -> None:
        self.applied_lsn = applied_lsn
        self.leader_epoch = leader_epoch
        self.views: dict[str, InvocationView | None] = {}  # None = purged
        self.purged: set[str] = set()
        self.journal: JournalRows = {}
        # invocation -> seq -> (kind, at, data)
        self.events: dict[str, dict[int, tuple[str, int, dict[str, Any]]]] = {}
        # invocation -> (kind, key) -> fire_at, or None to delete
        self.timers: dict[str, dict[tuple[str, int], int | None]] = {}
        self.cleared_timers: set[str] = set()
        # Ids the caller found to have no stored row when the batch began (a hint for the
        # writer, which then need not look them up; it changes nothing that is written).
        self.absent: set[str] = set()

    def add(self, invocation_id: str, t: Transition) -> None:
        """Fold one transition of `invocation_id` (in log order) into the batch."""
        if t.leader_epoch is not None:
            self.leader_epoch = t.leader_epoch
        if t.deleted:
            self.views[invocation_id] = None
            self.purged.add(invocation_id)
            self.journal.pop(invocation_id, None)
            self.events.pop(invocation_id, None)
            self.timers.pop(invocation_id, None)
            self.cleared_timers.discard(invocation_id)
        elif t.changed and t.view is not None:
            self.views[invocation_id] = t.view
        if t.journal:
            rows = self.journal.get(invocation_id)
            if rows is None:
                rows = self.journal[invocation_id] = []
            for j in t.journal:
                rows.append((j.index, j.entry, j.appended_at))
        if t.events:
            evs = self.events.get(invocation_id)
            if evs is None:
                evs = self.events[invocation_id] = {}
            for e in t.events:
                evs[e.seq] = (e.kind, e.at, e.data)
        if t.clear_timers or t.timers_deleted or t.timers_set:
            timers = self.timers.get(invocation_id)
            if timers is None or t.clear_timers:
                timers = self.timers[invocation_id] = {}
            if t.clear_timers:
                self.cleared_timers.add(invocation_id)
            for k in t.timers_deleted:
                timers[(k.kind._value_, k.key)] = None
            for k, fire_at in t.timers_set:
                timers[(k.kind._value_, k.key)] = fire_at

    def __len__(self) -> int:
        return len(self.views)
