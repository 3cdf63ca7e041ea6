"""Requests waiting for their command's `Reply`, and callers waiting for an invocation's result.

Both are plain futures keyed by request id / invocation id. They are registered BEFORE the command
is appended (so the answer cannot arrive first) and resolved by the leader when it executes the
`Reply` / `NotifyCompletion` actions, i.e. only after the command has been applied and committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets

from processor.actions import Reply
from processor.status import Result


class LeaderStopped(RuntimeError):
    """The partition's leader stopped before the answer came; the request may be retried."""


class Replies:
    def __init__(self) -> None:
        # Unique per leader instance, so a request id never matches a Reply meant for another
        # leader's request (e.g. a command appended before a restart and applied after it).
        self._prefix = f"rq{secrets.token_hex(4)}"
        self._counter = itertools.count(1)
        self._pending: dict[str, asyncio.Future[Reply]] = {}
        self._waiters: dict[str, list[asyncio.Future[Result]]] = {}
        self._stopped: str | None = None

    def new_request(self) -> tuple[str, asyncio.Future[Reply]]:
        self._check()
        request_id = f"{self._prefix}-{next(self._counter)}"
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        return request_id, future

    def forget_request(self, request_id: str) -> None:
        self._pending.pop(request_id, None)

    def reply(self, reply: Reply) -> None:
        future = self._pending.pop(reply.request_id, None)
        if future is not None and not future.done():
            future.set_result(reply)

    def wait_for_completion(self, invocation_id: str) -> asyncio.Future[Result]:
        self._check()
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(invocation_id, []).append(future)
        return future

    def forget_waiter(self, invocation_id: str, future: asyncio.Future[Result]) -> None:
        waiters = self._waiters.get(invocation_id)
        if waiters is None:
            return
        with contextlib.suppress(ValueError):
            waiters.remove(future)
        if not waiters:
            del self._waiters[invocation_id]

    def notify(self, invocation_id: str, result: Result) -> None:
        for future in self._waiters.pop(invocation_id, []):
            if not future.done():
                future.set_result(result)

    @property
    def pending(self) -> int:
        return len(self._pending) + sum(len(w) for w in self._waiters.values())

    def stop(self, reason: str) -> None:
        """Fail everything still waiting (the leader is going away)."""
        self._stopped = reason
        futures: list[asyncio.Future[Reply] | asyncio.Future[Result]] = list(self._pending.values())
        for waiters in self._waiters.values():
            futures.extend(waiters)
        self._pending.clear()
        self._waiters.clear()
        for future in futures:
            if not future.done():
                future.set_exception(LeaderStopped(reason))
                future.exception()  # mark retrieved: nobody may be awaiting it any more

    def _check(self) -> None:
        if self._stopped is not None:
            raise LeaderStopped(self._stopped)
