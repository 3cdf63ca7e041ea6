"""Invocation statuses and the in-memory view of one invocation.

`InvocationView` is what the state machine reads and returns: every stored field of SPEC §2 except
the journal itself (which stays on disk). The state machine never mutates a view; it returns a new
one (`dataclasses.replace`). All times are integer milliseconds taken from log record timestamps.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from processor.retry import RetryPolicy


class Status(enum.StrEnum):
    SCHEDULED = "scheduled"
    RUNNING = "running"
    BACKING_OFF = "backing-off"
    SUSPENDED = "suspended"
    PAUSED = "paused"
    COMPLETED = "completed"


@dataclass(frozen=True, slots=True)
class Failure:
    """A failure as stored: of an attempt (retryable) or the terminal result of an invocation."""

    code: int
    message: str
    stacktrace: str | None = None
    attempt: int | None = None
    related_index: int | None = None


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of a completed invocation: exactly one of `value` and `failure` is set."""

    value: bytes | None = None
    failure: Failure | None = None


@dataclass(frozen=True, slots=True)
class InvocationView:
    id: str
    service: str
    handler: str
    status: Status
    created_at: int
    modified_at: int
    retry_policy: RetryPolicy
    idempotency_key: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # status-specific timestamps
    execute_at: int | None = None
    running_at: int | None = None
    completed_at: int | None = None
    next_retry_at: int | None = None
    # attempts: numbered 1, 2, 3 ... for the whole life of the invocation (0 = none started yet)
    attempt: int = 0
    retry_count: int = 0
    pinned_deployment: str | None = None
    last_attempt_deployment: str | None = None
    # journal summary: the entries themselves live in the store
    journal_length: int = 0
    completed_ids: frozenset[int] = frozenset()  # completion ids whose completion is in the journal
    sleeping: frozenset[int] = frozenset()  # completion ids with a sleep timer still stored
    cancel_requested: bool = False
    awaiting: tuple[int, ...] = ()
    last_failure: Failure | None = None
    result: Result | None = None
    event_count: int = 0
    transient_streak: int = (
        0  # identical consecutive transient errors collapsed into the last event
    )
