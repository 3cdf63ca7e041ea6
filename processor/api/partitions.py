"""What the HTTP APIs need from the partitions, and routing of ids to partitions.

The APIs never touch a log or a store directly: they go through `PartitionHandle` (implemented by
`processor.partition.Partition`) so every state change is a proposed command whose answer is the
state machine's `Reply`, given only after the command has been applied.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from processor.actions import Reply
from processor.commands import Command
from processor.ids import partition_of, partition_of_key
from processor.state_machine.types import Event
from processor.status import InvocationView, Result

JournalRow = tuple[int, dict[str, Any], int]


class PartitionHandle(Protocol):
    @property
    def partition_id(self) -> int: ...

    async def propose(self, make_command: Callable[[str], Command]) -> Reply:
        """Append the command built for a fresh request id; answer with its `Reply`."""
        ...

    def wait_for_completion(self, invocation_id: str) -> asyncio.Future[Result]:
        """A future resolved when the invocation completes; register it before proposing."""
        ...

    def forget_waiter(self, invocation_id: str, future: asyncio.Future[Result]) -> None: ...

    async def get_view(self, invocation_id: str) -> InvocationView | None: ...

    async def get_journal(self, invocation_id: str) -> list[JournalRow]: ...

    async def get_events(self, invocation_id: str) -> list[Event]: ...

    async def list_invocations(
        self,
        *,
        service: str | None,
        handler: str | None,
        statuses: Sequence[str] | None,
        deployment: str | None,
        limit: int,
    ) -> list[InvocationView]: ...

    async def count_by_status(self) -> dict[str, int]: ...


class PartitionRouter:
    """Routes an invocation id to the partition that owns its key range."""

    def __init__(self, partitions: Sequence[PartitionHandle]) -> None:
        self.partitions = list(partitions)

    def for_id(self, invocation_id: str) -> PartitionHandle:
        return self.partitions[partition_of(invocation_id, len(self.partitions))]

    def for_key(self, partition_key: int) -> PartitionHandle:
        """The partition of an id whose partition key is known (saves decoding the id)."""
        return self.partitions[partition_of_key(partition_key, len(self.partitions))]
