"""Every command that can be in a partition's log (SPEC §3), as frozen dataclasses.

A command is the only way state changes. Requests from users carry a `request_id` so the leader can
answer the waiting HTTP request (the state machine emits a `Reply` action naming it); commands
produced internally (timers, attempt effects) carry none. Decisions that need live data (resolved
deployment ids, effective retry policies, new ids, absolute times) are taken before appending and
carried here, so applying a command never reads anything but the command and stored state.

Encoding lives in `processor.codec`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from processor.retry import RetryPolicy
from processor.status import Failure


class TimerKind(enum.StrEnum):
    START = "start"  # a delayed invocation's start time; key is 0
    RETRY = "retry"  # a backing-off invocation's retry; key is the attempt that failed
    SLEEP = "sleep"  # a `ctx.sleep`; key is its completion id


@dataclass(frozen=True, slots=True)
class TimerKey:
    kind: TimerKind
    key: int = 0


@dataclass(frozen=True, slots=True)
class Invoke:
    invocation_id: str
    service: str
    handler: str
    input: bytes
    retry_policy: RetryPolicy
    headers: dict[str, str] = field(default_factory=dict)
    idempotency_key: str | None = None
    execute_at: int | None = None  # absolute ms; None = start now
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class Pause:
    invocation_id: str
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class Resume:
    invocation_id: str
    deployment_id: str | None = None  # None = keep the pinned deployment
    retry_policy: RetryPolicy | None = None  # set when the deployment changes
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class Cancel:
    invocation_id: str
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class Kill:
    invocation_id: str
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class Purge:
    invocation_id: str
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class TimerFired:
    invocation_id: str
    timer: TimerKey


# --- attempt effects: reported by the invoker, each tagged with the attempt number ---


@dataclass(frozen=True, slots=True)
class AttemptPinned:
    invocation_id: str
    attempt: int
    deployment_id: str


@dataclass(frozen=True, slots=True)
class AttemptEntry:
    invocation_id: str
    attempt: int
    index: int
    entry: dict[str, Any]  # a journal entry as sent by the deployment (PROTOCOL.md §3)


@dataclass(frozen=True, slots=True)
class AttemptSuspended:
    invocation_id: str
    attempt: int
    awaiting: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AttemptCompleted:
    invocation_id: str
    attempt: int
    value: bytes | None = None
    failure: Failure | None = None  # a terminal failure (TerminalError); None with value = success


@dataclass(frozen=True, slots=True)
class AttemptFailed:
    invocation_id: str
    attempt: int
    failure: Failure
    retryable: bool = True
    deployment_id: str | None = None  # the deployment the attempt called, when one was chosen


@dataclass(frozen=True, slots=True)
class AnnounceLeader:
    """A new leader takes over the partition; effects of older epochs' attempts are stale."""

    epoch: int


InvocationCommand = (
    Invoke
    | Pause
    | Resume
    | Cancel
    | Kill
    | Purge
    | TimerFired
    | AttemptPinned
    | AttemptEntry
    | AttemptSuspended
    | AttemptCompleted
    | AttemptFailed
)
AttemptEffect = AttemptPinned | AttemptEntry | AttemptSuspended | AttemptCompleted | AttemptFailed
Command = InvocationCommand | AnnounceLeader
