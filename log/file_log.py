"""FileLog: the durable log - segment files, group commit, the fsync policy, tail notification.

Group commit: `append` assigns the LSN and timestamp at once (so LSN order is call order), queues
the record and awaits a future. One writer task drains the queue: everything queued while the
previous write+fsync was in flight goes out as one `os.write` and one `fdatasync`, run in a
dedicated worker thread so the event loop stays free. Then the tail moves and the futures resolve.

Reads run on the event loop (segment bytes are almost always in the page cache) with `os.pread`
of large chunks; a sequential reader resumes from where the previous batch ended.
"""

from __future__ import annotations

import asyncio
import bisect
import fcntl
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from log.base import Clock, LogBase
from log.errors import CorruptRecord, LogClosed, LogError, LogFailed, LogLocked, LogReadOnly
from log.policy import FsyncPolicy, parse_fsync_policy, parse_size
from log.protocol import Lsn, Record
from log.recovery import recover
from log.segment import (
    HEADER,
    HEADER_SIZE,
    MAX_PAYLOAD,
    FrameMismatch,
    Pending,
    Segment,
    encode_frames,
    parse_frames,
    segment_name,
)

DEFAULT_SEGMENT_SIZE = 64 << 20
_MAX_READ_CHUNK = 4 << 20


class FileLog(LogBase):
    """A log stored as segment files in one directory (see the `log.protocol` contract).

    `fsync_count` counts the fsyncs issued (tests use it to see group commit batch). `sync_fn`
    replaces `os.fdatasync` (tests inject failures). `readonly=True` neither locks nor modifies
    anything: a torn tail is left in place and only reported in `torn_tail_bytes` (beside a
    running writer it is usually a record being written), so it works beside a running writer.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        fsync: str | FsyncPolicy = "always",
        segment_size: int | str = DEFAULT_SEGMENT_SIZE,
        clock: Clock | None = None,
        readonly: bool = False,
        sync_fn: Callable[[int], None] = os.fdatasync,
    ) -> None:
        super().__init__(clock)
        self.directory = Path(directory)
        self.policy = parse_fsync_policy(fsync)
        self.segment_size = parse_size(segment_size)
        self.readonly = readonly
        self.fsync_count = 0
        self._sync_fn = sync_fn
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
                self._segments.append(self._create_segment(1))
        except BaseException:
            self._release_lock()
            raise
        self._firsts = [s.first_lsn for s in self._segments]
        self._last_ts = recovered.last_ts
        # bytes of a torn tail found on open: cut (with a warning) or, read-only, left alone
        self.torn_tail_bytes = recovered.ignored_tail
        self._first = self._segments[0].first_lsn if self._segments else 1
        self._tail = self._segments[-1].last_lsn if self._segments else 0
        self._next_lsn = self._tail + 1
        # writer side
        self._pending: list[Pending] = []
        self._pending_bytes = 0
        self._group: _CommitGroup | None = None  # what the queued appends await
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._failure: BaseException | None = None
        self._dirty = False  # written but not fsynced (interval / never)
        self._sync_due = 0.0
        self._executor: ThreadPoolExecutor | None = None
        # reader side: where the previous read_batch stopped
        self._hint: tuple[Segment, int, int] | None = None  # (segment, offset, lsn)

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

    def _enqueue(self, payload: bytes) -> tuple[int, _CommitGroup]:
        if self._closing or self._failure is not None or self.readonly:
            self._check_writable()
        if len(payload) > MAX_PAYLOAD:
            raise ValueError(f"a record payload is at most {MAX_PAYLOAD} bytes, got {len(payload)}")
        lsn = self._next_lsn
        self._next_lsn = lsn + 1
        now = self._clock()
        if now > self._last_ts:
            self._last_ts = now
        self._pending.append((lsn, self._last_ts, payload))
        self._pending_bytes += HEADER_SIZE + len(payload)
        group = self._group
        if group is None:
            group = self._group = _CommitGroup()
            if self._writer is None:
                self._start_writer()
            self._wake.set()
        return lsn, group

    async def append(self, payload: bytes) -> Lsn:
        if self._closed:
            raise LogClosed("the log is closed")
        lsn, group = self._enqueue(payload)
        await group
        return lsn

    async def append_batch(self, payloads: Sequence[bytes]) -> list[Lsn]:
        if self._closed:
            raise LogClosed("the log is closed")
        if not payloads:
            return []
        if any(len(p) > MAX_PAYLOAD for p in payloads):
            raise ValueError(f"a record payload is at most {MAX_PAYLOAD} bytes")
        lsns = [self._enqueue(p)[0] for p in payloads]
        group = self._group
        assert group is not None
        await group
        return lsns

    def _start_writer(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"log-{self.directory.name}")
        # Owned by this log: close() drains and awaits it.
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                if self._closing:
                    return
                await self._idle(loop)
                continue
            batch, group, nbytes = self._pending, self._group, self._pending_bytes
            self._pending, self._group, self._pending_bytes = [], None, 0
            assert group is not None
            try:
                await self._write_batch(loop, batch, nbytes)
            except Exception as exc:
                self._fail(exc, group)
                return
            self._advance_tail(batch[-1][0])
            group.set_result(None)

    async def _idle(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._dirty and self.policy.kind == "interval":
            delay = self._sync_due - loop.time()
            if delay <= 0:
                await self._run(self._sync_active)
                return
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                return
        else:
            await self._wake.wait()
        self._wake.clear()

    async def _write_batch(
        self, loop: asyncio.AbstractEventLoop, batch: list[Pending], nbytes: int
    ) -> None:
        start = 0
        while start < len(batch):
            seg = self._segments[-1]
            room = self.segment_size - seg.size
            end = len(batch)
            if nbytes > room:  # cut the batch where the segment is full
                end, used = start, 0
                while end < len(batch) and used + HEADER_SIZE + len(batch[end][2]) <= room:
                    used += HEADER_SIZE + len(batch[end][2])
                    end += 1
                if end == start and seg.size == 0:
                    end = start + 1  # a record larger than a segment gets a segment of its own
            if end > start:
                chunk = batch[start:end]
                sync = self.policy.kind == "always"
                if self.policy.kind == "interval":
                    if not self._dirty:
                        self._sync_due = loop.time() + self.policy.interval_ms / 1000
                    sync = loop.time() >= self._sync_due
                if sync:
                    seg.size = await self._run(self._write_sync, seg, chunk, True)
                else:  # writing to the page cache is quick: no thread hop
                    seg.size = self._write_sync(seg, chunk, False)
                seg.last_lsn = chunk[-1][0]
                self._dirty = not sync
                nbytes -= sum(HEADER_SIZE + len(p) for _, _, p in chunk) if end < len(batch) else 0
                start = end
            if start < len(batch):
                new = await self._run(self._roll_sync, batch[start][0])
                self._segments.append(new)
                self._firsts.append(new.first_lsn)

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # --- blocking parts, run in the writer thread --------------------------------------------
    def _write_sync(self, seg: Segment, chunk: list[Pending], sync: bool) -> int:
        data = b"".join(encode_frames(seg, chunk, seg.size))
        view, written = memoryview(data), 0
        while written < len(data):
            written += os.write(seg.fd, view[written:])
        if sync:
            self._sync_fn(seg.fd)
            self.fsync_count += 1
        return seg.size + len(data)

    def _sync_active(self) -> None:
        self._sync_fn(self._segments[-1].fd)
        self.fsync_count += 1
        self._dirty = False

    def _roll_sync(self, first_lsn: int) -> Segment:
        if self._dirty:
            self._sync_active()  # a sealed segment is always complete on disk
        return self._create_segment(first_lsn)

    def _create_segment(self, first_lsn: int) -> Segment:
        path = self.directory / segment_name(first_lsn)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
        _fsync_dir(self.directory)
        return Segment(path, first_lsn, fd)

    def _fail(self, exc: BaseException, group: _CommitGroup) -> None:
        self._failure = exc
        error = LogFailed(f"writing the log in {self.directory} failed: {exc!r}; reopen the log")
        for g in (group, self._group):
            if g is not None:
                g.set_exception(error)
        self._pending, self._group = [], None

    # --- reads ------------------------------------------------------------------------------
    async def read_batch(self, from_lsn: Lsn, max_records: int) -> list[Record]:
        self._check_read(from_lsn, max_records)
        return self._read_now(from_lsn, max_records)

    def _read_now(self, from_lsn: Lsn, max_records: int) -> list[Record]:
        last = min(self._tail, from_lsn + max_records - 1)
        out: list[Record] = []
        lsn = from_lsn
        while lsn <= last:
            hint = self._hint
            if hint is not None and hint[2] == lsn and lsn <= hint[0].last_lsn:
                seg, off, at = hint
            else:
                seg = self._segments[bisect.bisect_right(self._firsts, lsn) - 1]
                at, off = seg.seek_point(lsn)
            stop = min(last, seg.last_lsn)
            avg = seg.size // max(1, seg.last_lsn - seg.first_lsn + 1)
            while at <= stop:
                want = max(64 << 10, min(_MAX_READ_CHUNK, (stop - at + 1) * avg + 4096))
                buf = os.pread(seg.fd, min(want, seg.size - off), off)
                pos, at = self._parse(seg, buf, off, at, lsn, stop, out)
                if pos == 0 and len(buf) >= HEADER_SIZE:  # one record larger than the chunk
                    length = HEADER.unpack_from(buf)[0]
                    buf = os.pread(seg.fd, HEADER_SIZE + length, off)
                    pos, at = self._parse(seg, buf, off, at, lsn, stop, out)
                if pos == 0:
                    raise CorruptRecord(
                        f"log segment {seg.path} is shorter than verified: LSN {at} at byte "
                        f"offset {off} cannot be read",
                        path=seg.path,
                        offset=off,
                        lsn=at,
                    )
                off += pos
            self._hint = (seg, off, at)
            lsn = at
        return out

    @staticmethod
    def _parse(
        seg: Segment, buf: bytes, off: int, at: int, lsn: int, stop: int, out: list[Record]
    ) -> tuple[int, int]:
        try:
            return parse_frames(buf, 0, at, lsn, stop, out)
        except FrameMismatch as exc:
            raise CorruptRecord(
                f"log segment {seg.path} changed on disk: byte offset {off + exc.offset} "
                f"holds LSN {exc.found} where LSN {exc.expected} was verified",
                path=seg.path,
                offset=off + exc.offset,
                lsn=exc.expected,
            ) from None

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
        if self._hint is not None and self._hint[0] in drop:
            self._hint = None
        await asyncio.to_thread(_delete_segments, self.directory, drop)

    async def close(self) -> None:
        if self._closed or self._closing:
            return
        self._closing = True
        try:
            if self._writer is not None:
                self._wake.set()
                await self._writer
                if self._dirty and self._failure is None:
                    await self._run(self._sync_active)
        finally:
            self._closed = True
            self._fail_waiters()
            if self._executor is not None:
                self._executor.shutdown(wait=True)
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


class _CommitGroup(asyncio.Future[None]):
    """The future every append of one group-commit batch awaits; resolved when it is durable.

    Cancelling one appender must not cancel the others' shared future: `cancel()` refuses, so
    the task's cancellation is delivered when the batch is durable (or failed). By then the
    record may well be durable - exactly as if the appender had been cancelled a moment later.
    """

    def cancel(self, msg: Any = None) -> bool:
        return False


def _lock(directory: Path) -> int:
    fd = os.open(directory / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LogLocked(directory) from None
    return fd


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _delete_segments(directory: Path, segments: list[Segment]) -> None:
    for seg in segments:
        os.close(seg.fd)
        seg.path.unlink()
    _fsync_dir(directory)
