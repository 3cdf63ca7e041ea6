"""A seeded generator of realistic partition logs (benchmarks, determinism tests, golden logs).

`generate(config)` yields encoded commands in log order. It is a small discrete-event simulation:
users invoke handlers (some delayed), a simulated leader executes the actions that the real state
machine returns (attempts report pinned / entries / suspended / completed / failed, timers fire),
and users pause, resume (sometimes onto a new deployment), cancel, kill and purge. Because the
simulation reacts to the real `apply`, every command is one a live partition could log, including
the stale ones (effects of aborted attempts, cancelled timers that fire late, duplicate requests).

The simulation clock starts at `config.start_ms` and is independent of the log's clock: commands
carry the absolute times they need (execute_at, wake_up_at), as the real leader's do.

`simple(config)` is the cheap happy path (invoke, pinned, one entry, completed) generated without
the state machine, for memory-scaling runs with a million invocations.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

from processor.actions import ScheduleTimer, StartAttempt
from processor.codec import encode
from processor.commands import (
    AttemptCompleted,
    AttemptEntry,
    AttemptFailed,
    AttemptPinned,
    AttemptSuspended,
    Cancel,
    Command,
    Invoke,
    Kill,
    Pause,
    Purge,
    Resume,
    TimerFired,
)
from processor.ids import make_invocation_id
from processor.retry import RetryPolicy
from processor.state_machine import apply
from processor.state_machine.types import ApplyContext
from processor.status import Failure, InvocationView, Status

SERVICES = (("Greeter", "greet"), ("Checkout", "checkout"), ("Profile", "update"))
DEPLOYMENTS = ("dp_0000000000000000000001", "dp_0000000000000000000002")
ERRORS = (
    (500, "connection refused"),
    (503, "deployment overloaded"),
    (500, "KeyError: 'address'"),
)


@dataclass(frozen=True)
class WorkloadConfig:
    invocations: int = 1000
    seed: int = 1
    concurrency: int = 200  # invocations in flight at once
    fail_rate: float = 0.12  # chance an attempt step fails (retryable)
    fatal_rate: float = 0.01  # chance a failure is not retryable
    pause_rate: float = 0.04  # chance a user pauses an invocation while it runs
    cancel_rate: float = 0.01
    kill_rate: float = 0.005
    sleep_rate: float = 0.25  # chance the handler sleeps once
    delayed_rate: float = 0.05  # invoked with a start delay
    purge_rate: float = 0.3  # completed invocations purged later
    duplicate_rate: float = 0.02  # the same invoke (same id) arrives twice
    max_steps: int = 4  # run entries per handler
    start_ms: int = 1_700_000_000_000


@dataclass
class _Plan:
    steps: int  # run entries the handler writes
    sleep_after: int  # sleep after this many run entries (-1: no sleep)
    sleep_ms: int
    runs_done: int = 0
    slept: bool = False


class _Sim:
    def __init__(self, cfg: WorkloadConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.now = cfg.start_ms
        self.lsn = 0
        self.views: dict[str, InvocationView] = {}
        self.plans: dict[str, _Plan] = {}
        self.heap: list[tuple[int, int, Callable[[], None]]] = []
        self.seq = 0
        self.out: list[bytes] = []
        self.started = 0
        self.live = 0
        self.policy_pause = RetryPolicy(100, 2.0, 2_000, 4, "pause")
        self.policy_kill = RetryPolicy(100, 2.0, 2_000, 6, "kill")

    def at(self, delay_ms: int, fn: Callable[[], None]) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (self.now + delay_ms, self.seq, fn))

    def emit(self, cmd: Command) -> None:
        """Log `cmd` (apply it to the simulated state and react to its actions)."""
        self.lsn += 1
        self.now += self.rng.randint(0, 2)
        self.out.append(encode(cmd))
        inv = getattr(cmd, "invocation_id", None)
        if inv is None:
            return
        before = self.views.get(inv)
        t = apply(before, cmd, ApplyContext(self.lsn, self.now))
        if t.deleted or t.view is None:
            self.views.pop(inv, None)
        else:
            self.views[inv] = t.view
            if t.view.status is Status.COMPLETED and (
                before is None or before.status is not Status.COMPLETED
            ):
                self.live -= 1
                self.plans.pop(inv, None)
                if self.rng.random() < self.cfg.purge_rate:
                    self.at(self.rng.randint(100, 5_000), lambda: self.emit(Purge(inv, self.req())))
                else:
                    self.views.pop(inv, None)  # forgotten by the simulation (kept in the store)
        for a in t.actions:
            if isinstance(a, StartAttempt):
                self.at(self.rng.randint(1, 20), partial(self.attempt_step, inv, a.attempt))
            elif isinstance(a, ScheduleTimer):
                delay = max(0, a.fire_at - self.now)
                self.at(delay, partial(self.emit, TimerFired(inv, a.timer)))

    def req(self) -> str:
        self.seq += 1
        return f"req-{self.seq}"

    def invoke(self) -> None:
        cfg, rng = self.cfg, self.rng
        self.started += 1
        self.live += 1
        inv = make_invocation_id(rng.getrandbits(64), rng.getrandbits(128))
        service, handler = rng.choice(SERVICES)
        sleep_after = rng.randint(0, cfg.max_steps) if rng.random() < cfg.sleep_rate else -1
        self.plans[inv] = _Plan(rng.randint(1, cfg.max_steps), sleep_after, rng.randint(50, 3_000))
        delayed = rng.random() < cfg.delayed_rate
        cmd = Invoke(
            invocation_id=inv,
            service=service,
            handler=handler,
            input=b'{"name": "Ada"}',
            retry_policy=self.policy_pause if rng.random() < 0.8 else self.policy_kill,
            headers={"x-request": str(self.started)},
            execute_at=self.now + rng.randint(100, 2_000) if delayed else None,
            request_id=self.req(),
        )
        self.emit(cmd)
        if rng.random() < cfg.duplicate_rate:
            self.at(rng.randint(0, 50), lambda: self.emit(cmd))
        if rng.random() < cfg.pause_rate:
            self.at(rng.randint(1, 60), lambda: self.user_pause(inv))
        if rng.random() < cfg.cancel_rate:
            self.at(rng.randint(1, 200), lambda: self.emit(Cancel(inv, self.req())))
        if rng.random() < cfg.kill_rate:
            self.at(rng.randint(1, 200), lambda: self.emit(Kill(inv, self.req())))

    def user_pause(self, inv: str) -> None:
        self.emit(Pause(inv, self.req()))
        self.at(self.rng.randint(100, 3_000), lambda: self.user_resume(inv))

    def user_resume(self, inv: str) -> None:
        if self.rng.random() < 0.3:
            dep = self.rng.choice(DEPLOYMENTS)
            self.emit(Resume(inv, dep, self.policy_pause, self.req()))
        else:
            self.emit(Resume(inv, None, None, self.req()))

    def attempt_step(self, inv: str, attempt: int) -> None:
        """The next thing attempt `attempt` reports, if it is still the live attempt."""
        view, plan, rng = self.views.get(inv), self.plans.get(inv), self.rng
        if view is None or plan is None:
            return
        stale = view.status is not Status.RUNNING or view.attempt != attempt
        if stale:
            if rng.random() < 0.02:  # a late report of an aborted attempt reaches the log
                self.emit(AttemptFailed(inv, attempt, Failure(500, "aborted"), True, None))
            return
        if view.pinned_deployment is None:
            self.emit(AttemptPinned(inv, attempt, DEPLOYMENTS[0]))
            self.at(rng.randint(1, 10), lambda: self.attempt_step(inv, attempt))
            return
        if rng.random() < self.cfg.fail_rate:
            code, message = rng.choice(ERRORS[:2]) if rng.random() < 0.7 else ERRORS[2]
            fatal = rng.random() < self.cfg.fatal_rate
            failure = Failure(code, message, None, attempt, view.journal_length - 1)
            self.emit(AttemptFailed(inv, attempt, failure, not fatal, view.pinned_deployment))
            if view.status is not Status.COMPLETED and inv in self.views:
                after = self.views[inv]
                if after.status is Status.PAUSED:  # paused when retries ran out: a user resumes
                    self.at(rng.randint(500, 5_000), lambda: self.user_resume(inv))
            return
        if view.cancel_requested:  # the handler observes the cancel signal and fails
            self.emit(AttemptCompleted(inv, attempt, None, Failure(409, "canceled")))
            return
        index = view.journal_length
        if plan.sleep_after == plan.runs_done and not plan.slept:
            cid = 1
            entry = {"kind": "sleep", "completion_id": cid, "wake_up_at": self.now + plan.sleep_ms}
            if self._stored(inv, AttemptEntry(inv, attempt, index, entry)):
                plan.slept = True
                self.at(rng.randint(1, 5), lambda: self.attempt_step(inv, attempt))
            return
        if plan.slept and 1 not in view.completed_ids:
            self.emit(AttemptSuspended(inv, attempt, (1,)))
            return
        if plan.runs_done < plan.steps:
            entry = {"kind": "run", "name": f"step-{plan.runs_done}", "value": b'{"ok": true}'}
            if self._stored(inv, AttemptEntry(inv, attempt, index, entry)):
                plan.runs_done += 1
                self.at(rng.randint(1, 10), lambda: self.attempt_step(inv, attempt))
            return
        self.emit(AttemptCompleted(inv, attempt, b'{"greeting": "hello Ada"}', None))

    def _stored(self, inv: str, cmd: AttemptEntry) -> bool:
        self.emit(cmd)
        after = self.views.get(inv)
        return after is not None and after.journal_length > cmd.index

    def run(self) -> Iterator[bytes]:
        cfg = self.cfg
        while self.started < cfg.invocations or self.heap:
            while self.started < cfg.invocations and self.live < cfg.concurrency:
                self.invoke()
            if self.heap:
                when, _, fn = heapq.heappop(self.heap)
                self.now = max(self.now, when)
                fn()
            if len(self.out) >= 1024 or not self.heap:
                yield from self.out
                self.out.clear()
        yield from self.out


def generate(cfg: WorkloadConfig) -> Iterator[bytes]:
    """The encoded commands of a realistic workload, in log order."""
    return _Sim(cfg).run()


def simple(invocations: int, seed: int = 1) -> Iterator[bytes]:
    """invoke → pinned → one entry → completed for each invocation, 50 in flight (no state
    machine needed: every command follows the happy path)."""
    rng = random.Random(seed)
    policy = RetryPolicy()
    window: list[str] = []
    for n in range(invocations):
        inv = make_invocation_id(rng.getrandbits(64), rng.getrandbits(128))
        yield encode(Invoke(inv, "Greeter", "greet", b'"Ada"', policy, request_id=f"r{n}"))
        window.append(inv)
        if len(window) >= 50 or n == invocations - 1:
            for inv in window:
                yield encode(AttemptPinned(inv, 1, DEPLOYMENTS[0]))
            for inv in window:
                yield encode(AttemptEntry(inv, 1, 1, {"kind": "run", "name": "a", "value": b"1"}))
            for inv in window:
                yield encode(AttemptCompleted(inv, 1, b'"hello"', None))
            window.clear()
