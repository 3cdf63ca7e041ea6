"""The handler's `Context`: durable steps (`run`, `sleep`) replayed against the attempt's journal.

The handler runs from the start on every attempt. The journal it is given interleaves the entries
the SDK produced (`run`, `sleep`) with entries the state machine wrote (`input`, `completion`,
`cancel`), so the context keeps a cursor over the SDK-produced entries only, looks completions up by
id, and appends new entries at `len(journal)` onwards. Every new entry is handed to `emit` and
awaited before the step returns, so it is on the wire before the handler does anything else.

Cancellation is delivered at a deterministic point: the first step whose recorded entry comes after
the `cancel` entry (or that is not recorded at all), or a recorded sleep whose completion was not
stored before the `cancel` entry. Replaying the same journal therefore raises the cancellation at
the same step as the attempt that first saw it, and compensation steps recorded after it replay.
"""

from __future__ import annotations

import inspect
import json
import random as _random
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from processor.sdk.errors import (
    CANCELED_CODE,
    CANCELED_MESSAGE,
    JournalMismatch,
    Suspend,
    TerminalError,
)

Emit = Callable[[int, dict[str, Any]], Awaitable[None]]

_SDK_KINDS = ("run", "sleep")


def _describe(entry: dict[str, Any]) -> str:
    kind = entry.get("kind")
    if kind == "run":
        return f"run {entry.get('name')!r}"
    if kind == "sleep":
        return f"sleep (completion {entry.get('completion_id')})"
    return str(kind)


def _failure_error(failure: Any) -> TerminalError:
    if isinstance(failure, dict):
        return TerminalError(int(failure.get("code", 500)), str(failure.get("message", "")))
    return TerminalError(500, str(failure))


def _decode_value(value: Any) -> Any:
    if value is None or value == b"":
        return None
    return json.loads(value)


class Context:
    """What a handler sees of its invocation; one instance per attempt."""

    def __init__(
        self,
        *,
        invocation_id: str,
        attempt: int,
        journal: list[dict[str, Any]],
        seed: int,
        emit: Emit,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.invocation_id = invocation_id
        self.attempt = attempt
        headers = journal[0].get("headers") if journal else None
        self.headers: dict[str, str] = dict(headers) if isinstance(headers, dict) else {}
        self._journal = journal
        self._emit = emit
        self._clock = clock
        self._rand = _random.Random(seed)
        self._steps = [i for i, e in enumerate(journal) if e.get("kind") in _SDK_KINDS]
        self._cursor = 0
        self._completions: dict[int, int] = {}
        for i, e in enumerate(journal):
            if e.get("kind") == "completion":
                self._completions.setdefault(int(e["completion_id"]), i)
        self._cancels = [i for i, e in enumerate(journal) if e.get("kind") == "cancel"]
        self._cancels_delivered = 0
        self._next_index = len(journal)
        sleep_ids = [int(e["completion_id"]) for e in journal if e.get("kind") == "sleep"]
        self._next_completion_id = max(sleep_ids, default=-1) + 1
        self._busy = False
        # The index of the step being processed, and the last exception a `run` function raised
        # with the index of its step, so the attempt's error can name the related entry.
        self.current_index: int | None = None
        self.last_step_error: tuple[BaseException, int] | None = None

    # --- determinism -------------------------------------------------------------------------

    def random(self) -> float:
        """A float in [0, 1) from a generator seeded by the invocation: equal on every attempt."""
        return self._rand.random()

    @property
    def rand(self) -> _random.Random:
        """The seeded generator itself, for `randint`, `choice`, ..."""
        return self._rand

    # --- steps -------------------------------------------------------------------------------

    async def run(self, name: str, fn: Callable[[], Any]) -> Any:
        """Run a side effect once: its JSON result is journaled and returned on every replay."""
        with self._exclusive("run"):
            recorded = self._next_recorded("run", name)
            if recorded is not None:
                entry = self._journal[recorded]
                if "failure" in entry:
                    raise _failure_error(entry["failure"])
                return _decode_value(entry.get("value"))
            index = self._next_index
            self.current_index = index
            try:
                result = fn()
                if inspect.isawaitable(result):
                    result = await result
                value = json.dumps(result).encode()
            except TerminalError as exc:
                failure = {"code": exc.code, "message": exc.message}
                await self._append({"kind": "run", "name": name, "failure": failure})
                raise
            except Exception as exc:
                self.last_step_error = (exc, index)
                raise
            finally:
                self.current_index = None
            await self._append({"kind": "run", "name": name, "value": value})
            return _decode_value(value)

    async def sleep(self, duration: timedelta | float) -> None:
        """Sleep durably: the attempt suspends and a later attempt continues after the timer."""
        seconds = duration.total_seconds() if isinstance(duration, timedelta) else float(duration)
        if seconds < 0:
            raise ValueError(f"sleep duration must not be negative, got {seconds}s")
        with self._exclusive("sleep"):
            recorded = self._next_recorded("sleep", None)
            if recorded is None:
                completion_id = self._next_completion_id
                self._next_completion_id += 1
                wake_up_at = int(self._clock() * 1000 + seconds * 1000)
                entry = {"kind": "sleep", "completion_id": completion_id, "wake_up_at": wake_up_at}
                await self._append(entry)
                raise Suspend([completion_id])
            completion_id = int(self._journal[recorded]["completion_id"])
            done_at = self._completions.get(completion_id)
            cancel_at = self._pending_cancel()
            if cancel_at is not None and (done_at is None or done_at > cancel_at):
                self._deliver_cancel()
            if done_at is None:
                raise Suspend([completion_id])
            completion = self._journal[done_at]
            if "failure" in completion:
                raise _failure_error(completion["failure"])

    # --- replay machinery --------------------------------------------------------------------

    def _exclusive(self, what: str) -> _Exclusive:
        return _Exclusive(self, what)

    def _next_recorded(self, kind: str, name: str | None) -> int | None:
        """The journal index of the recorded entry for this step, or None for a new step.

        Raises the cancellation or a journal mismatch instead when that is what this step meets.
        """
        recorded = self._steps[self._cursor] if self._cursor < len(self._steps) else None
        cancel_at = self._pending_cancel()
        if cancel_at is not None and (recorded is None or cancel_at < recorded):
            self._deliver_cancel()
        if recorded is None:
            return None
        entry = self._journal[recorded]
        attempted = f"run {name!r}" if kind == "run" else "sleep"
        if entry.get("kind") != kind or (kind == "run" and entry.get("name") != name):
            raise JournalMismatch(recorded, _describe(entry), attempted)
        self._cursor += 1
        return recorded

    def _pending_cancel(self) -> int | None:
        if self._cancels_delivered < len(self._cancels):
            return self._cancels[self._cancels_delivered]
        return None

    def _deliver_cancel(self) -> None:
        # Every cancel before the next recorded step (or the end of the journal) is answered by this
        # one delivery; a cancel recorded later, during compensation, is delivered at a later step.
        bound = self._steps[self._cursor] if self._cursor < len(self._steps) else self._next_index
        while self._cancels_delivered < len(self._cancels):
            if self._cancels[self._cancels_delivered] > bound:
                break
            self._cancels_delivered += 1
        raise TerminalError(CANCELED_CODE, CANCELED_MESSAGE)

    async def _append(self, entry: dict[str, Any]) -> None:
        index = self._next_index
        self._next_index += 1
        await self._emit(index, entry)


class _Exclusive:
    """Refuses a step started while another is in progress (inside a `run` function, or two steps
    awaited concurrently): their order in the journal would not be deterministic."""

    def __init__(self, ctx: Context, what: str) -> None:
        self._ctx = ctx
        self._what = what

    def __enter__(self) -> None:
        if self._ctx._busy:
            raise RuntimeError(
                f"ctx.{self._what} called while another step is in progress; steps must be "
                "awaited one at a time and not from inside a ctx.run function"
            )
        self._ctx._busy = True

    def __exit__(self, *exc: object) -> None:
        self._ctx._busy = False
