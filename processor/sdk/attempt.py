"""One attempt of one handler: parse the request, run the handler against its journal, and turn
the way it ended into the final object of the stream (PROTOCOL.md §2).

Transport-free: new journal entries go to an `emit` callback and the final object is returned, so
the HTTP layer only frames and writes them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgpack

from processor.sdk.context import Context
from processor.sdk.errors import JOURNAL_MISMATCH_CODE, JournalMismatch, Suspend, TerminalError
from processor.sdk.service import Handler

log = logging.getLogger("processor.sdk")

Frame = dict[str, Any]


class BadRequest(ValueError):
    """The invoke body is not a valid attempt request."""


@dataclass(frozen=True, slots=True)
class AttemptRequest:
    invocation_id: str
    attempt: int
    journal: list[dict[str, Any]]
    seed: int


def _default_seed(invocation_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(invocation_id.encode(), digest_size=8).digest(), "big")


def parse_request(body: bytes) -> AttemptRequest:
    try:
        raw = msgpack.unpackb(body, raw=False)
    except Exception as exc:
        raise BadRequest(f"body is not valid msgpack: {exc}") from None
    if not isinstance(raw, dict):
        raise BadRequest("body must be a msgpack map")
    invocation_id = raw.get("invocation_id")
    if not isinstance(invocation_id, str) or not invocation_id:
        raise BadRequest("'invocation_id' must be a non-empty string")
    attempt = raw.get("attempt")
    if not isinstance(attempt, int) or isinstance(attempt, bool):
        raise BadRequest("'attempt' must be an integer")
    journal = raw.get("journal")
    if not isinstance(journal, list) or not journal:
        raise BadRequest("'journal' must be a non-empty list starting with the input entry")
    for i, entry in enumerate(journal):
        if not isinstance(entry, dict) or not isinstance(entry.get("kind"), str):
            raise BadRequest(f"journal entry {i} must be a map with a 'kind'")
        if entry["kind"] in ("sleep", "completion") and not isinstance(
            entry.get("completion_id"), int
        ):
            kind = entry["kind"]
            raise BadRequest(f"journal entry {i} ({kind}) needs an integer 'completion_id'")
    if journal[0]["kind"] != "input":
        raise BadRequest(f"journal entry 0 must be the input, got {journal[0]['kind']!r}")
    seed = raw.get("seed")
    if seed is None:
        seed = _default_seed(invocation_id)
    elif not isinstance(seed, int) or isinstance(seed, bool):
        raise BadRequest("'seed' must be an integer")
    return AttemptRequest(invocation_id, attempt, journal, seed)


def _error(code: int, message: str, stacktrace: str | None, related_index: int | None) -> Frame:
    return {
        "t": "error",
        "code": code,
        "message": message,
        "stacktrace": stacktrace,
        "retryable": True,
        "related_index": related_index,
    }


def _related_index(ctx: Context, exc: BaseException) -> int | None:
    if ctx.last_step_error is not None:
        failed, index = ctx.last_step_error
        seen: BaseException | None = exc
        while seen is not None:
            if seen is failed:
                return index
            seen = seen.__cause__ or seen.__context__
    return ctx.current_index


async def run_attempt(
    handler: Handler,
    request: AttemptRequest,
    emit: Callable[[int, dict[str, Any]], Awaitable[None]],
) -> Frame:
    """Run the handler once; returns the final frame (`output`, `suspend` or `error`).

    Signals other than suspension and mismatch (e.g. the connection closing) propagate, as does
    cancellation of the task.
    """
    ctx = Context(
        invocation_id=request.invocation_id,
        attempt=request.attempt,
        journal=request.journal,
        seed=request.seed,
        emit=emit,
    )
    raw_input = request.journal[0].get("value")
    try:
        arg = None if raw_input is None or raw_input == b"" else json.loads(raw_input)
    except (ValueError, TypeError) as exc:
        return {"t": "output", "failure": {"code": 400, "message": f"input is not JSON: {exc}"}}
    where = f"{request.invocation_id} attempt {request.attempt}"
    try:
        result = await handler.call(ctx, arg)
        value = json.dumps(result).encode()
    except TerminalError as exc:
        return {"t": "output", "failure": {"code": exc.code, "message": exc.message}}
    except Suspend as exc:
        return {"t": "suspend", "awaiting": exc.awaiting}
    except JournalMismatch as exc:
        log.warning("%s: %s", where, exc.message)
        return _error(JOURNAL_MISMATCH_CODE, exc.message, traceback.format_exc(), exc.index)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.warning("%s failed: %r", where, exc)
        message = str(exc) or type(exc).__name__
        return _error(500, message, traceback.format_exc(), _related_index(ctx, exc))
    return {"t": "output", "value": value}
