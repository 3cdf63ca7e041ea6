"""The leader of one partition: executes the state machine's actions after commit.

It is the runner's action sink. StartAttempt runs an attempt through the invoker (bounded pool,
see `attempts.py`); AbortAttempt cancels it (closing its HTTP call); Schedule/CancelTimer drive the
timer service; Reply and NotifyCompletion resolve the futures of waiting requests and callers.
Everything the leader learns (attempt effects, fired timers, proposals) goes back through the log.

Taking over (SPEC §8): the leader waits until the runner has applied the whole log, appends
AnnounceLeader(epoch + 1), waits until that is applied too, and then rebuilds its work from the
stored state only: an attempt for every `running` invocation and every stored timer. Actions handed
to the sink before that point are dropped (they belong to batches whose effects the rebuild reads
from state), and proposals wait until the rebuild is done.

Attempt numbers across a restart: the state machine numbers attempts, and the leader must not
invent numbers. A `running` invocation found at takeover is re-issued with the view's current
attempt number n. That is safe: the process that ran attempt n before is gone (its HTTP call died
with it, so no duplicate is in flight), every effect it appended before the takeover record has
been applied (they precede it in the log), and the re-issued attempt replays the stored journal and
continues after it, so its effects are accepted (n is still current) and its indexes line up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import anyio.abc
import structlog

from log.errors import LogError
from processor.actions import (
    AbortAttempt,
    Action,
    CancelTimer,
    NotifyCompletion,
    Reply,
    ScheduleTimer,
    StartAttempt,
)
from processor.codec import encode
from processor.commands import AnnounceLeader, AttemptFailed, Command, TimerFired
from processor.leader.attempts import Attempts, Slot
from processor.leader.clock import Clock, SystemClock
from processor.leader.invoker import (
    CODE_NO_DEPLOYMENT,
    AttemptRequest,
    Invoker,
    no_deployment_failure,
    seed_for,
)
from processor.leader.replies import Replies
from processor.leader.timers import DueTimer, TimerService
from processor.registry import Registry
from processor.status import Failure, Result
from processor.storage.loop_reader import LoopReader
from processor.storage.store import Store

log = structlog.get_logger("processor.leader")


class LogWriter(Protocol):
    """The part of `log.Log` the leader uses."""

    async def append_batch(self, payloads: Sequence[bytes]) -> list[int]: ...
    def tail(self) -> int: ...


class AppliedWaiter(Protocol):
    """The part of the runner the leader uses."""

    @property
    def leader_epoch(self) -> int: ...
    async def wait_applied(self, lsn: int) -> None: ...


@dataclass(frozen=True, slots=True)
class LeaderConfig:
    max_concurrent_attempts: int = 1000
    inactivity_timeout_s: float = 60.0


class Leader:
    def __init__(
        self,
        *,
        log_writer: LogWriter,
        store: Store,
        runner: AppliedWaiter,
        registry: Registry,
        clock: Clock | None = None,
        config: LeaderConfig | None = None,
        partition_id: int = 0,
    ) -> None:
        self.log = log_writer
        self.store = store
        self.runner = runner
        self.registry = registry
        self.clock = clock or SystemClock()
        self.config = config or LeaderConfig()
        self.partition_id = partition_id
        self.epoch = 0
        self.replies = Replies()
        self.timers = TimerService(self.clock, self._fire_timers)
        self.attempts = Attempts(self._run_attempt, self.config.max_concurrent_attempts)
        self._invoker = Invoker(self.config.inactivity_timeout_s)
        self._journals: LoopReader | None = None  # open while the leader runs
        self._accepting = False
        self._ready = anyio.Event()
        self._stopped = False
        self._log = log.bind(partition=partition_id)

    # --- lifecycle -------------------------------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Take over the partition and execute actions until cancelled."""
        self._journals = LoopReader(self.store.path)
        try:
            async with self._invoker, anyio.create_task_group() as tg:
                await self._take_over()
                self.attempts.bind(tg)
                await tg.start(self.timers.run)
                self._ready.set()
                task_status.started()
                await anyio.sleep_forever()
        finally:
            self._accepting = False
            self._stopped = True
            self.attempts.abort_all()
            self.replies.stop(f"the leader of partition {self.partition_id} stopped")
            self._ready.set()  # release proposals still waiting: they now fail with LeaderStopped
            self._journals.close()
            self._journals = None

    async def _take_over(self) -> None:
        # Every AnnounceLeader already in the log must be applied before choosing our epoch.
        await self.runner.wait_applied(self.log.tail())
        self.epoch = self.runner.leader_epoch + 1
        (lsn,) = await self.log.append_batch([encode(AnnounceLeader(self.epoch))])
        await self.runner.wait_applied(lsn)
        running = await self.store.running_invocations()
        timers = await self.store.all_timers()
        self._accepting = True
        for view in running:
            self.attempts.start(
                StartAttempt(
                    view.id, view.attempt, view.service, view.handler, view.pinned_deployment
                )
            )
        self.timers.load((t.invocation_id, t.timer, t.fire_at) for t in timers)
        self._log.info(
            "leader took over", epoch=self.epoch, lsn=lsn, running=len(running), timers=len(timers)
        )

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and not self._stopped

    async def wait_ready(self) -> None:
        await self._ready.wait()

    # --- the runner's action sink ----------------------------------------------------------------

    async def sink(self, actions: list[Action]) -> None:
        """Execute committed actions. Never awaits: the runner's loop calls it between batches."""
        if not self._accepting:
            return
        for action in actions:
            match action:
                case StartAttempt():
                    self.attempts.start(action)
                case AbortAttempt(invocation_id=inv, attempt=n):
                    self.attempts.abort(inv, n)
                case ScheduleTimer(invocation_id=inv, timer=timer, fire_at=fire_at):
                    self.timers.schedule(inv, timer, fire_at)
                case CancelTimer(invocation_id=inv, timer=timer):
                    self.timers.cancel(inv, timer)
                case Reply():
                    self.replies.reply(action)
                case NotifyCompletion(invocation_id=inv, result=result):
                    self.replies.notify(inv, result)

    # --- requests from the APIs ------------------------------------------------------------------

    async def propose(self, make_command: Callable[[str], Command]) -> Reply:
        """Append the command built for a fresh request id; return its Reply once applied."""
        if not self._ready.is_set():  # anyio's wait() yields to the loop even when it is set
            await self._ready.wait()
        request_id, future = self.replies.new_request()
        try:
            await self.append([make_command(request_id)])
            return await future
        finally:
            self.replies.forget_request(request_id)

    def wait_for_completion(self, invocation_id: str) -> asyncio.Future[Result]:
        """A future resolved by NotifyCompletion; register it BEFORE proposing the invoke."""
        return self.replies.wait_for_completion(invocation_id)

    def forget_waiter(self, invocation_id: str, future: asyncio.Future[Result]) -> None:
        self.replies.forget_waiter(invocation_id, future)

    async def append(self, commands: Sequence[Command]) -> list[int]:
        return await self.log.append_batch([encode(c) for c in commands])

    # --- timers and attempts ---------------------------------------------------------------------

    async def _fire_timers(self, due: list[DueTimer]) -> None:
        await self.append([TimerFired(inv, timer) for inv, timer in due])

    async def _run_attempt(self, slot: Slot) -> None:
        async def emit(commands: list[Command]) -> None:
            # Drop the effects of an attempt that was aborted or superseded meanwhile.
            if self.attempts.is_current(slot) and commands:
                await self.append(commands)

        try:
            await self._attempt(slot, emit)
        except LogError:
            raise  # the partition cannot record anything any more: stopping it is right
        except Exception as exc:
            # A bug in one attempt must not take the partition (and the daemon) down, nor do it
            # again after every restart: record it as a retryable failure of that attempt.
            self._log.exception("attempt crashed", invocation=slot.invocation_id)
            message = f"internal error while running attempt {slot.attempt}: {exc!a}"
            failure = AttemptFailed(slot.invocation_id, slot.attempt, Failure(500, message[:2000]))
            try:
                await emit([failure])
            except LogError:
                raise
            except Exception:
                self._log.exception("could not record the crash", invocation=slot.invocation_id)

    async def _attempt(self, slot: Slot, emit: Callable[[list[Command]], Awaitable[None]]) -> None:
        deployment = (
            self.registry.get(slot.deployment_id)
            if slot.deployment_id
            else self.registry.latest_for(slot.service)
        )
        reason = _no_deployment_reason(slot, deployment is None, self.registry)
        if deployment is not None and reason is None:
            handlers = deployment.services[slot.service].handlers
            if slot.handler not in handlers:
                reason = (
                    f"deployment {deployment.id} ({deployment.uri}) does not serve handler "
                    f"{slot.service}/{slot.handler}"
                )
        if deployment is None or reason is not None:
            self._log.info("attempt has no deployment", invocation=slot.invocation_id, why=reason)
            await emit(
                [no_deployment_failure(slot.invocation_id, slot.attempt, slot.service, reason)]
            )
            return
        # Read on the loop (no thread hop); a long journal is read in the store's thread.
        rows = self._journals.journal(slot.invocation_id) if self._journals else None
        if rows is None:
            rows = await self.store.get_journal(slot.invocation_id)
        journal: list[dict[str, Any]] = [{**entry, "appended_at": at} for _, entry, at in rows]
        request = AttemptRequest(
            invocation_id=slot.invocation_id,
            attempt=slot.attempt,
            service=slot.service,
            handler=slot.handler,
            deployment_id=deployment.id,
            uri=deployment.uri,
            journal=journal,
            seed=seed_for(slot.invocation_id),
        )
        await self._invoker.run_attempt(request, emit)


def _no_deployment_reason(slot: Slot, missing: bool, registry: Registry) -> str | None:
    if not missing:
        if slot.deployment_id and not registry.serves(slot.deployment_id, slot.service):
            return f"pinned deployment {slot.deployment_id} does not serve service {slot.service!r}"
        return None
    if slot.deployment_id:
        return (
            f"pinned deployment {slot.deployment_id} is not registered; resume the invocation "
            "with another deployment"
        )
    return None  # the invoker's default message: no deployment serves the service


__all__ = ["CODE_NO_DEPLOYMENT", "Leader", "LeaderConfig"]
