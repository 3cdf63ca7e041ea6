"""The partition's state store: batch load of views, batch write of a folded batch, read queries.

The connections, each with one owner:
- the writer: the runner's batch write is planned on the caller's thread (`storage.write_plan`:
  a few multi-row statements) and run as one transaction: BEGIN, those statements, the new
  `applied_lsn`, COMMIT. No SQLite round-trip per command. A small batch runs right on the event
  loop when nothing else is being written; a large one in the store's writer process
  (`storage.writer_process`, when opened with `writer_process=True`, as the daemon and replay do)
  or else in the writer thread (`DbThread`), which holds the GIL only between statements. Either
  way the loop applies the next batch meanwhile;
- the loop's own read connection: the views a batch needs and the planner's key lookups, read
  right on the loop (the runner waits for them anyway, so a thread hop would only add its cost);
- the reader (a thread): the API queries. In WAL mode it reads the last committed batch while the
  writer writes the next one, so API reads never wait behind a batch write, and it never sees half
  a batch;
- the checkpointer (a thread): the writer's automatic checkpoint (an fsync of the database file
  inside some unlucky COMMIT) is turned off, and a PASSIVE checkpoint runs here instead every few
  batches (`_CHECKPOINT_EVERY_ROWS` rows or `_CHECKPOINT_EVERY_BATCHES` batches), off the writer's
  path.

The WAL must also start over now and then, or it grows for as long as writes keep coming. SQLite
rewinds it at the start of a write only when a checkpoint has copied every frame in it, which a
background checkpoint racing a busy writer never does: applying 1.2M records in catch-up batches
grew a 1.7 GB WAL beside a 316 MB store, and 75k commands in batches of 8 (a busy live partition) a
1 GB WAL beside 11 MB. So once the WAL file outgrows `WAL_SIZE_LIMIT`, the writer (process or
thread) finishes the job itself right after its next COMMIT (the writer process after replying to
that write, so the loop goes on applying meanwhile; the background checkpoints have copied most
frames by then, and nothing writes meanwhile) and rewinds the WAL at once, in a transaction of its
own that changes no state (`writer.REWIND_WAL`: the write that rewinds syncs the new WAL header, a
cost no batch should carry); `journal_size_limit` gives the disk space back. The loop never
checkpoints (a checkpoint may fsync), and a write that rewinds the WAL happens in the writer too: a
batch small enough to commit on the loop goes to the writer instead while the WAL is over the limit,
or when a background checkpoint has just copied every frame (that batch rewinds the WAL). Only a
batch that starts in the instant between such a checkpoint's end and its report can still rewind on
the loop. As SQLite requires, a reader holding a read transaction at that write also blocks the
rewind: our readers' transactions are short, but a reader that never lets go (an outside tool
keeping one open) keeps the WAL growing, and the writer logs `state_wal_not_rewinding` each time the
WAL doubles past 4x the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import structlog

from processor.commands import TimerKey, TimerKind
from processor.state_machine.types import Event
from processor.status import InvocationView
from processor.storage.batch import BatchWrites
from processor.storage.db_thread import DbThread
from processor.storage.digest import digest_conn
from processor.storage.schema import WAL_SIZE_LIMIT, configure, migrate, pragmas
from processor.storage.view_codec import decode_view, encode_view
from processor.storage.write_plan import KeyCache, WritePlan, plan_batch
from processor.storage.writer import REWIND_WAL, execute_plan, lookup_keys, max_key, rewind_wal
from processor.storage.writer_process import WriterProcess, WriterProcessFailed

JournalRow = tuple[int, dict[str, Any], int]  # (index, entry, appended_at)
_LOAD_CHUNK = 512  # ids per IN (...) query; well under SQLite's variable limit
_CHECKPOINT_EVERY_ROWS = 20_000  # rows written between background checkpoints
_CHECKPOINT_EVERY_BATCHES = 100  # or batches (a small batch dirties more pages per row)


def _writer_pragmas() -> list[str]:
    return [*pragmas(), "PRAGMA wal_autocheckpoint=0"]  # the checkpointer thread does it


# Batches touching at most this many invocations are written on the loop when the writer is idle
# (see `Store.start_write`); bigger ones (catch-up, replay) go to the writer process or thread.
INLINE_WRITE_MAX_VIEWS = 64
_TIMER_KINDS = {k.value: k for k in TimerKind}

logger = structlog.get_logger("store")


def _unpack(blob: bytes) -> Any:
    return msgpack.unpackb(blob, raw=False, strict_map_key=False)


class StoreUnreadable(RuntimeError):
    """`state.db` exists but is not a store this processor can open (damaged, or another file)."""


class StoreWriteFailed(RuntimeError):
    """A batch write was refused because an earlier one failed."""


@dataclass(frozen=True, slots=True)
class PartitionRow:
    applied_lsn: int
    leader_epoch: int


@dataclass(frozen=True, slots=True)
class TimerRow:
    invocation_id: str
    timer: TimerKey
    fire_at: int


def _invocation_row(v: InvocationView) -> tuple[Any, ...]:
    return (
        v.id,
        v.service,
        v.handler,
        v.status.value,
        v.created_at,
        v.modified_at,
        v.pinned_deployment,
        v.completed_at,
        v.idempotency_key,
        encode_view(v),
    )


# The internal key of an invocation, for the read queries of rows keyed by it (schema version 2).
_KEY_OF = "(SELECT key FROM invocations WHERE id=?)"


def _load_views(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, InvocationView]:
    """The stored views of `ids`, in a few queries. Each `IN (...)` list is padded to a power of
    two (repeating its last id) so there are only a handful of distinct statements for the
    connection to keep prepared."""
    out: dict[str, InvocationView] = {}
    for start in range(0, len(ids), _LOAD_CHUNK):
        chunk = list(ids[start : start + _LOAD_CHUNK])
        size = 1 << (len(chunk) - 1).bit_length()
        chunk.extend(chunk[-1:] * (size - len(chunk)))
        for (blob,) in conn.execute(_load_sql(size), chunk):
            v = decode_view(blob)
            out[v.id] = v
    return out


@functools.cache
def _load_sql(size: int) -> str:
    return f"SELECT view FROM invocations WHERE id IN ({','.join('?' * size)})"


def _read_partition(conn: sqlite3.Connection) -> PartitionRow:
    row = conn.execute("SELECT applied_lsn, leader_epoch FROM partition WHERE id=0").fetchone()
    return PartitionRow(int(row[0]), int(row[1]))


def _configure_writer(path: str) -> Callable[[sqlite3.Connection], None]:
    def setup(conn: sqlite3.Connection) -> None:
        for statement in _writer_pragmas():
            conn.execute(statement)
        migrate(conn, path)

    return setup


def _configure_reader(conn: sqlite3.Connection) -> None:
    configure(conn, cache_mib=8)
    conn.execute("PRAGMA query_only=1")


def _configure_checkpointer(conn: sqlite3.Connection) -> None:
    configure(conn, cache_mib=1)


def _wal_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _checkpoint(conn: sqlite3.Connection) -> bool:
    """A PASSIVE checkpoint; True when it copied every frame (the next write rewinds the WAL)."""
    busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return bool(busy == 0 and frames == copied)


async def _start_writer_process(path: str) -> WriterProcess | None:
    """The store's writer process, or None (the writer thread then) when it cannot start: the
    store works either way, only slower, so a failure is a warning, not a refusal to start."""
    try:
        return await WriterProcess.start(path, _writer_pragmas(), REWIND_WAL)
    except (OSError, TimeoutError, WriterProcessFailed) as exc:
        logger.warning(
            "state_writer_process_unavailable",
            path=path,
            error=repr(exc),
            message=(
                f"the writer process for {path} did not start ({exc}); large batches are "
                "written by a thread of this process instead (slower catch-up and replay)"
            ),
        )
        return None


class Store:
    """A partition's state store. Open with `await Store.open(path)`; close with `close()`."""

    def __init__(
        self,
        path: str,
        writer: DbThread,
        reader: DbThread,
        ckpt: DbThread,
        process: WriterProcess | None = None,
    ) -> None:
        self.path = path
        self._writer = writer
        self._process = process
        self._reader = reader
        self._ckpt = ckpt
        self._point: sqlite3.Connection | None = None  # see `load_views_now`
        self._rows_since_checkpoint = 0
        self._batches_since_checkpoint = 0
        # Set by a background checkpoint that copied every frame: the next write will rewind the
        # WAL, so it must not run on the loop (see the module docstring).
        self._rewind_due = False
        self._wal_warned_at = 4 * WAL_SIZE_LIMIT  # the WAL size that earns the next warning
        # SQLite puts the WAL beside the file a symlink points to.
        self._wal_path = f"{os.path.realpath(path)}-wal"
        self._write_failure: BaseException | None = None
        self._keys = KeyCache()  # the planner's (the loop thread's): see `storage.write_plan`
        # Called inside the batch transaction right before COMMIT (tests use it to crash there).
        # It runs in this process only: a store with a writer process refuses a batch that would
        # be written there while a hook is set.
        self.before_commit: Callable[[], None] | None = None
        # The writer process's stand-in for `before_commit` (tests): sleep this long before COMMIT.
        self.process_pause_before_commit_s = 0.0

    @property
    def writer_pid(self) -> int | None:
        """The writer process's pid (None: batches are written by a thread of this process)."""
        return None if self._process is None else self._process.pid

    async def writer_settled(self) -> None:
        """Return once the writer process has done everything it was sent, including the
        checkpoint it runs after replying to a write (tests use this; the thread writer's
        checkpoint is part of its write)."""
        if self._process is not None:
            await self._process.ping()

    @classmethod
    async def open(
        cls, path: str | Path, *, thread_name: str = "sqlite", writer_process: bool = False
    ) -> Store:
        """Open (creating and migrating if needed) the store at `path` (a file: the reader and
        the checkpointer need their own connections to it).

        `writer_process`: large batch writes run in a child process of their own (see
        `storage.writer_process`) instead of the writer thread, where they would wait for the GIL
        between statements while the loop applies the next batch. The daemon and replay use it;
        small batches are written on the loop either way."""
        path = str(path)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        threads: list[DbThread] = []
        process: WriterProcess | None = None
        try:
            for role, setup in (
                ("w", _configure_writer(path)),
                ("r", _configure_reader),
                ("c", _configure_checkpointer),
            ):
                thread = DbThread(f"{thread_name}-{role}")
                threads.append(thread)
                thread.open_sync(path, setup)
            if writer_process:
                process = await _start_writer_process(path)
        except BaseException as exc:
            for thread in threads:
                thread.close()
            if isinstance(exc, sqlite3.DatabaseError) and not isinstance(
                exc, sqlite3.OperationalError
            ):
                # The store is derived from the log, so the way out is always a rebuild.
                raise StoreUnreadable(
                    f"the state store {path} cannot be read ({exc}); it holds nothing the log "
                    f"does not: stop the daemon, delete {path} (and its -wal and -shm files) and "
                    "start again to rebuild it from the log"
                ) from None
            raise
        writer, reader, ckpt = threads
        return cls(path, writer, reader, ckpt, process)

    def close(self) -> None:
        if self._process is not None:
            self._process.close()
        if self._point is not None:
            self._point.close()
            self._point = None
        for thread in (self._writer, self._reader, self._ckpt):
            thread.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # --- the runner's side ---------------------------------------------------------------------

    async def partition(self) -> PartitionRow:
        return await self._reader.run(_read_partition)

    def _point_conn(self) -> sqlite3.Connection:
        """The loop thread's own read connection (see `load_views_now`)."""
        conn = self._point
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            configure(conn, cache_mib=4)
            conn.execute("PRAGMA query_only=1")
            self._point = conn
        return conn

    def load_views_now(self, ids: Sequence[str]) -> dict[str, InvocationView]:
        """`load_views` on the calling thread (the runner's, on the event loop).

        The runner needs the views before it can apply anything, so a hop to the reader thread
        would only add its cost (a wake-up and GIL hand-offs each way, ~2 ms per 1,000-command
        batch measured against ~1 ms for the reads themselves): the loop reads them here, on a
        connection of its own. Most ids a batch asks for are new invocations that are not found
        (an index probe each). It sees every committed batch (each SELECT is its own read
        transaction in WAL mode)."""
        return _load_views(self._point_conn(), ids)

    async def load_views(self, ids: Sequence[str]) -> dict[str, InvocationView]:
        """The committed views of `ids` (absent ids are simply missing), in one hop."""
        return await self._reader.run(lambda conn: _load_views(conn, ids))

    def start_write(self, writes: BatchWrites) -> asyncio.Future[float]:
        """Plan the batch's transaction here and queue it on the writer (process or thread), or
        run it right here when it is small and the writer is idle; the future resolves after
        COMMIT with the transaction's duration in seconds (BEGIN to COMMIT, queueing excluded).
        Now and then the writer also checkpoints right after a COMMIT (see the module docstring;
        ~40 ms here, mostly its two fsyncs): the writer thread before this future resolves, the
        writer process after (the batches queued behind wait for it).

        Batches are written in the order they are started. They must be started from one thread,
        with at most `write_plan.MAX_BATCHES_IN_FLIGHT` started batches not yet committed when
        the next is started (the runner's pipeline): planning keeps the `KeyCache`, whose
        eviction is sized for that (see `storage.write_plan`)."""
        if self._write_failure is not None:
            refused: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            refused.set_exception(
                StoreWriteFailed(
                    f"an earlier batch write failed ({self._write_failure!r}); reopen the store"
                )
            )
            return refused
        point = self._point_conn()
        try:
            plan = plan_batch(
                writes, self._keys, lambda ids: lookup_keys(point, ids), lambda: max_key(point)
            )
        except BaseException as exc:
            # The key cache may now name rows that will never be written: refuse what follows.
            self._write_failure = exc
            raise
        hook = self.before_commit
        rows = plan.rows
        wal_path = self._wal_path

        def write(conn: sqlite3.Connection, in_writer_thread: bool = True) -> float:
            # Batches are queued ahead; once one fails, the ones behind it must not commit (the
            # store would skip the failed batch's records).
            if self._write_failure is not None:
                raise StoreWriteFailed(
                    f"an earlier batch write failed ({self._write_failure!r}); reopen the store"
                )
            if in_writer_thread:
                self._rewind_due = False  # this write is the one that rewinds, if one is due
            began = time.perf_counter()
            try:
                execute_plan(conn, plan, hook)
            except BaseException as exc:
                self._write_failure = exc
                raise
            seconds = time.perf_counter() - began
            checkpointed_wal = None
            if in_writer_thread and _wal_size(wal_path) > WAL_SIZE_LIMIT:
                # See the module docstring. The batch is committed: a checkpoint that fails
                # only delays the rewind.
                with contextlib.suppress(sqlite3.Error):
                    if _checkpoint(conn):
                        rewind_wal(conn)
                checkpointed_wal = _wal_size(wal_path)
            self._count_commit(rows, checkpointed_wal)
            return seconds

        writer = self._writer
        process = self._process
        if (
            rows <= INLINE_WRITE_MAX_VIEWS
            and writer.idle
            and (process is None or process.idle)
            and not self._rewind_due
            and _wal_size(wal_path) <= WAL_SIZE_LIMIT
        ):
            # A small batch commits right here on the loop (a few hundred µs): cheaper than the
            # hop to the writer thread and back.
            done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            try:
                done.set_result(writer.run_inline(lambda conn: write(conn, False)))
            except Exception as exc:
                done.set_exception(exc)
            return done
        if process is not None:
            return self._write_in_process(process, plan)
        return writer.submit(write)

    def _write_in_process(self, process: WriterProcess, plan: WritePlan) -> asyncio.Future[float]:
        """`start_write`'s path for a store with a writer process (the same bookkeeping as the
        writer thread's `write`, done here on the loop when the reply comes)."""
        done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        if self.before_commit is not None:
            exc = RuntimeError(
                "before_commit hooks run in this process, but this batch goes to the store's "
                "writer process: open the store without writer_process to use one"
            )
            self._write_failure = exc
            done.set_exception(exc)
            return done
        self._rewind_due = False  # this write is the one that rewinds, if one is due
        rows = plan.rows
        written = process.write(plan.statements, self.process_pause_before_commit_s, WAL_SIZE_LIMIT)

        def settle(written: asyncio.Future[tuple[float, bool, int]]) -> None:
            exc = written.exception()
            if exc is not None:
                if self._write_failure is None:
                    self._write_failure = exc
                if not done.done():
                    done.set_exception(exc)
                return
            seconds, checkpointed, wal = written.result()
            self._count_commit(rows, wal if checkpointed else None)
            if not done.done():
                done.set_result(seconds)

        written.add_done_callback(settle)
        return done

    def _count_commit(self, rows: int, checkpointed_wal: int | None) -> None:
        """Bookkeeping after a batch's COMMIT, wherever it ran: `checkpointed_wal` is the WAL's
        size after the writer's own checkpoint (None: it did none); otherwise a background
        checkpoint is queued every so many rows or batches."""
        self._rows_since_checkpoint += rows
        self._batches_since_checkpoint += 1
        if checkpointed_wal is not None:
            self._rows_since_checkpoint = self._batches_since_checkpoint = 0
            self._warn_if_the_wal_cannot_rewind(checkpointed_wal)
        elif (
            self._rows_since_checkpoint >= _CHECKPOINT_EVERY_ROWS
            or self._batches_since_checkpoint >= _CHECKPOINT_EVERY_BATCHES
        ):
            self._rows_since_checkpoint = self._batches_since_checkpoint = 0
            self._ckpt.submit_detached(self._background_checkpoint)

    def commits_inline_when_idle(self, writes: BatchWrites) -> bool:
        """Whether `start_write` commits this batch on the loop when the writer is idle (small
        batches; see `INLINE_WRITE_MAX_VIEWS`)."""
        return len(writes) <= INLINE_WRITE_MAX_VIEWS

    def _warn_if_the_wal_cannot_rewind(self, size: int) -> None:
        if size < 4 * WAL_SIZE_LIMIT:
            self._wal_warned_at = 4 * WAL_SIZE_LIMIT  # rewinding again: warn afresh next time
            return
        if size < self._wal_warned_at:
            return
        self._wal_warned_at = 2 * size
        logger.warning(
            "state_wal_not_rewinding",
            path=self.path,
            wal_mib=size >> 20,
            message=(
                f"the SQLite WAL of {self.path} is {size >> 20} MiB and cannot start over: a "
                "reader keeps a read transaction open on it (an sqlite3 shell left inside BEGIN, "
                "a long backup or query). End that transaction; the WAL then shrinks back to "
                f"{WAL_SIZE_LIMIT >> 20} MiB on its own."
            ),
        )

    def _background_checkpoint(self, conn: sqlite3.Connection) -> None:
        if _checkpoint(conn):
            self._rewind_due = True

    async def write_batch(self, writes: BatchWrites) -> float:
        """Write one batch in one transaction; returns the transaction's duration in seconds."""
        return await self.start_write(writes)

    async def digest(self) -> str:
        return await self._reader.run(digest_conn)

    # --- read queries for the APIs and the leader ----------------------------------------------

    async def get_view(self, invocation_id: str) -> InvocationView | None:
        views = await self.load_views([invocation_id])
        return views.get(invocation_id)

    async def get_journal(self, invocation_id: str) -> list[JournalRow]:
        def q(conn: sqlite3.Connection) -> list[JournalRow]:
            cur = conn.execute(
                f"SELECT idx, entry, appended_at FROM journal WHERE inv_key={_KEY_OF} ORDER BY idx",
                (invocation_id,),
            )
            return [(idx, _unpack(entry), at) for idx, entry, at in cur]

        return await self._reader.run(q)

    async def get_events(self, invocation_id: str) -> list[Event]:
        def q(conn: sqlite3.Connection) -> list[Event]:
            cur = conn.execute(
                f"SELECT seq, kind, at, data FROM events WHERE inv_key={_KEY_OF} ORDER BY seq",
                (invocation_id,),
            )
            return [Event(seq, kind, at, _unpack(data)) for seq, kind, at, data in cur]

        return await self._reader.run(q)

    async def list_invocations(
        self,
        *,
        service: str | None = None,
        handler: str | None = None,
        statuses: Sequence[str] | None = None,
        deployment: str | None = None,
        limit: int = 100,
    ) -> list[InvocationView]:
        """Invocations matching every given filter, newest first (created_at, then id)."""
        where: list[str] = []
        args: list[Any] = []
        if service is not None:
            where.append("service=?")
            args.append(service)
        if handler is not None:
            where.append("handler=?")
            args.append(handler)
        if statuses:
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            args.extend(statuses)
        if deployment is not None:
            where.append("pinned_deployment=?")
            args.append(deployment)
        sql = "SELECT view FROM invocations"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
        args.append(limit)

        def q(conn: sqlite3.Connection) -> list[InvocationView]:
            return [decode_view(blob) for (blob,) in conn.execute(sql, args)]

        return await self._reader.run(q)

    async def completed_before(self, cutoff_ms: int, limit: int) -> list[str]:
        """Ids of invocations completed before `cutoff_ms`, oldest first (the retention cleaner)."""

        def q(conn: sqlite3.Connection) -> list[str]:
            cur = conn.execute(
                "SELECT id FROM invocations WHERE status='completed' AND completed_at < ? "
                "ORDER BY completed_at LIMIT ?",
                (cutoff_ms, limit),
            )
            return [str(inv) for (inv,) in cur]

        return await self._reader.run(q)

    async def count_by_status(self) -> dict[str, int]:
        def q(conn: sqlite3.Connection) -> dict[str, int]:
            cur = conn.execute("SELECT status, COUNT(*) FROM invocations GROUP BY status")
            return {status: int(n) for status, n in cur}

        return await self._reader.run(q)

    async def all_timers(self) -> list[TimerRow]:
        """Every stored timer, earliest first (the leader loads them when it takes over)."""

        def q(conn: sqlite3.Connection) -> list[TimerRow]:
            cur = conn.execute(
                "SELECT invocation_id, kind, key, fire_at FROM timers "
                "ORDER BY fire_at, invocation_id, kind, key"
            )
            return [
                TimerRow(inv, TimerKey(_TIMER_KINDS[kind], key), at) for inv, kind, key, at in cur
            ]

        return await self._reader.run(q)

    async def running_invocations(self) -> list[InvocationView]:
        """Every `running` invocation (a new leader starts an attempt for each)."""
        return await self._views_where("status=?", ("running",))

    async def _views_where(self, cond: str, args: Iterable[Any]) -> list[InvocationView]:
        sql = f"SELECT view FROM invocations WHERE {cond} ORDER BY id"
        params = tuple(args)

        def q(conn: sqlite3.Connection) -> list[InvocationView]:
            return [decode_view(blob) for (blob,) in conn.execute(sql, params)]

        return await self._reader.run(q)
