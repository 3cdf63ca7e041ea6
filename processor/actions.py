"""Actions: side effects the state machine asks for, as data (SPEC §1).

They are executed only by the leader and only after the transaction that produced them has
committed. Followers and the replay tool drop them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from processor.commands import TimerKey
from processor.status import Result


@dataclass(frozen=True, slots=True)
class StartAttempt:
    invocation_id: str
    attempt: int
    service: str
    handler: str
    deployment_id: str | None  # the pinned deployment; None = the latest serving the service


@dataclass(frozen=True, slots=True)
class AbortAttempt:
    """Close the HTTP call of an attempt. `attempt=None` aborts whatever attempt is in flight."""

    invocation_id: str
    attempt: int | None = None


@dataclass(frozen=True, slots=True)
class ScheduleTimer:
    invocation_id: str
    timer: TimerKey
    fire_at: int


@dataclass(frozen=True, slots=True)
class CancelTimer:
    """Forget a timer. `timer=None` cancels every timer of the invocation."""

    invocation_id: str
    timer: TimerKey | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer the HTTP request that appended the command. `code` is the admin API status code."""

    request_id: str
    code: int
    body: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NotifyCompletion:
    """Wake every caller waiting for the invocation's result."""

    invocation_id: str
    result: Result


Action = StartAttempt | AbortAttempt | ScheduleTimer | CancelTimer | Reply | NotifyCompletion
