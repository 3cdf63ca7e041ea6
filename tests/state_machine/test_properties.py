"""Hypothesis drives random command sequences through the state machine and checks invariants.

Sequences include stale effects (older attempt numbers), duplicated commands, timers that fire
late or for things that no longer exist, journal gaps and wrong entry kinds. After every command:
the status changed along the table, a paused invocation started nothing unless resumed or
canceled, completed is terminal except purge, `retry_count` stays within `max_attempts`, attempt
numbers only grow, and the stored timers/journal/events agree with the view. At the end the whole
log is applied again to a fresh environment and must give the same views and actions.
"""

from __future__ import annotations

import copy

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from processor.actions import Action, NotifyCompletion, Reply, StartAttempt
from processor.commands import Command, TimerFired, TimerKey, TimerKind
from processor.retry import RetryPolicy
from processor.state_machine.transitions import TABLE, Kind, kind_of
from processor.status import Failure, Status
from tests import builders as b
from tests.builders import DP_1, DP_2, INV, INV_2, TestEnv
from tests.matchers import actions_of

IDS = st.sampled_from([INV, INV, INV, INV_2])  # mostly one invocation: longer histories
POLICIES = st.sampled_from(
    [
        RetryPolicy(initial_interval_ms=10, max_attempts=3),
        RetryPolicy(initial_interval_ms=10, max_attempts=1),
        RetryPolicy(initial_interval_ms=10, max_attempts=1, on_max_attempts="kill"),
        RetryPolicy(initial_interval_ms=10, max_attempts=None),
    ]
)
DEPLOYMENTS = st.sampled_from([None, DP_1, DP_2])
COMPLETION_IDS = st.integers(0, 3)
ATTEMPT_LAG = st.sampled_from([0] * 8 + [1, 2])  # mostly the current attempt, sometimes stale
MESSAGES = st.sampled_from(["boom", "timeout"])
REQUEST_IDS = st.sampled_from(["req", None])


class InvocationMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.env = TestEnv()
        self.log: list[Command] = []
        self.outputs: list[list[Action]] = []

    # --- applying, with the per-command invariants ---

    def run(self, command: Command) -> None:
        invocation_id = getattr(command, "invocation_id", None)
        before = self.env.views.get(invocation_id) if invocation_id else None
        snapshot = copy.deepcopy(before)
        actions = self.env.apply(command)
        self.log.append(command)
        self.outputs.append(actions)
        assert before == snapshot, "apply mutated the view it was given"
        if invocation_id is None:
            return
        after = self.env.views.get(invocation_id)
        kind = kind_of(command)  # type: ignore[arg-type]
        s0 = None if before is None else before.status
        s1 = None if after is None else after.status
        assert TABLE[kind][s0].allows(s0, s1), f"{kind}: {s0} → {s1} is not in the table"
        starts = actions_of(actions, StartAttempt)
        assert len(starts) <= 1
        if s0 is Status.PAUSED and starts:
            assert kind in (Kind.RESUME, Kind.CANCEL), f"paused invocation started by {kind}"
        if s0 is Status.COMPLETED:
            assert s1 is (None if kind is Kind.PURGE else Status.COMPLETED)
        if before is not None and after is not None:
            assert after.attempt >= before.attempt
            assert after.created_at == before.created_at
        if starts:
            assert after is not None and s1 is Status.RUNNING
            assert starts[0].attempt == after.attempt
            assert starts[0].attempt > (before.attempt if before else 0)
            assert starts[0].deployment_id == after.pinned_deployment
        notified = actions_of(actions, NotifyCompletion)
        if s1 is Status.COMPLETED and s0 is not Status.COMPLETED:
            assert after is not None and after.result is not None
            assert [n.result for n in notified] == [after.result]
        else:
            assert not notified
        replies = actions_of(actions, Reply)
        request_id = getattr(command, "request_id", None)
        assert len(replies) == (1 if request_id is not None else 0)

    @initialize(policy=POLICIES, delayed=st.sampled_from([False, False, False, True]))
    def start_with_an_invocation(self, policy: RetryPolicy, delayed: bool) -> None:
        """Most interesting sequences need an invocation first; `invoke` can add (or repeat) it."""
        execute_at = self.env.now + 1000 if delayed else None
        self.run(b.invoke(INV, policy=policy, execute_at=execute_at))

    # --- user commands ---

    @rule(invocation_id=IDS, delayed=st.booleans(), policy=POLICIES, request_id=REQUEST_IDS)
    def invoke(
        self, invocation_id: str, delayed: bool, policy: RetryPolicy, request_id: str | None
    ) -> None:
        execute_at = self.env.now + 1000 if delayed else None
        self.run(
            b.invoke(invocation_id, policy=policy, execute_at=execute_at, request_id=request_id)
        )

    @rule(invocation_id=IDS)
    def pause(self, invocation_id: str) -> None:
        self.run(b.pause(invocation_id))

    @rule(invocation_id=IDS, deployment=DEPLOYMENTS, policy=st.none() | POLICIES)
    def resume(
        self, invocation_id: str, deployment: str | None, policy: RetryPolicy | None
    ) -> None:
        self.run(b.resume(invocation_id, deployment=deployment, policy=policy))

    @rule(invocation_id=IDS)
    def cancel(self, invocation_id: str) -> None:
        self.run(b.cancel(invocation_id))

    @rule(invocation_id=IDS)
    def kill(self, invocation_id: str) -> None:
        self.run(b.kill(invocation_id))

    @rule(invocation_id=IDS)
    def purge(self, invocation_id: str) -> None:
        self.run(b.purge(invocation_id))

    @rule()
    def announce_leader(self) -> None:
        self.run(b.announce_leader(len(self.log)))

    @rule()
    def duplicate_last_command(self) -> None:
        if self.log:
            self.run(self.log[-1])

    # --- timers, on time or late ---

    @rule(invocation_id=IDS)
    def fire_start(self, invocation_id: str) -> None:
        self.run(b.start_timer_fired(invocation_id))

    @rule(invocation_id=IDS, data=st.data())
    def fire_a_stored_timer(self, invocation_id: str, data: st.DataObject) -> None:
        """What the leader does: fire a timer that is stored (due or not: the log decides)."""
        timers = sorted(self.env.timers(invocation_id), key=lambda k: (k.kind.value, k.key))
        if timers:
            self.run(TimerFired(invocation_id, data.draw(st.sampled_from(timers))))

    @rule(invocation_id=IDS)
    def fire_all_stored_timers(self, invocation_id: str) -> None:
        """A leader catching up after a while: every stored timer fires, earliest first."""
        timers = self.env.timers(invocation_id)
        for key in sorted(timers, key=lambda k: (timers[k], k.kind.value, k.key)):
            self.run(TimerFired(invocation_id, key))

    @rule(invocation_id=IDS, lag=ATTEMPT_LAG)
    def fire_retry(self, invocation_id: str, lag: int) -> None:
        self.run(b.retry_timer_fired(invocation_id, self._attempt(invocation_id) - lag))

    @rule(invocation_id=IDS, completion_id=COMPLETION_IDS)
    def fire_sleep(self, invocation_id: str, completion_id: int) -> None:
        self.run(b.sleep_timer_fired(invocation_id, completion_id))

    # --- attempt effects, current or stale ---

    def _attempt(self, invocation_id: str) -> int:
        view = self.env.views.get(invocation_id)
        return view.attempt if view else 1

    def _index(self, invocation_id: str) -> int:
        view = self.env.views.get(invocation_id)
        return view.journal_length if view else 1

    @rule(invocation_id=IDS, lag=ATTEMPT_LAG, deployment=st.sampled_from([DP_1, DP_2]))
    def pinned(self, invocation_id: str, lag: int, deployment: str) -> None:
        self.run(b.pinned(invocation_id, self._attempt(invocation_id) - lag, deployment))

    @rule(invocation_id=IDS, lag=ATTEMPT_LAG)
    def run_entry(self, invocation_id: str, lag: int) -> None:
        attempt = self._attempt(invocation_id) - lag
        self.run(b.run_entry(invocation_id, attempt, self._index(invocation_id)))

    @rule(invocation_id=IDS, lag=ATTEMPT_LAG, completion_id=COMPLETION_IDS)
    def sleep_entry(self, invocation_id: str, lag: int, completion_id: int) -> None:
        attempt = self._attempt(invocation_id) - lag
        index, wake_up_at = self._index(invocation_id), self.env.now + 500
        self.run(b.sleep_entry(invocation_id, attempt, index, completion_id, wake_up_at))

    @rule(
        invocation_id=IDS,
        gap=st.sampled_from([-1, 0, 1]),
        kind=st.sampled_from(["run", "completion", "cancel", "call"]),
    )
    def odd_entry(self, invocation_id: str, gap: int, kind: str) -> None:
        """Gaps, duplicate indexes, processor-only kinds, unknown kinds."""
        index = self._index(invocation_id) + gap
        self.run(b.entry(invocation_id, self._attempt(invocation_id), index, kind=kind))

    @rule(
        invocation_id=IDS,
        lag=ATTEMPT_LAG,
        awaiting=st.lists(COMPLETION_IDS, max_size=2, unique=True),
    )
    def suspended(self, invocation_id: str, lag: int, awaiting: list[int]) -> None:
        attempt = self._attempt(invocation_id) - lag
        self.run(b.suspended(invocation_id, attempt, tuple(awaiting)))

    @rule(invocation_id=IDS, lag=ATTEMPT_LAG, failed=st.booleans())
    def completed(self, invocation_id: str, lag: int, failed: bool) -> None:
        attempt = self._attempt(invocation_id) - lag
        failure = Failure(400, "terminal") if failed else None
        self.run(b.completed(invocation_id, attempt, failure=failure))

    @rule(invocation_id=IDS, lag=ATTEMPT_LAG, retryable=st.booleans(), message=MESSAGES)
    def attempt_failed(self, invocation_id: str, lag: int, retryable: bool, message: str) -> None:
        attempt = self._attempt(invocation_id) - lag
        self.run(b.attempt_failed(invocation_id, attempt, retryable=retryable, message=message))

    # --- invariants over the stored state ---

    @invariant()
    def stored_state_agrees_with_views(self) -> None:
        for invocation_id, view in self.env.views.items():
            timers = self.env.timers(invocation_id)
            policy = view.retry_policy
            if policy.max_attempts is not None:
                assert view.retry_count <= policy.max_attempts
            assert view.journal_length == len(self.env.journal(invocation_id))
            assert [e.seq for e in self.env.events(invocation_id)] == list(range(view.event_count))
            assert not (view.completed_ids & view.sleeping)
            sleeps = {k.key for k in timers if k.kind is TimerKind.SLEEP}
            assert sleeps == view.sleeping
            start = TimerKey(TimerKind.START, 0)
            assert (start in timers) == (view.status is Status.SCHEDULED)
            retries = {k: at for k, at in timers.items() if k.kind is TimerKind.RETRY}
            if view.status is Status.BACKING_OFF:
                assert retries == {TimerKey(TimerKind.RETRY, view.attempt): view.next_retry_at}
            else:
                assert not retries and view.next_retry_at is None
            assert bool(view.awaiting) == (view.status is Status.SUSPENDED)
            if view.status is Status.COMPLETED:
                assert view.result is not None and not timers
            if view.status in (Status.RUNNING, Status.SCHEDULED):
                assert view.status is Status.RUNNING or view.attempt == 0
            if view.cancel_requested:
                assert {"kind": "cancel"} in self.env.journal(invocation_id)

    def teardown(self) -> None:
        replay = TestEnv()
        outputs = [replay.apply(command) for command in self.log]
        assert outputs == self.outputs, "the same log gave different actions"
        assert replay.views == self.env.views
        assert replay.journals == self.env.journals
        assert replay.event_rows == self.env.event_rows


InvocationMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=50, deadline=None
)
test_random_command_sequences_keep_the_invariants = InvocationMachine.TestCase
