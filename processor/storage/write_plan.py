"""Planning a batch write: a folded batch becomes a few multi-row statements (the loop's side).

`plan_batch` turns one `BatchWrites` into a `WritePlan`: the SQL statements of its transaction,
each with its parameters already flattened, so that running it (`writer.execute_plan`, in the
writer thread) is almost only SQLite's own C code. All the Python work of a write (encoding views
and journal entries, finding each invocation's internal key, building the rows) happens here, on
the thread that applied the batch.

Why multi-row statements: Python's sqlite3 releases the GIL around every `sqlite3_step` and takes
it back after, so an `executemany` over a thousand rows asks for the GIL a thousand times. While
the event loop is busy applying the next batch, each of those requests waits for the switch
interval; measured, that tripled a batch's commit time and cancelled out any overlap. One
`INSERT ... SELECT * FROM (VALUES (...), (...), ...)` (or `UPDATE ... FROM (VALUES ...)`, or
`DELETE ... IN (...)`) of up to 1024 rows is one step, so a batch asks for the GIL about once per
table it writes. The last statement of a table is padded with all-zero rows up to a power of two
(every statement ignores them: key 0 is never used), so there are at most 11 distinct statements
per table, each prepared once and cached by the connection.

Every row of the journal, events and timers is keyed by its invocation's internal integer `key`
(schema version 2). `KeyCache` remembers `id -> (key, stored status)` for the rows the plans
wrote and the ids they looked up, including the ones without a row (`ABSENT`); the misses of a
plan cost one batched read on the loop's own read connection. A new invocation gets the next key
after the largest one in the file, as SQLite's own rowid choice would. An update sets `status`
(and so touches the status index) only when the status really changed. The cache only mirrors
what the file says, or will say once the batches in flight commit, so the state digest does not
depend on it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from itertools import chain
from typing import Any

import msgpack

from processor.storage.batch import BatchWrites
from processor.storage.view_codec import encode_view

_packb = msgpack.Packer(use_bin_type=True).pack

Entry = tuple[int, str]  # (key, stored status)
# Known to have no row (key 0 is never used): a purge written by a batch still in flight must not
# be undone by a lookup that reads the file before that batch commits.
ABSENT: Entry = (0, "")
# (SQL, parameters, many): flat parameters of one statement, or rows for `executemany`
Statement = tuple[str, Sequence[Any], bool]
# Looks up the stored (key, status) of the given ids; absent ids are simply missing.
KeyLookup = Callable[[list[str]], dict[str, Entry]]
MaxKey = Callable[[], int]  # the largest key in the file (0 when empty)

_FEW = 4  # rows written with the single-row statement (see `_add_rows`)
_CHUNK = 1024  # rows per statement at most
_chain = chain.from_iterable
_ZEROS = (0,) * (_CHUNK * 11)  # padding: up to a chunk of the widest row


# How many planned batches may be started and not yet committed while the next one is planned
# (the runner's pipeline; see `Runner.catch_up`). `KeyCache` is sized for it.
MAX_BATCHES_IN_FLIGHT = 8


class KeyCache:
    """A bounded map `invocation id -> (key, stored status)`, in least-recently-written order.

    Entries written by batches that have not committed yet must never be evicted (a miss for
    them would read the file, not find the row and insert it twice). Every plan moves the ids it
    writes (and adds the ids it was told are absent) to the end, and `trim` keeps at least
    `MAX_BATCHES_IN_FLIGHT + 1` times the most ids a plan has added or moved: enough for the
    plans in flight and the next one, the most the runner's pipeline ever has."""

    def __init__(self, capacity: int = 20_000) -> None:
        self.capacity = capacity
        self.entries: dict[str, Entry] = {}
        self.next_key = 0  # 0: not read from the file yet

    def clear(self) -> None:
        self.entries.clear()
        self.next_key = 0

    def trim(self, batch_ids: int) -> None:
        """Forget the least recently written entries once over capacity."""
        # `capacity // 2` entries stay after a trim: the plans in flight and this one
        self.capacity = max(self.capacity, 2 * (MAX_BATCHES_IN_FLIGHT + 1) * batch_ids)
        entries = self.entries
        if len(entries) > self.capacity:
            drop = len(entries) - self.capacity // 2
            for inv in [inv for inv, _ in zip(entries, range(drop), strict=False)]:
                del entries[inv]


class WritePlan:
    """The statements of one batch's transaction, in order, and the invocation rows it writes."""

    __slots__ = ("rows", "statements")

    def __init__(self) -> None:
        self.statements: list[Statement] = []
        self.rows = 0


class _Rows:
    """How rows of one kind are written: `multi` (with `{rows}` = `(marks),(marks),...`) for many
    rows at once, `single` (one row, the same parameters in the same order) for a few."""

    __slots__ = ("marks", "multi", "single", "width")

    def __init__(self, multi: str, marks: str, single: str) -> None:
        self.multi, self.marks, self.single = multi, marks, single
        self.width = marks.count("?")

    @functools.cache  # noqa: B019 - a handful of module-level instances, kept for good anyway
    def sql(self, n: int) -> str:
        return self.multi.format(rows=",".join([self.marks] * n))


def _add_rows(plan: WritePlan, kind: _Rows, rows: list[tuple[Any, ...]]) -> None:
    """Append the statements that write `rows`.

    Up to `_FEW` rows go through one `executemany` of the single-row statement: for the small
    batches of a live partition (written inline on the loop, where no GIL hand-off happens) that is
    cheaper than a multi-row statement, whose VALUES list SQLite materializes first. More rows take
    multi-row statements of at most `_CHUNK` rows; the last one is padded with all-zero rows up to
    a power of two, so there are few distinct statements. Every multi-row statement ignores a zero
    row (key 0 is never used; see `ABSENT`)."""
    if not rows:
        return
    out = plan.statements
    if len(rows) <= _FEW:
        out.append((kind.single, rows, True))
        return
    width = kind.width
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        size = 1 << (len(chunk) - 1).bit_length()
        params = list(_chain(chunk))
        params.extend(_ZEROS[: (size - len(chunk)) * width])
        out.append((kind.sql(size), params, False))


# Every multi-row form skips all-zero rows: an insert filters them out, an update or a delete
# finds no row with key 0. (`IS NOT 0` keeps a NULL key, which then fails NOT NULL as it would in
# the single-row form: the outcome must not depend on the batch size.)
def _insert(table: str, columns: str, verb: str = "INSERT") -> _Rows:
    marks = "(" + ",".join("?" * len(columns.split(","))) + ")"
    return _Rows(
        f"{verb} INTO {table} ({columns}) SELECT * FROM (VALUES {{rows}}) WHERE column1 IS NOT 0",
        marks,
        f"{verb} INTO {table} ({columns}) VALUES {marks}",
    )


_DELETE_BY_KEY = {
    table: _Rows(
        f"DELETE FROM {table} WHERE {column} IN ({{rows}})",
        "?",
        f"DELETE FROM {table} WHERE {column}=?",
    )
    for table, column in (
        ("journal", "inv_key"),
        ("events", "inv_key"),
        ("timers", "inv_key"),
        ("invocations", "key"),
    )
}
_INSERT_INVOCATIONS = _insert(
    "invocations",
    "key, id, service, handler, status, created_at, modified_at, pinned_deployment, "
    "completed_at, idempotency_key, view",
)
_UPDATE_MOVED = _Rows(
    "UPDATE invocations SET status=v.column2, modified_at=v.column3, "
    "pinned_deployment=v.column4, completed_at=v.column5, view=v.column6 "
    "FROM (VALUES {rows}) AS v WHERE invocations.key=v.column1",
    "(?,?,?,?,?,?)",
    "UPDATE invocations SET status=?2, modified_at=?3, pinned_deployment=?4, completed_at=?5, "
    "view=?6 WHERE key=?1",
)
# service, handler, created_at and idempotency_key never change for an id (a purge deletes the row
# before a new invoke can reuse it), and an update that keeps the status leaves it out: the indexes
# on those columns are left alone.
_UPDATE_KEPT = _Rows(
    "UPDATE invocations SET modified_at=v.column2, pinned_deployment=v.column3, "
    "completed_at=v.column4, view=v.column5 FROM (VALUES {rows}) AS v "
    "WHERE invocations.key=v.column1",
    "(?,?,?,?,?)",
    "UPDATE invocations SET modified_at=?2, pinned_deployment=?3, completed_at=?4, view=?5 "
    "WHERE key=?1",
)
# `(a, b, c) IN (VALUES ...)` would scan the whole timers table; through a subquery SQLite probes
# the primary key once per row.
_DELETE_TIMERS = _Rows(
    "DELETE FROM timers WHERE (inv_key, kind, key) IN "
    "(SELECT column1, column2, column3 FROM (VALUES {rows}))",
    "(?,?,?)",
    "DELETE FROM timers WHERE inv_key=? AND kind=? AND key=?",
)
_SET_TIMERS = _insert("timers", "inv_key, kind, key, invocation_id, fire_at", "INSERT OR REPLACE")
_INSERT_JOURNAL = _insert("journal", "inv_key, idx, invocation_id, entry, appended_at")
_SET_EVENTS = _insert("events", "inv_key, seq, invocation_id, kind, at, data", "INSERT OR REPLACE")


def _touched(w: BatchWrites) -> set[str]:
    ids = set(w.views)
    ids.update(w.purged, w.cleared_timers, w.timers, w.journal, w.events)
    return ids


def plan_batch(w: BatchWrites, keys: KeyCache, lookup: KeyLookup, max_key: MaxKey) -> WritePlan:
    """The statements that write `w` and its applied LSN; updates `keys` as if they committed.

    `w.absent` names ids the caller knows have no row (so no lookup is needed for them)."""
    plan = WritePlan()
    entries = keys.entries
    touched = _touched(w)
    for inv in w.absent:
        entries.setdefault(inv, ABSENT)
    unknown = [inv for inv in touched if inv not in entries]
    if unknown:
        found = lookup(unknown)
        for inv in unknown:
            entries[inv] = found.get(inv, ABSENT)
    # Every id this plan writes moves to the end of the cache (see `KeyCache`).
    for inv in touched:
        entries[inv] = entries.pop(inv)

    if w.purged:
        gone: list[tuple[Any, ...]] = []
        for inv in w.purged:
            key = entries[inv][0]
            if key:
                gone.append((key,))
                entries[inv] = ABSENT
        if gone:
            for table in ("journal", "events", "timers", "invocations"):
                _add_rows(plan, _DELETE_BY_KEY[table], gone)

    inserts: list[tuple[Any, ...]] = []
    moved: list[tuple[Any, ...]] = []
    kept: list[tuple[Any, ...]] = []
    for inv, v in w.views.items():
        if v is None:
            continue
        status = v.status._value_  # the plain str (`.value` is a slow property)
        blob = bytearray(encode_view(v))
        entry = entries[inv]
        if not entry[0]:
            if keys.next_key == 0:
                keys.next_key = max_key() + 1
            key = keys.next_key
            keys.next_key = key + 1
            inserts.append(
                (
                    key,
                    inv,
                    v.service,
                    v.handler,
                    status,
                    v.created_at,
                    v.modified_at,
                    v.pinned_deployment,
                    v.completed_at,
                    v.idempotency_key,
                    blob,
                )
            )
        else:
            key = entry[0]
            if entry[1] != status:
                moved.append(
                    (key, status, v.modified_at, v.pinned_deployment, v.completed_at, blob)
                )
            else:
                kept.append((key, v.modified_at, v.pinned_deployment, v.completed_at, blob))
        entries[inv] = (key, status)
    plan.rows = len(inserts) + len(moved) + len(kept)
    if inserts:
        _add_rows(plan, _INSERT_INVOCATIONS, inserts)
    if moved:
        _add_rows(plan, _UPDATE_MOVED, moved)
    if kept:
        _add_rows(plan, _UPDATE_KEPT, kept)

    def key_of(inv: str) -> int | None:
        return entries[inv][0] or None

    if w.cleared_timers:
        cleared = [(k,) for k in map(key_of, w.cleared_timers) if k is not None]
        _add_rows(plan, _DELETE_BY_KEY["timers"], cleared)
    if w.timers:
        deletes: list[tuple[Any, ...]] = []
        sets: list[tuple[Any, ...]] = []
        for inv, timers in w.timers.items():
            inv_key = key_of(inv)
            for (kind, timer_key), fire_at in timers.items():
                if fire_at is None:
                    if inv_key is not None:  # nothing stored to delete otherwise
                        deletes.append((inv_key, kind, timer_key))
                else:
                    sets.append((inv_key, kind, timer_key, inv, fire_at))
        if deletes:
            _add_rows(plan, _DELETE_TIMERS, deletes)
        if sets:
            _add_rows(plan, _SET_TIMERS, sets)
    if w.journal:
        _add_rows(plan, _INSERT_JOURNAL, list(_journal_rows(w, key_of)))
    if w.events:
        _add_rows(plan, _SET_EVENTS, list(_event_rows(w, key_of)))
    if w.leader_epoch is None:
        plan.statements.append(
            ("UPDATE partition SET applied_lsn=? WHERE id=0", [w.applied_lsn], False)
        )
    else:
        plan.statements.append(
            (
                "UPDATE partition SET applied_lsn=?, leader_epoch=? WHERE id=0",
                [w.applied_lsn, w.leader_epoch],
                False,
            )
        )
    keys.trim(len(touched) + len(w.absent))  # every id this plan added or moved
    return plan


def _journal_rows(w: BatchWrites, key_of: Callable[[str], int | None]) -> Iterable[tuple[Any, ...]]:
    for inv, rows in w.journal.items():
        key = key_of(inv)
        for idx, entry, at in rows:
            yield (key, idx, inv, bytearray(_packb(entry)), at)


def _event_rows(w: BatchWrites, key_of: Callable[[str], int | None]) -> Iterable[tuple[Any, ...]]:
    for inv, evs in w.events.items():
        key = key_of(inv)
        for seq, (kind, at, data) in evs.items():
            yield (key, seq, inv, kind, at, bytearray(_packb(data)))
