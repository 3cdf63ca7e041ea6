"""In-memory partitions for the web UI tests: `FakePartition` implements `PartitionHandle`, records
every proposed command and answers the verbs the way SPEC §3.1 says (status codes and new
statuses), so the UI can be exercised through the real `AdminApi` without a daemon.

`discovery_server` serves `GET /discover` for chosen services, so deployments are registered in a
real `Registry` through real discovery (hostile service names included).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from processor.actions import Reply
from processor.api.admin import AdminApi
from processor.api.partitions import JournalRow, PartitionRouter
from processor.commands import Cancel, Command, Kill, Pause, Purge, Resume
from processor.ids import new_invocation_id, partition_of
from processor.registry import Registry
from processor.retry import RetryPolicy
from processor.state_machine.types import Event
from processor.status import Failure, InvocationView, Result, Status

NOT_COMPLETED = {s for s in Status if s is not Status.COMPLETED}


def make_view(
    service: str = "Checkout",
    handler: str = "process",
    status: Status = Status.RUNNING,
    *,
    age_s: float = 60.0,
    invocation_id: str | None = None,
    **fields: Any,
) -> InvocationView:
    created = int((time.time() - age_s) * 1000)
    return InvocationView(
        id=invocation_id or new_invocation_id(),
        service=service,
        handler=handler,
        status=status,
        created_at=created,
        modified_at=created + 1000,
        retry_policy=RetryPolicy(),
        **fields,
    )


class FakePartition:
    def __init__(self, partition_id: int = 0) -> None:
        self._id = partition_id
        self.views: dict[str, InvocationView] = {}
        self.journals: dict[str, list[JournalRow]] = {}
        self.events: dict[str, list[Event]] = {}
        self.commands: list[Command] = []
        # Browser test: a resumed invocation completes shortly after, as a fixed deployment would.
        self.complete_after_resume_s: float | None = None
        self._requests = 0

    @property
    def partition_id(self) -> int:
        return self._id

    async def propose(self, make_command: Callable[[str], Command]) -> Reply:
        self._requests += 1
        command = make_command(f"req-{self._requests}")
        self.commands.append(command)
        code, body = self._apply(command)
        return Reply(f"req-{self._requests}", code, body)

    def _set(self, view: InvocationView, **changes: Any) -> None:
        self.views[view.id] = dataclasses.replace(view, **changes)

    def _apply(self, cmd: Command) -> tuple[int, dict[str, Any]]:
        view = self.views.get(getattr(cmd, "invocation_id", ""))
        if view is None:
            return 404, {"message": f"invocation {getattr(cmd, 'invocation_id', '?')} not found"}
        status = view.status
        no = {"message": f"invocation {view.id} is {status.value}; it cannot be changed that way"}
        match cmd:
            case Pause():
                if status is Status.PAUSED:
                    return 200, {"status": "paused"}
                if status not in (Status.RUNNING, Status.BACKING_OFF):
                    return 409, no
                self._set(view, status=Status.PAUSED, next_retry_at=None)
                return 202, {"status": "paused"}
            case Resume():
                if status is Status.SCHEDULED:
                    return 425, no
                if status is Status.COMPLETED or (
                    status is Status.RUNNING and cmd.deployment_id is not None
                ):
                    return 409, no
                if status is Status.RUNNING:
                    return 200, {"status": "running", "attempt": 1, "already_running": True}
                pin = cmd.deployment_id or view.pinned_deployment
                self._set(view, status=Status.RUNNING, retry_count=0, pinned_deployment=pin)
                if self.complete_after_resume_s is not None:
                    loop = asyncio.get_running_loop()
                    loop.call_later(self.complete_after_resume_s, self._complete, view.id)
                return 200, {"status": "running"}
            case Cancel():
                if status is Status.COMPLETED:
                    return 409, no
                self._set(view, status=Status.RUNNING, cancel_requested=True)
                return 202, {"status": "running"}
            case Kill():
                if status is Status.COMPLETED:
                    return 409, no
                result = Result(failure=Failure(409, "killed"))
                self._set(view, status=Status.COMPLETED, result=result)
                return 200, {"status": "completed"}
            case Purge():
                if status is not Status.COMPLETED:
                    return 409, no
                del self.views[view.id]
                return 200, {"status": "purged"}
        raise AssertionError(f"unexpected command {cmd!r}")

    def _complete(self, invocation_id: str) -> None:
        view = self.views.get(invocation_id)
        if view is not None and view.status is Status.RUNNING:
            self._set(view, status=Status.COMPLETED, result=Result(value=b'{"ok": true}'))

    def wait_for_completion(self, invocation_id: str) -> asyncio.Future[Result]:
        return asyncio.get_running_loop().create_future()

    def forget_waiter(self, invocation_id: str, future: asyncio.Future[Result]) -> None:
        future.cancel()

    async def get_view(self, invocation_id: str) -> InvocationView | None:
        return self.views.get(invocation_id)

    async def get_journal(self, invocation_id: str) -> list[JournalRow]:
        return list(self.journals.get(invocation_id, []))

    async def get_events(self, invocation_id: str) -> list[Event]:
        return list(self.events.get(invocation_id, []))

    async def list_invocations(
        self,
        *,
        service: str | None,
        handler: str | None,
        statuses: Sequence[str] | None,
        deployment: str | None,
        limit: int,
    ) -> list[InvocationView]:
        found = [
            v
            for v in self.views.values()
            if service in (None, v.service)
            and handler in (None, v.handler)
            and (not statuses or v.status.value in statuses)
            and deployment in (None, v.pinned_deployment)
        ]
        found.sort(key=lambda v: (v.created_at, v.id), reverse=True)
        return found[:limit]

    async def count_by_status(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for v in self.views.values():
            counts[v.status.value] = counts.get(v.status.value, 0) + 1
        return counts


class FakeCluster:
    """A few fake partitions behind a real `AdminApi`; `add` stores a view where its id routes."""

    def __init__(self, registry: Registry, partitions: int = 2) -> None:
        self.partitions = [FakePartition(i) for i in range(partitions)]
        self.router = PartitionRouter(self.partitions)
        self.registry = registry
        self.admin = AdminApi(self.router, registry, RetryPolicy())

    def owner(self, invocation_id: str) -> FakePartition:
        return self.partitions[partition_of(invocation_id, len(self.partitions))]

    def add(
        self,
        view: InvocationView,
        journal: Sequence[JournalRow] = (),
        events: Sequence[Event] = (),
    ) -> InvocationView:
        partition = self.owner(view.id)
        partition.views[view.id] = view
        partition.journals[view.id] = list(journal)
        partition.events[view.id] = list(events)
        return view

    def view(self, invocation_id: str) -> InvocationView | None:
        return self.owner(invocation_id).views.get(invocation_id)

    def commands(self) -> list[Command]:
        return [c for p in self.partitions for c in p.commands]


@asynccontextmanager
async def discovery_server(
    services: dict[str, list[str]] | None = None,
) -> AsyncIterator[tuple[str, dict[str, list[str]]]]:
    """Serve `/discover` for `services` (mutable: change it to publish a new version)."""
    served = services if services is not None else {"Checkout": ["process"]}

    async def discover(request: web.Request) -> web.Response:
        doc = {
            "protocol": 1,
            "services": [
                {"name": name, "handlers": [{"name": h} for h in handlers]}
                for name, handlers in served.items()
            ],
        }
        return web.json_response(doc)

    app = web.Application()
    # Any path ending in /discover, so a deployment URI may carry a (hostile) path.
    app.router.add_get("/{prefix:.*}discover", discover)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", served
    finally:
        await runner.cleanup()
