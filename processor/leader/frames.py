"""Frames of an attempt's streamed answer (PROTOCOL.md §2) turned into effect commands.

`AttemptFrames` checks each decoded frame (its kind, its fields, that entry indexes continue the
journal without a gap or a duplicate), puts `AttemptPinned` before the first frame that makes
progress, and builds the one `AttemptFailed` that ends an attempt gone wrong. It does no I/O: the
invoker feeds it frames and appends what it returns.
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass
from typing import Any, TypeGuard

from processor.commands import (
    AttemptCompleted,
    AttemptEntry,
    AttemptFailed,
    AttemptPinned,
    AttemptSuspended,
    Command,
)
from processor.status import Failure

# Failure codes of attempts that failed outside the handler.
CODE_UNREACHABLE = 503  # connection refused / reset before an answer
CODE_BAD_STATUS = 502  # the deployment answered something else than 200
CODE_TIMEOUT = 504  # no byte for `inactivity_timeout_s`
CODE_STREAM_CUT = 502  # the stream ended without a final frame
CODE_PROTOCOL = 571  # undecodable frame, index gap, unknown frame kind
CODE_NO_DEPLOYMENT = 503  # no registered deployment serves the service

EXCERPT = 300


@dataclass(frozen=True, slots=True)
class AttemptRequest:
    invocation_id: str
    attempt: int
    service: str
    handler: str
    deployment_id: str
    uri: str
    journal: list[dict[str, Any]]  # index 0 = the input entry
    seed: int


def _encodable(text: str) -> str:
    """`text` with lone surrogates escaped: aiohttp keeps undecodable bytes (e.g. of a reason
    phrase) that way, and a log record (UTF-8 msgpack) cannot carry them."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()
    return text


def is_int(value: object) -> TypeGuard[int]:
    """An integer field of a frame: msgpack's `true` decodes to `True`, which is an `int` too."""
    return isinstance(value, int) and not isinstance(value, bool)


class _Excerpt(reprlib.Repr):
    """Bounded reprs of what a deployment sent: a frame can be huge or nested a thousand levels
    deep (which `repr` cannot show: RecursionError), and the excerpt goes into a log record."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 4
        self.maxstring = self.maxother = 120
        self.maxlist = self.maxtuple = self.maxdict = self.maxset = 10

    def repr_bytes(self, x: bytes, level: int) -> str:
        text = repr(x[: self.maxstring])
        return text if len(x) <= self.maxstring else text + "..."

    def repr_bytearray(self, x: bytearray, level: int) -> str:
        return self.repr_bytes(bytes(x[: self.maxstring + 1]), level)


_EXCERPT = _Excerpt()


def show(value: object) -> str:
    """A short, safe repr of a value decoded from a frame, for a failure's message."""
    try:
        text = _EXCERPT.repr(value)
    except Exception:  # a repr that fails must not turn a protocol violation into a crash
        text = f"<{type(value).__name__}>"
    return text if len(text) <= EXCERPT else text[: EXCERPT - 3] + "..."


class ProtocolViolation(Exception):
    """A frame that breaks PROTOCOL.md §2; the message says how."""

    def __init__(self, message: str, related_index: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.related_index = related_index


class AttemptFrames:
    """Turns decoded frames of one attempt into commands; remembers where the journal stands."""

    def __init__(self, request: AttemptRequest) -> None:
        self.req = request
        self.next_index = len(request.journal)
        self.pinned = False
        self.finished = False

    def failed(
        self,
        code: int,
        message: str,
        *,
        retryable: bool = True,
        stacktrace: str | None = None,
        related_index: int | None = None,
    ) -> AttemptFailed:
        self.finished = True
        failure = Failure(
            code,
            _encodable(message),
            stacktrace and _encodable(stacktrace),
            self.req.attempt,
            related_index,
        )
        return AttemptFailed(
            self.req.invocation_id, self.req.attempt, failure, retryable, self.req.deployment_id
        )

    def _pin(self, out: list[Command]) -> None:
        # Pinned goes before the first frame that makes progress (an entry or a final result):
        # the state machine pins the deployment once the attempt has stored something.
        if not self.pinned:
            self.pinned = True
            out.append(
                AttemptPinned(self.req.invocation_id, self.req.attempt, self.req.deployment_id)
            )

    def frame(self, frame: Any, out: list[Command]) -> None:
        if not isinstance(frame, dict):
            raise ProtocolViolation(
                f"frame is not a map but {type(frame).__name__} {show(frame)}: a deployment "
                "answers a stream of msgpack maps (PROTOCOL.md §2)"
            )
        kind = frame.get("t")
        inv, n = self.req.invocation_id, self.req.attempt
        if kind == "entry":
            index, entry = frame.get("index"), frame.get("entry")
            if not is_int(index):
                raise ProtocolViolation(f"entry frame without an integer index: {show(frame)}")
            if not isinstance(entry, dict) or not isinstance(entry.get("kind"), str):
                raise ProtocolViolation(
                    f"entry frame at index {index} has no entry map with a kind", index
                )
            if index != self.next_index:
                what = "duplicate" if index < self.next_index else "gap"
                raise ProtocolViolation(
                    f"journal index gap: expected entry index {self.next_index}, got {index} "
                    f"({what})",
                    index,
                )
            self._pin(out)
            out.append(AttemptEntry(inv, n, index, entry))
            self.next_index += 1
        elif kind == "suspend":
            awaiting = frame.get("awaiting")
            if not isinstance(awaiting, list) or not all(is_int(c) for c in awaiting):
                raise ProtocolViolation(
                    f"suspend frame needs a list of integer completion ids: {show(frame)}"
                )
            self._pin(out)
            out.append(AttemptSuspended(inv, n, tuple(awaiting)))
            self.finished = True
        elif kind == "output":
            if "failure" in frame and frame["failure"] is not None:
                raw = frame["failure"]
                if not (
                    isinstance(raw, dict)
                    and is_int(raw.get("code"))
                    and isinstance(raw.get("message"), str)
                ):
                    raise ProtocolViolation(
                        f"output failure needs an integer code and a string message: {show(raw)}"
                    )
                self._pin(out)
                failure = Failure(raw["code"], raw["message"], attempt=n)
                out.append(AttemptCompleted(inv, n, failure=failure))
            elif isinstance(frame.get("value"), bytes):
                self._pin(out)
                out.append(AttemptCompleted(inv, n, value=frame["value"]))
            else:
                raise ProtocolViolation("output frame has neither a bytes value nor a failure")
            self.finished = True
        elif kind == "error":
            code, message = frame.get("code"), frame.get("message")
            related = frame.get("related_index")
            stack = frame.get("stacktrace")
            out.append(
                self.failed(
                    code if is_int(code) else 500,
                    message if isinstance(message, str) else show(message),
                    retryable=frame.get("retryable", True) is not False,
                    stacktrace=stack if isinstance(stack, str) else None,
                    related_index=related if is_int(related) else None,
                )
            )
        else:
            raise ProtocolViolation(f"unknown frame kind {show(kind)}")
