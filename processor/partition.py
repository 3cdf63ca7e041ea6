"""One partition: its log, its state store, the runner applying one to the other, and the leader.

```
<data>/partitions/<n>/log/       FileLog (segments)
<data>/partitions/<n>/state.db   the SQLite state store
```

`run()` opens both, starts the runner (it catches up from `applied_lsn + 1`), then the leader (it
takes over and rebuilds its work from state), reports readiness through `task_status`, and runs
until `stop()` or cancellation. Shutting down cancels the leader's attempts (closing their HTTP
calls) and the runner; the runner's batch write is shielded, so a batch that reached SQLite commits
before the store closes; the log is closed after its in-flight appends are durable.

The APIs use a Partition through `processor.api.partitions.PartitionHandle`: `propose` (answered by
the state machine's Reply once the command is applied), `wait_for_completion`, and the store's read
queries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc

from log import FileLog, FsyncPolicy, open_log
from processor.actions import Reply
from processor.commands import Command
from processor.config import InvocationConfig, LogConfig
from processor.leader.clock import Clock
from processor.leader.leader import Leader, LeaderConfig
from processor.registry import Registry
from processor.runner import LIVE_BATCH_SIZE, Runner
from processor.state_machine.types import Event
from processor.status import InvocationView, Result
from processor.storage.store import JournalRow, Store

# While the log's recent fsyncs take less than this, they run on the event loop instead of the
# log's thread (see log/file_log.py, "Inline fsync"): the thread hand-off costs more than a fast
# fsync. A slower disk moves them back to the thread.
INLINE_FSYNC_UNDER_US = 500


class TimedAppends:
    """The leader's view of the log, reporting how long each append took (to durability)."""

    def __init__(self, log: FileLog, observe: Callable[[float], None]) -> None:
        self._log = log
        self._observe = observe

    async def append_batch(self, payloads: Sequence[bytes]) -> list[int]:
        began = time.perf_counter()
        lsns = await self._log.append_batch(payloads)
        self._observe(time.perf_counter() - began)
        return lsns

    def tail(self) -> int:
        return self._log.tail()


def describe_failure(exc: BaseException) -> str:
    """The messages of the errors behind `exc` (task groups wrap them in exception groups)."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe_failure(inner) for inner in exc.exceptions)
    return str(exc) or type(exc).__name__


class PartitionNotRunning(RuntimeError):
    """The partition is not running (not started yet, or stopped)."""


class PartitionFailed(PartitionNotRunning):
    """The partition stopped on an error; it stays stopped until the daemon is restarted."""


class Partition:
    def __init__(
        self,
        partition_id: int,
        data_dir: Path | str,
        registry: Registry,
        *,
        invocation: InvocationConfig | None = None,
        log_config: LogConfig | None = None,
        clock: Clock | None = None,
        batch_size: int = LIVE_BATCH_SIZE,
        on_append: Callable[[float], None] | None = None,
    ) -> None:
        self._id = partition_id
        self.directory = Path(data_dir) / "partitions" / str(partition_id)
        self.registry = registry
        self.invocation_config = invocation or InvocationConfig()
        self.log_config = log_config or LogConfig()
        self.clock = clock
        self.batch_size = batch_size
        self.on_append = on_append
        self.log: FileLog | None = None
        self._store: Store | None = None
        self.runner: Runner | None = None
        self._leader: Leader | None = None
        self._stop = anyio.Event()
        self.failure: str | None = None  # why the partition stopped, when it failed

    @property
    def partition_id(self) -> int:
        return self._id

    @property
    def store(self) -> Store:
        self._check_failed()
        if self._store is None:
            raise PartitionNotRunning(f"partition {self._id} is not running")
        return self._store

    @property
    def leader(self) -> Leader:
        self._check_failed()
        if self._leader is None:
            raise PartitionNotRunning(f"partition {self._id} is not running")
        return self._leader

    def _check_failed(self) -> None:
        if self.failure is not None:
            raise PartitionFailed(f"partition {self._id} stopped: {self.failure}")

    # --- lifecycle -------------------------------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run until `stop()` is called or the enclosing scope is cancelled.

        An error (a corrupt log, a store ahead of its log, a runner that cannot apply a record) is
        recorded in `failure` (the APIs then answer 503 for this partition) and re-raised.
        """
        self.failure = None
        try:
            await self._run(task_status)
        except Exception as exc:
            self.failure = describe_failure(exc)
            raise

    async def _run(self, task_status: anyio.abc.TaskStatus[None]) -> None:
        self._stop = anyio.Event()
        log_clock = self.clock.now_ms if self.clock is not None else None
        fsync = self.log_config.fsync
        self.log = open_log(
            self.directory / "log",
            fsync=FsyncPolicy(fsync.mode, fsync.interval_ms or 0),
            segment_size=self.log_config.segment_size,
            clock=log_clock,
            inline_fsync_under_us=INLINE_FSYNC_UNDER_US,
        )
        try:
            self._store = await Store.open(
                self.directory / "state.db", thread_name=f"sqlite-p{self._id}", writer_process=True
            )
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.log.close()
            raise
        config = LeaderConfig(
            max_concurrent_attempts=self.invocation_config.max_concurrent_attempts,
            inactivity_timeout_s=self.invocation_config.attempt_inactivity_timeout_ms / 1000,
        )
        self.runner = Runner(
            self.log,
            self._store,
            batch_size=self.batch_size,
            log_name=f"the log of partition {self._id} ({self.directory / 'log'})",
        )
        self._leader = Leader(
            log_writer=self.log
            if self.on_append is None
            else TimedAppends(self.log, self.on_append),
            store=self._store,
            runner=self.runner,
            registry=self.registry,
            clock=self.clock,
            config=config,
            partition_id=self._id,
        )
        self.runner.sink = self._leader.sink
        try:
            async with anyio.create_task_group() as tg:
                await self.runner.start()
                tg.start_soon(self.runner.run, name=f"runner p{self._id}")
                await tg.start(self._leader.run, name=f"leader p{self._id}")
                task_status.started()
                await self._stop.wait()
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self.log.close()
                self._store.close()

    def stop(self) -> None:
        self._stop.set()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Partition]:
        """`async with partition.running():` runs it in a task group of the calling task."""
        async with anyio.create_task_group() as tg:
            await tg.start(self.run)
            try:
                yield self
            finally:
                self.stop()

    # --- what the APIs need (PartitionHandle) ----------------------------------------------------

    async def propose(self, make_command: Callable[[str], Command]) -> Reply:
        return await self.leader.propose(make_command)

    def wait_for_completion(self, invocation_id: str) -> asyncio.Future[Result]:
        return self.leader.wait_for_completion(invocation_id)

    def forget_waiter(self, invocation_id: str, future: asyncio.Future[Result]) -> None:
        if self._leader is not None:
            self._leader.forget_waiter(invocation_id, future)

    async def get_view(self, invocation_id: str) -> InvocationView | None:
        return await self.store.get_view(invocation_id)

    async def get_journal(self, invocation_id: str) -> list[JournalRow]:
        return await self.store.get_journal(invocation_id)

    async def get_events(self, invocation_id: str) -> list[Event]:
        return await self.store.get_events(invocation_id)

    async def list_invocations(
        self,
        *,
        service: str | None = None,
        handler: str | None = None,
        statuses: Sequence[str] | None = None,
        deployment: str | None = None,
        limit: int = 100,
    ) -> list[InvocationView]:
        return await self.store.list_invocations(
            service=service,
            handler=handler,
            statuses=statuses,
            deployment=deployment,
            limit=limit,
        )

    async def count_by_status(self) -> dict[str, int]:
        return await self.store.count_by_status()
