"""The apply loop: log batch → load views → apply (pure) → one transaction → commit → actions.

The runner reads up to `batch_size` records after `applied_lsn`, decodes them, loads the views the
batch needs in one query (hot invocations come from a bounded LRU cache of live views), applies
every command in memory in log order (later commands of the batch see earlier ones), folds the
transitions into net writes and writes them together with the batch's last LSN in ONE transaction.
Only after COMMIT are the batch's actions handed to the sink, in log order, so no side effect ever
runs for a state that could be lost. Followers and replay pass no sink (actions are dropped).
While one batch's transaction runs in the store's writer (its writer process, or a thread), the
next batch is already being applied (`catch_up` pipelines the two).

A record that cannot be decoded or applied stops the runner with an error naming its LSN; the
records before it in the batch are committed first, and the record is never skipped. A failed batch
write is fatal too (the store refuses later writes): the runner must be rebuilt, which is what a
restart does (it resumes at `applied_lsn + 1`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import Protocol

import anyio

from processor.actions import Action
from processor.codec import CodecError, decode
from processor.commands import AnnounceLeader, Command
from processor.state_machine import apply
from processor.state_machine.fast import maker
from processor.state_machine.types import ApplyContext, Transition
from processor.status import InvocationView, Status
from processor.storage.batch import BatchWrites
from processor.storage.store import Store
from processor.storage.write_plan import MAX_BATCHES_IN_FLIGHT


class LogRecord(Protocol):
    @property
    def lsn(self) -> int: ...
    @property
    def timestamp_ms(self) -> int: ...
    @property
    def payload(self) -> bytes: ...


class LogReader(Protocol):
    """The part of `log.Log` the runner uses."""

    async def read_batch(self, from_lsn: int, max_records: int) -> Sequence[LogRecord]: ...
    def tail(self) -> int: ...
    async def wait_beyond(self, lsn: int) -> int: ...


class ActionSink(Protocol):
    async def __call__(self, actions: list[Action]) -> None: ...


# (record, command, view before, transition) for every applied command; used by `replay --trace`.
CommandHook = Callable[[LogRecord, Command, InvocationView | None, Transition], None]
BatchHook = Callable[[int, float], None]  # (records in the batch, seconds its transaction took)


_ApplyContext = maker(ApplyContext)  # one per command: the fast constructor


class _GcPaused:
    """Pauses the cyclic GC for one batch, from reading it to its commit (in `catch_up`: for one
    turn of the pipeline, preparing the next batch while earlier ones commit).

    A batch allocates tens of thousands of objects (commands, transitions, views, rows, actions)
    that live until the batch is written and then die by reference counting. With the default
    threshold (700 net allocations) the collector ran dozens of times per batch over objects that
    were all still alive, promoting them, and every tenth time over the whole view cache too:
    ~10% of the apply path's CPU. Paused for the batch, its objects are gone before the collector
    runs again, so it only ever sees the few that stay (views entering the cache). Other tasks
    allocate meanwhile too; their garbage waits at most one batch. Concurrent runners (several
    partitions) nest safely: only the one that disabled the collector enables it again.
    """

    __slots__ = ("enabled",)

    def __enter__(self) -> None:
        self.enabled = gc.isenabled()
        if self.enabled:
            gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            gc.enable()


_gc_paused = _GcPaused


# The interpreter's GIL switch interval for processes that run a runner (the daemon, replay, the
# apply benchmark): see `tune_switch_interval`.
SWITCH_INTERVAL_S = 0.0002


def tune_switch_interval() -> None:
    """Let a thread that finished a SQLite statement have the GIL back within 0.2 ms (default 5).

    `catch_up` overlaps batch N's transaction with applying batch N+1 (the loop's thread). In a
    store without a writer process (`Store.open(writer_process=False)`), the writer thread needs
    the GIL back after each of its statements (about one per table a
    batch writes, see `storage.write_plan`), and while the loop is busy it waits for the switch
    interval to force a hand-over. At the default 5 ms those waits made a 1000-command commit
    take ~45 ms instead of ~13 and the overlap gained nothing; at 0.2 ms the loop barely waits
    for commits (apply bench, same session: ~18k -> ~25k commands/s). The daemon's end-to-end
    figures are the same either way. The writer process has a GIL of its own, but the log's fsync
    thread and the store's reader still hand the GIL over. It is a process-wide setting, so the
    entry points call this, not the runner."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)


class RunnerError(RuntimeError):
    """The partition cannot continue (undecodable record, log behind the store, failed write)."""


class ViewCache:
    """A bounded LRU of live (not completed) views, so hot invocations skip SQLite."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._views: OrderedDict[str, InvocationView] = OrderedDict()

    def get(self, invocation_id: str) -> InvocationView | None:
        return self._views.get(invocation_id)

    def __contains__(self, invocation_id: str) -> bool:
        return invocation_id in self._views

    def __len__(self) -> int:
        return len(self._views)

    def update(self, views: dict[str, InvocationView | None]) -> None:
        cache = self._views
        for inv, view in views.items():
            if view is None or view.status is Status.COMPLETED:
                cache.pop(inv, None)
            else:
                cache[inv] = view
                cache.move_to_end(inv)
        while len(cache) > self.capacity:
            cache.popitem(last=False)


# The most records in batches being written while the next is applied, beyond the first one: big
# batches (the start-up catch-up's) go one at a time, as their memory would add up otherwise.
MAX_RECORDS_IN_FLIGHT = 4000

# The most records a batch takes once the runner has caught up with the log's start-up tail: the
# commit-latency / throughput trade-off. Smaller batches commit sooner (replies wait for COMMIT)
# but fold fewer writes of one invocation into one row. On the apply benchmark's mixed workload
# (2 vCPUs, writer process) a batch of 300 commits in ~2.5 ms (p99 ~4-5 ms) at 60-70k commands/s,
# against ~6 ms (p99 9-11 ms) at 1,000 for ~10% more throughput; see bench/README.md.
LIVE_BATCH_SIZE = 300


class Runner:
    def __init__(
        self,
        log: LogReader,
        store: Store,
        *,
        sink: ActionSink | None = None,
        batch_size: int = LIVE_BATCH_SIZE,
        cache_size: int = 10_000,
        startup_batch_size: int = 4000,
        until_lsn: int | None = None,
        on_batch: BatchHook | None = None,
        on_command: CommandHook | None = None,
        log_name: str = "the log",
    ) -> None:
        self.log = log
        self.store = store
        self.sink = sink
        self.batch_size = batch_size
        self.startup_batch_size = startup_batch_size
        self.until_lsn = until_lsn
        self.on_batch = on_batch
        self.on_command = on_command
        self.log_name = log_name
        self.cache = ViewCache(cache_size)
        self.applied_lsn = 0
        self.leader_epoch = 0
        self.records_applied = 0
        self._started = False
        self._failure: BaseException | None = None
        self._progress = anyio.Event()
        # The views of the batch being written while the next one is prepared (see `catch_up`).
        self._overlay: dict[str, InvocationView | None] | None = None

    async def start(self) -> None:
        """Load `applied_lsn` from the store and check it against the log (idempotent)."""
        if self._started:
            return
        row = await self.store.partition()
        tail = self.log.tail()
        if row.applied_lsn > tail:
            raise RunnerError(
                f"the state store {self.store.path} has applied up to LSN {row.applied_lsn}, but "
                f"{self.log_name} ends at LSN {tail}: the log went backwards (restored from an "
                "older copy or truncated?). Restore the log, or delete the state store to rebuild "
                "it from the log."
            )
        self.applied_lsn = row.applied_lsn
        self.leader_epoch = row.leader_epoch
        self._started = True

    # --- waiting ---------------------------------------------------------------------------------

    async def wait_applied(self, lsn: int) -> None:
        """Return once `applied_lsn >= lsn`; raise RunnerError if the runner stopped."""
        while self.applied_lsn < lsn:
            if self._failure is not None:
                raise RunnerError(f"the partition's runner stopped: {self._failure}")
            await self._progress.wait()

    def _notify(self) -> None:
        event, self._progress = self._progress, anyio.Event()
        event.set()

    def _fail(self, exc: BaseException) -> None:
        self._failure = exc
        self._notify()

    # --- the loop --------------------------------------------------------------------------------

    def _limit(self) -> int:
        limit = self.log.tail()
        return limit if self.until_lsn is None else min(limit, self.until_lsn)

    async def catch_up(self) -> int:
        """Apply every record up to the log's current tail (or `until_lsn`); returns applied_lsn.

        Pipelined: the next batch is read, applied and planned on this thread while the batches
        before it are written by the store's writer process (or writer thread: mostly in SQLite's
        C code, without the GIL), and is queued behind them. Up to `MAX_BATCHES_IN_FLIGHT` batches
        (and `MAX_RECORDS_IN_FLIGHT` records beyond the oldest) may wait for their COMMIT; the
        oldest is awaited when there are more, and every batch's actions go out in log order and
        only after its COMMIT (committed batches are finished as soon as the loop sees them). The
        depth is there for the writer's checkpoints: a checkpoint's fsyncs take ~40 ms here, every
        ~70 batches of 300, and meanwhile the loop goes on applying instead of waiting (with one
        batch in flight, those waits cost ~10% of the throughput). A new batch sees the views of the
        batches in flight through `_overlay` (the cache is updated only as they commit). If a write
        fails, the store refuses every batch queued behind it, so no batch ever commits behind a
        failed one. With a writer thread this needs a short GIL switch interval to pay off: see
        `tune_switch_interval`. Small batches usually commit inline on the loop (see
        `Store.start_write`), and then nothing overlaps."""
        await self.start()
        try:
            await self._catch_up()
        except BaseException as exc:
            if not isinstance(exc, anyio.get_cancelled_exc_class()):
                self._fail(exc)
            raise
        return self.applied_lsn

    async def _catch_up(self) -> None:
        # Being written, oldest first, while the next batch is prepared: at most
        # `MAX_BATCHES_IN_FLIGHT`.
        inflight: deque[_Batch] = deque()
        try:
            while True:
                # Collections run between iterations only (see `_GcPaused`).
                with _gc_paused():
                    while inflight and _committed(inflight[0]):
                        # Already committed (a small batch is written inline, or the writer
                        # was quick): its replies go out now, not after the next batch.
                        await self._finish_batch(inflight.popleft())
                    last = inflight[-1] if inflight else None
                    after = self.applied_lsn if last is None else last.last_lsn
                    batch = None
                    if after < self._limit() and (last is None or last.stop is None):
                        self._overlay = _overlay_of(inflight)
                        try:
                            batch = await self._prepare(after)
                        except Exception:
                            # The batches in flight may well commit: finish them (applied_lsn,
                            # waiters, actions) before stopping; a write error of theirs wins.
                            while inflight:
                                await self._finish(inflight.popleft())
                            raise
                        finally:
                            self._overlay = None
                        if batch is not None and batch.applied:
                            if (
                                last is not None
                                and last.commit is not None
                                and not last.commit.done()
                                and self.store.commits_inline_when_idle(batch.writes)
                            ):
                                # A small batch commits on the loop only while the writer is
                                # idle: queued behind the ones in flight, it would go to the
                                # writer, and so would every small batch after it.
                                await asyncio.wait([last.commit])
                            batch.commit = self.store.start_write(batch.writes)
                            inflight.append(batch)
                    # Nothing more to prepare: finish them all; else what exceeds the depth.
                    if batch is None or not batch.applied:
                        while inflight:
                            await self._finish_batch(inflight.popleft())
                    while len(inflight) > MAX_BATCHES_IN_FLIGHT or (
                        len(inflight) > 1
                        and sum(b.applied for b in inflight) > MAX_RECORDS_IN_FLIGHT
                    ):
                        await self._finish_batch(inflight.popleft())
                if batch is None:
                    return
                if not batch.applied:
                    if batch.stop is not None:
                        raise batch.stop
                    return
        finally:
            for queued in inflight:
                if queued.commit is not None:
                    # Queued behind a batch that failed or was cancelled: it is refused or
                    # commits; either way the store stays consistent, and this runner is stopping.
                    with anyio.CancelScope(shield=True), contextlib.suppress(BaseException):
                        await queued.commit

    async def _finish_batch(self, batch: _Batch) -> None:
        """`_finish`, then stop at the record the batch could not apply, if any."""
        await self._finish(batch)
        if batch.stop is not None:
            raise batch.stop

    async def run(self) -> None:
        """Apply forever, sleeping on the log's tail notification between batches.

        The records already in the log when it starts (a restart's tail, or a whole rebuild) are
        applied in batches of `startup_batch_size`: nobody is waiting on their replies, and
        bigger batches fold more writes of one invocation into one row (replay's reason, too).
        Then batches of at most `batch_size` (the latency of new commands' replies)."""
        await self.start()
        if self.startup_batch_size > self.batch_size:
            live_batch_size, self.batch_size = self.batch_size, self.startup_batch_size
            try:
                await self.catch_up()
            finally:
                self.batch_size = live_batch_size
        while True:
            await self.catch_up()
            if self.until_lsn is not None and self.applied_lsn >= self.until_lsn:
                return
            await self.log.wait_beyond(self.applied_lsn)

    async def step(self) -> int:
        """Read, apply and commit one batch, alone; returns the number of records applied.

        `catch_up` is the pipelined loop; this is one batch of it with nothing overlapping (tests
        and tools that want to stop between batches)."""
        await self.start()
        try:
            with _gc_paused():
                return await self._step()
        except BaseException as exc:
            if not isinstance(exc, anyio.get_cancelled_exc_class()):
                self._fail(exc)
            raise

    async def _step(self) -> int:
        batch = await self._prepare(self.applied_lsn)
        if batch is None:
            return 0
        if batch.applied:
            batch.commit = self.store.start_write(batch.writes)
            await self._finish(batch)
        if batch.stop is not None:
            raise batch.stop
        return batch.applied

    async def _prepare(self, after_lsn: int) -> _Batch | None:
        """Read the records after `after_lsn`, apply them in memory and fold their writes."""
        max_records = self.batch_size
        if self.until_lsn is not None:
            max_records = min(max_records, self.until_lsn - after_lsn)
        if max_records <= 0:
            return None
        records = list(await self.log.read_batch(after_lsn + 1, max_records))
        if not records:
            return None
        commands: list[Command] = []
        stop: BaseException | None = None
        views: dict[str, InvocationView | None] = {}
        missing: list[str] = []
        for rec in records:
            try:
                commands.append(decode(rec.payload, rec.lsn))
            except CodecError as exc:
                stop = RunnerError(f"partition stopped: {exc}")
                break
        cache = self.cache
        overlay = self._overlay
        for cmd in commands:
            if type(cmd) is not AnnounceLeader:
                inv = cmd.invocation_id  # type: ignore[union-attr]
                if inv not in views:
                    if overlay is not None and inv in overlay:
                        views[inv] = overlay[inv]
                        continue
                    view = cache.get(inv)
                    views[inv] = view
                    if view is None:
                        missing.append(inv)
        loaded = self.store.load_views_now(missing) if missing else {}
        views.update(loaded)
        batch = self._apply(records, commands, views, stop, after_lsn)
        # Not in the store when the batch began: the writer need not look these up.
        batch.writes.absent.update(inv for inv in missing if inv not in loaded)
        return batch

    def _apply(
        self,
        records: list[LogRecord],
        commands: list[Command],
        views: dict[str, InvocationView | None],
        stop: BaseException | None,
        after_lsn: int,
    ) -> _Batch:
        writes = BatchWrites()
        actions: list[Action] = []
        hook = self.on_command
        applied = 0
        for rec, cmd in zip(records, commands, strict=False):
            inv = "" if type(cmd) is AnnounceLeader else cmd.invocation_id  # type: ignore[union-attr]
            before = views.get(inv)
            try:
                t = apply(before, cmd, _ApplyContext(rec.lsn, rec.timestamp_ms))
            except Exception as exc:
                stop = RunnerError(
                    f"partition stopped: applying the record at LSN {rec.lsn} "
                    f"({type(cmd).__name__}) failed: {exc!r}"
                )
                break
            if inv:
                if t.deleted:
                    views[inv] = None
                elif t.changed:
                    views[inv] = t.view
            writes.add(inv, t)
            if t.actions:
                actions.extend(t.actions)
            if hook is not None:
                hook(rec, cmd, before, t)
            applied += 1
        last_lsn = records[applied - 1].lsn if applied else after_lsn
        writes.applied_lsn = last_lsn
        return _Batch(applied, last_lsn, writes, views, actions, stop)

    async def _finish(self, batch: _Batch) -> None:
        """COMMIT → applied_lsn and cache → waiters → sink, for one batch, in that order."""
        assert batch.commit is not None
        # Shielded: the transaction commits or fails in the writer whatever happens here;
        # a cancelled caller must not leave applied_lsn and the cache behind the store.
        with anyio.CancelScope(shield=True):
            seconds = await batch.commit  # raises the write's error: fatal for this runner
        self.cache.update(batch.views)
        self.applied_lsn = batch.last_lsn
        if batch.writes.leader_epoch is not None:
            self.leader_epoch = batch.writes.leader_epoch
        self.records_applied += batch.applied
        self._notify()
        if self.on_batch is not None:
            self.on_batch(batch.applied, seconds)
        if self.sink is not None and batch.actions:
            await self.sink(batch.actions)


class _Batch:
    __slots__ = (
        "actions",
        "applied",
        "commit",
        "last_lsn",
        "stop",
        "views",
        "writes",
    )

    def __init__(
        self,
        applied: int,
        last_lsn: int,
        writes: BatchWrites,
        views: dict[str, InvocationView | None],
        actions: list[Action],
        stop: BaseException | None,
    ) -> None:
        self.applied = applied
        self.last_lsn = last_lsn
        self.writes = writes
        self.views = views
        self.actions = actions
        self.stop = stop
        self.commit: asyncio.Future[float] | None = None


async def drop_actions(actions: list[Action]) -> None:
    """A sink for followers and replay: actions are not executed."""


def _committed(batch: _Batch) -> bool:
    return batch.commit is not None and batch.commit.done()


def _overlay_of(inflight: deque[_Batch]) -> dict[str, InvocationView | None] | None:
    """The views the batches in flight leave behind (the newest wins): what the next batch must
    see, since the cache learns them only when they commit."""
    if not inflight:
        return None
    if len(inflight) == 1:
        return inflight[0].views
    merged: dict[str, InvocationView | None] = {}
    for batch in inflight:
        merged.update(batch.views)
    return merged
