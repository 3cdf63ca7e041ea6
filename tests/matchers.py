"""Named matchers over the actions a command produced, so tests say what they check."""

from __future__ import annotations

from typing import Any, TypeVar

from processor.actions import Action, Reply, StartAttempt

A = TypeVar("A")


def actions_of(actions: list[Action], kind: type[A]) -> list[A]:
    return [a for a in actions if isinstance(a, kind)]


def has_action(actions: list[Action], kind: type[Any], **fields: Any) -> bool:
    """True when some action is a `kind` whose named fields equal `fields`."""
    return any(
        all(getattr(a, name) == value for name, value in fields.items())
        for a in actions_of(actions, kind)
    )


def no_action(actions: list[Action], kind: type[Any]) -> bool:
    return not actions_of(actions, kind)


def reply_of(actions: list[Action]) -> Reply:
    replies = actions_of(actions, Reply)
    assert len(replies) == 1, f"expected exactly one Reply, got {actions}"
    return replies[0]


def reply_code(actions: list[Action]) -> int:
    return reply_of(actions).code


def reply_body(actions: list[Action]) -> dict[str, Any]:
    return reply_of(actions).body


def reply_message(actions: list[Action]) -> str:
    message = reply_body(actions).get("message")
    assert isinstance(message, str), f"no message in {reply_body(actions)}"
    return message


def started_attempts(actions: list[Action]) -> list[int]:
    return [a.attempt for a in actions_of(actions, StartAttempt)]
