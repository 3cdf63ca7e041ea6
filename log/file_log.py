"""FileLog: the durable log - segment files, group commit, the fsync policy, tail notification.

Group commit, pipelined. `append` assigns the LSN and timestamp at once (so LSN order is call
order), queues the record and awaits the future of the current group. The group's flush runs as
a plain callback behind the tasks that are ready at that moment (typically the appenders the last
fsync woke up), so they all join it; it frames the records and hands them to the OS with one
`os.write` on the event loop (a page-cache copy). Under `fsync=always` the writer thread then
runs `fdatasync`; while it is in flight, later groups are still written, and as soon as it
returns the next `fdatasync` starts, covering all of them. A group is acknowledged (its future
resolved, the tail moved) only by an `fdatasync` that started after the group's write returned.
A big wave of appenders does not wait for its last member: once `eager_records` are queued and
the disk is idle, they are written and their fsync overlaps the rest of the wave.

Inline fsync (`inline_fsync_under_us`, off unless asked for; the daemon asks). Handing an fsync
to the thread costs two thread wake-ups and a GIL hand-over each way, which on a virtual machine is
several times the `fdatasync` itself when the disk is fast (~0.1 ms): most of an append's latency
and a large part of the loop's CPU. So while the moving average of recent fsync durations is under
the threshold, `fdatasync` runs right on the event loop at the end of the group's flush (the way
Redis' `appendfsync always` does); as soon as the disk turns slow (the average goes over it) the
thread takes over again, and its measurements bring the log back once the disk is fast again. It
starts in the thread, so a slow disk never blocks the loop for more than one slow fsync.

Rolling to a new segment waits for the fsync in flight, fsyncs the full segment and creates the
next one in the writer thread; appends queue up meanwhile. `interval:<ms>` and `never`
acknowledge at the write; `interval` fsyncs dirty data within the interval in the writer thread.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from log.base import Clock, LogBase
from log.errors import LogClosed, LogError, LogFailed, LogLocked, LogReadOnly
from log.policy import FsyncPolicy, parse_fsync_policy, parse_size
from log.protocol import Lsn, Record
from log.reader import SegmentReader
from log.recovery import recover
from log.segment import (
    HEADER_SIZE,
    MAX_PAYLOAD,
    Pending,
    Segment,
    create_segment,
    delete_segments,
    encode_frames,
)
from log.writer_thread import WriterThread

DEFAULT_SEGMENT_SIZE = 64 << 20
Group = asyncio.Future[None]  # what every append of one group-commit batch awaits


class FileLog(LogBase):
    """A log stored as segment files in one directory (see the `log.protocol` contract).

    `fsync_count` counts the fsyncs issued (tests use it to see group commit batch). `sync_fn`
    replaces `os.fdatasync` (tests inject failures). `readonly=True` neither locks nor modifies
    anything: a torn tail is left in place and only reported in `torn_tail_bytes` (beside a
    running writer it is usually a record being written), so it works beside a running writer.
    """

    # While no fsync is in flight, an append that finds this many records queued writes them at
    # once rather than waiting for the rest of its wave (their fsync overlaps the wave's tail).
    eager_records = 256
    # Weight of the newest fsync duration in the moving average that picks inline vs the thread.
    fsync_average_weight = 0.2

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        fsync: str | FsyncPolicy = "always",
        segment_size: int | str = DEFAULT_SEGMENT_SIZE,
        clock: Clock | None = None,
        readonly: bool = False,
        sync_fn: Callable[[int], None] = os.fdatasync,
        inline_fsync_under_us: int = 0,
    ) -> None:
        super().__init__(clock)
        self.directory = Path(directory)
        self.policy = parse_fsync_policy(fsync)
        self.segment_size = parse_size(segment_size)
        self.readonly = readonly
        self.fsync_count = 0
        self._sync_fn = sync_fn
        self._inline_under_s = inline_fsync_under_us / 1e6
        # Start above the threshold: the first fsyncs run in the thread and are measured there.
        self._fsync_average_s = 2 * self._inline_under_s
        self.inline_fsyncs = 0  # of fsync_count, how many ran on the loop
        self._lock_fd: int | None = None
        if readonly:
            if not self.directory.is_dir():
                raise LogError(f"no log directory at {self.directory}")
        else:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock_fd = _lock(self.directory)
        try:
            recovered = recover(self.directory, writable=not readonly)
            self._segments = recovered.segments
            if not self._segments and not readonly:
                self._segments.append(create_segment(self.directory, 1))
        except BaseException:
            self._release_lock()
            raise
        self._firsts = [s.first_lsn for s in self._segments]
        self._reader = SegmentReader(self._segments, self._firsts)
        self._last_ts = recovered.last_ts
        # bytes of a torn tail found on open: cut (with a warning) or, read-only, left alone
        self.torn_tail_bytes = recovered.ignored_tail
        self._first = self._segments[0].first_lsn if self._segments else 1
        self._tail = self._segments[-1].last_lsn if self._segments else 0
        self._next_lsn = self._tail + 1
        # writer side (see the module docstring)
        self._refuse = readonly  # appends must go through _check_writable (closing, failed, ...)
        self._loop: asyncio.AbstractEventLoop | None = None  # bound at the first append
        self._thread: WriterThread | None = None  # fsyncs and rolls
        self._pending: list[Pending] = []  # queued, not yet written
        self._pending_bytes = 0
        self._group: Group | None = None  # what the queued appends await
        self._written_lsn: Lsn = self._tail  # the last LSN handed to the OS
        self._synced_lsn: Lsn = self._tail  # the last LSN covered by a finished fdatasync
        self._unsynced: deque[tuple[Lsn, Group]] = deque()  # written, awaiting fsync
        self._syncing = False  # an fdatasync is in flight
        self._rolling: asyncio.Task[None] | None = None
        self._quiet: list[asyncio.Future[None]] = []  # woken when no fsync is in flight
        self._rescued: list[asyncio.Future[None]] = []  # see _rescue
        self._sync_timer: asyncio.TimerHandle | None = None  # interval policy
        self._closing = False
        self._failure: BaseException | None = None

    # --- appends ----------------------------------------------------------------------------
    def _check_writable(self) -> None:
        if self._closing or self._closed:
            raise LogClosed("the log is closed")
        if self.readonly:
            raise LogReadOnly(f"the log in {self.directory} was opened read-only")
        if self._failure is not None:
            raise LogFailed(
                f"an earlier write to the log in {self.directory} failed "
                f"({self._failure!r}); reopen the log"
            ) from self._failure

    async def append(self, payload: bytes) -> Lsn:
        # The hot path: no helper calls (every microsecond here is paid per record).
        if self._refuse:
            self._check_writable()
        if len(payload) > MAX_PAYLOAD:
            raise ValueError(f"a record payload is at most {MAX_PAYLOAD} bytes, got {len(payload)}")
        lsn = self._next_lsn
        self._next_lsn = lsn + 1
        now = self._clock()
        if now > self._last_ts:
            self._last_ts = now
        pending = self._pending
        pending.append((lsn, self._last_ts, payload))
        self._pending_bytes += HEADER_SIZE + len(payload)
        group = self._group
        if group is None:
            group = self._open_group()
        elif len(pending) >= self.eager_records and not self._syncing:
            self._flush()
        try:
            await group
        except asyncio.CancelledError:
            if not _orphaned(group):
                raise
            await self._rescue(lsn)
        return lsn

    async def append_batch(self, payloads: Sequence[bytes]) -> list[Lsn]:
        if self._refuse:
            self._check_writable()
        if not payloads:
            return []
        if any(len(p) > MAX_PAYLOAD for p in payloads):
            raise ValueError(f"a record payload is at most {MAX_PAYLOAD} bytes")
        first = self._next_lsn
        self._next_lsn = first + len(payloads)
        now = self._clock()
        if now > self._last_ts:
            self._last_ts = now
        ts = self._last_ts
        self._pending.extend([(first + i, ts, p) for i, p in enumerate(payloads)])
        self._pending_bytes += HEADER_SIZE * len(payloads) + sum(map(len, payloads))
        group = self._group or self._open_group()
        try:
            await group
        except asyncio.CancelledError:
            if not _orphaned(group):
                raise
            await self._rescue(first + len(payloads) - 1)
        return list(range(first, first + len(payloads)))

    def _open_group(self) -> Group:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
            self._thread = WriterThread(loop, f"log-{self.directory.name}")
        group = self._group = loop.create_future()
        loop.call_soon(self._flush)
        return group

    def _flush(self) -> None:
        """Write the queued records to the OS (on the loop: it is a page-cache copy)."""
        if not self._pending or self._rolling is not None or self._failure is not None:
            return
        batch, group, nbytes = self._pending, self._group, self._pending_bytes
        self._pending, self._group, self._pending_bytes = [], None, 0
        assert group is not None and self._loop is not None
        if self._segments[-1].size + nbytes > self.segment_size:
            self._rolling = self._loop.create_task(self._roll_and_write(batch, group))
            return
        try:
            self._write(batch, 0, len(batch))
        except Exception as exc:
            self._fail(exc, group)
            return
        self._written(batch[-1][0], group)

    def _write(self, batch: list[Pending], start: int, end: int) -> None:
        seg = self._segments[-1]
        chunk = batch if start == 0 and end == len(batch) else batch[start:end]
        data = b"".join(encode_frames(seg, chunk, seg.size))
        done = os.write(seg.fd, data)
        while done < len(data):
            done += os.write(seg.fd, memoryview(data)[done:])
        seg.size += len(data)
        seg.last_lsn = self._written_lsn = chunk[-1][0]

    def _written(self, last: Lsn, group: Group) -> None:
        """Records up to `last` are written: acknowledge them now, or after an fsync."""
        if self.policy.kind == "always":
            self._unsynced.append((last, group))
            if not self._syncing:
                self._start_sync()
            return
        self._advance_tail(last)
        if not group.done():  # cancelled: see _rescue
            group.set_result(None)
        if not self._syncing:
            self._arm_interval()

    def _start_sync(self) -> None:
        assert self._thread is not None
        self._syncing = True
        fd, upto = self._segments[-1].fd, self._written_lsn
        if self._fsync_average_s < self._inline_under_s:
            self.inline_fsyncs += 1
            try:
                self._sync(fd, upto)
            except BaseException as exc:  # as from the thread: the log fails
                self._synced(upto, exc)
                return
            self._synced(upto, None)  # nothing was written meanwhile: it does not recurse
            return
        self._thread.submit(self._synced, self._sync, fd, upto)

    def _sync(self, fd: int, upto: Lsn) -> Lsn:  # in the writer thread, or inline on the loop
        began = time.perf_counter()
        self._sync_fn(fd)
        took = time.perf_counter() - began
        w = self.fsync_average_weight
        self._fsync_average_s = (1 - w) * self._fsync_average_s + w * took
        self.fsync_count += 1
        return upto

    def _synced(self, upto: Lsn, error: BaseException | None) -> None:
        self._syncing = False
        if error is not None:
            self._fail(error, None)
        elif self._failure is None:
            self._synced_lsn = upto
            unsynced = self._unsynced
            if unsynced:
                if upto > self._tail:
                    self._advance_tail(upto)
                while unsynced and unsynced[0][0] <= upto:
                    group = unsynced.popleft()[1]
                    if not group.done():  # cancelled: see _rescue
                        group.set_result(None)
            if self._written_lsn > upto:
                if self.policy.kind == "always":
                    self._start_sync()
                    return
                self._arm_interval()
        quiet, self._quiet = self._quiet, []
        for fut in quiet:
            if not fut.done():
                fut.set_result(None)

    def _arm_interval(self) -> None:
        if self.policy.kind == "interval" and self._sync_timer is None:
            assert self._loop is not None
            delay = self.policy.interval_ms / 1000
            self._sync_timer = self._loop.call_later(delay, self._interval_due)

    def _interval_due(self) -> None:
        self._sync_timer = None
        if self._syncing or self._rolling is not None or self._failure is not None:
            return  # the fsync in flight re-arms the timer; a roll fsyncs the sealed segment
        if self._synced_lsn < self._written_lsn:
            self._start_sync()

    async def _quiesce(self) -> None:
        """Wait until no fsync is in flight (under `always`: everything written is durable)."""
        while self._syncing:
            assert self._loop is not None
            fut: asyncio.Future[None] = self._loop.create_future()
            self._quiet.append(fut)
            await fut

    async def _roll_and_write(self, batch: list[Pending], group: Group) -> None:
        """Write `batch`, which does not fit the active segment, rolling as often as needed."""
        assert self._thread is not None
        try:
            start = 0
            while start < len(batch):
                seg = self._segments[-1]
                room, end, used = self.segment_size - seg.size, start, 0
                while end < len(batch) and used + HEADER_SIZE + len(batch[end][2]) <= room:
                    used += HEADER_SIZE + len(batch[end][2])
                    end += 1
                if end == start and seg.size == 0:
                    end = start + 1  # a record larger than a segment gets a segment of its own
                if end > start:
                    self._write(batch, start, end)
                    start = end
                if start < len(batch):
                    await self._quiesce()
                    dirty = seg.fd if self._written_lsn > self._synced_lsn else None
                    new = await self._thread.run(self._roll, dirty, batch[start][0])
                    if dirty is not None:  # a sealed segment is always complete on disk
                        self._synced(self._written_lsn, None)
                    self._segments.append(new)
                    self._firsts.append(new.first_lsn)
        except Exception as exc:
            self._fail(exc, group)
            return
        finally:
            self._rolling = None
        self._written(batch[-1][0], group)
        self._flush()  # what queued up during the roll

    def _roll(self, dirty_fd: int | None, first_lsn: int) -> Segment:  # in the writer thread
        if dirty_fd is not None:
            self._sync(dirty_fd, 0)
        return create_segment(self.directory, first_lsn)

    def _fail(self, exc: BaseException, group: Group | None) -> None:
        self._failure = exc
        self._refuse = True
        error = LogFailed(f"writing the log in {self.directory} failed: {exc!r}; reopen the log")
        for g in (group, self._group, *(g for _, g in self._unsynced)):
            if g is not None and not g.done():
                g.set_exception(error)
        self._pending, self._group, self._pending_bytes = [], None, 0
        self._unsynced.clear()
        self._wake_rescued()

    def _advance_tail(self, tail: Lsn) -> None:
        super()._advance_tail(tail)
        if self._rescued:
            self._wake_rescued()

    async def _rescue(self, lsn: Lsn) -> None:
        """Wait for `lsn` to be durable after another appender's cancellation hit our group.

        Appenders await one plain shared future per group: asyncio's task fast path only takes
        exact `Future`s (a subclass refusing `cancel()` cost ~1.5 us per append). The price is
        that cancelling one appender cancels the group's future for all of them; the others
        land here and wait for their own LSN instead (rare: cancellation mid-append).
        """
        assert self._loop is not None
        while self._tail < lsn:
            if self._failure is not None:
                self._check_writable()  # raises LogFailed
            fut: asyncio.Future[None] = self._loop.create_future()
            self._rescued.append(fut)
            await fut

    def _wake_rescued(self) -> None:
        rescued, self._rescued = self._rescued, []
        for fut in rescued:
            if not fut.done():
                fut.set_result(None)

    # --- reads ------------------------------------------------------------------------------
    async def read_batch(self, from_lsn: Lsn, max_records: int) -> list[Record]:
        self._check_read(from_lsn, max_records)
        return self._reader.read(from_lsn, min(self._tail, from_lsn + max_records - 1))

    # --- trim and close ---------------------------------------------------------------------
    async def trim(self, up_to_lsn: Lsn) -> None:
        self._check_writable()
        drop: list[Segment] = []
        while len(self._segments) > 1 and self._segments[0].last_lsn <= up_to_lsn:
            drop.append(self._segments.pop(0))
            self._firsts.pop(0)
        if not drop:
            return
        self._first = self._segments[0].first_lsn
        self._reader.forget(drop)
        await asyncio.to_thread(delete_segments, self.directory, drop)

    async def close(self) -> None:
        if self._closed or self._closing:
            return
        self._closing = self._refuse = True
        try:
            if self._sync_timer is not None:
                self._sync_timer.cancel()
            while self._thread is not None:  # drain: queued appends become durable (or fail)
                if self._rolling is not None:
                    await asyncio.wait([self._rolling])
                elif self._pending and self._failure is None:
                    self._flush()
                elif self._syncing:
                    await self._quiesce()
                else:
                    break
            dirty = self._written_lsn > self._synced_lsn  # interval / never
            if self._thread is not None and self._failure is None and dirty:
                await self._thread.run(self._sync, self._segments[-1].fd, self._written_lsn)
        finally:
            self._closed = True
            self._fail_waiters()
            if self._thread is not None:
                self._thread.stop()
            for seg in self._segments:
                os.close(seg.fd)
            self._release_lock()

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def __repr__(self) -> str:
        return (
            f"FileLog({str(self.directory)!r}, fsync={str(self.policy)!r}, "
            f"first={self._first}, tail={self._tail}, segments={len(self._segments)})"
        )


def _orphaned(group: Group) -> bool:
    """Was `group` cancelled by another appender's cancellation (not the current task's)?"""
    task = asyncio.current_task()
    return group.cancelled() and task is not None and not task.cancelling()


def _lock(directory: Path) -> int:
    fd = os.open(directory / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LogLocked(directory) from None
    return fd
