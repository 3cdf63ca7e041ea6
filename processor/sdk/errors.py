"""Errors of the handler SDK: the public `TerminalError` and the signals that end an attempt.

The internal signals derive from `BaseException` on purpose: a handler's `except Exception:` must
not swallow a suspension or a journal mismatch, or the handler would carry on against a journal it
has already diverged from.
"""

from __future__ import annotations


class TerminalError(Exception):
    """Raised by a handler (or a `ctx.run` function) to end the invocation with a failure.

    Unlike any other exception it is not retried: the invocation completes with this failure.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"TerminalError({self.code}, {self.message!r})"


CANCELED_CODE = 409
CANCELED_MESSAGE = "canceled"

# Restate's code for a journal that does not match the code; kept so operators recognise it.
JOURNAL_MISMATCH_CODE = 570


class AttemptEnd(BaseException):
    """Base of the signals that end an attempt from inside the handler."""


class Suspend(AttemptEnd):
    """The handler waits on completions that are not in the journal yet."""

    def __init__(self, awaiting: list[int]) -> None:
        super().__init__(f"suspended awaiting {awaiting}")
        self.awaiting = awaiting


class JournalMismatch(AttemptEnd):
    """The code asked for a step that differs from what the journal recorded at that index."""

    def __init__(self, index: int, recorded: str, attempted: str) -> None:
        message = (
            f"journal mismatch at index {index}: the journal has {recorded}, "
            f"but the code did {attempted}"
        )
        super().__init__(message)
        self.index = index
        self.message = message
