"""The log codec's decode fast paths decode every kind exactly as written, and errors still name
the LSN."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from processor.codec import CodecError, decode, encode
from processor.commands import (
    AnnounceLeader,
    AttemptCompleted,
    AttemptEntry,
    AttemptFailed,
    AttemptPinned,
    AttemptSuspended,
    Cancel,
    Command,
    Invoke,
    Kill,
    Pause,
    Purge,
    Resume,
    TimerFired,
    TimerKey,
    TimerKind,
)
from processor.retry import RetryPolicy
from processor.status import Failure

INV = "inv_1"
POLICY = RetryPolicy(100, 2.0, 2_000, 4, "kill")
EVERY_KIND: list[Command] = [
    Invoke(INV, "Greeter", "greet", b"in", POLICY, {"h": "v"}, "key", 5, "req"),
    Invoke(INV, "Greeter", "greet", b"in", RetryPolicy(max_attempts=None)),
    Pause(INV, "req"),
    Resume(INV, "dp_1", POLICY, "req"),
    Resume(INV, None, None, None),
    Cancel(INV, "req"),
    Kill(INV, None),
    Purge(INV, "req"),
    TimerFired(INV, TimerKey(TimerKind.START, 0)),
    TimerFired(INV, TimerKey(TimerKind.RETRY, 3)),
    TimerFired(INV, TimerKey(TimerKind.SLEEP, 7)),
    AttemptPinned(INV, 2, "dp_1"),
    AttemptEntry(INV, 2, 1, {"kind": "run", "value": b"1", "list": [1, 2]}),
    AttemptSuspended(INV, 2, (1, 4)),
    AttemptCompleted(INV, 2, b"out", None),
    AttemptCompleted(INV, 2, None, Failure(409, "canceled")),
    AttemptFailed(INV, 2, Failure(500, "boom", "trace", 2, 1), True, "dp_1"),
    AnnounceLeader(9),
]


@pytest.mark.parametrize("command", EVERY_KIND, ids=lambda c: type(c).__name__)
def test_every_command_kind_decodes_to_what_was_encoded(command: Command) -> None:
    decoded = decode(encode(command), 1)
    assert decoded == command
    assert type(decoded) is type(command)
    assert encode(decoded) == encode(command)


def test_equal_policies_decode_equal_and_keep_the_type_of_max_attempts() -> None:
    first = decode(encode(Invoke(INV, "S", "h", b"", POLICY)))
    again = decode(encode(Invoke(INV, "S", "h", b"", POLICY)))
    assert isinstance(first, Invoke) and isinstance(again, Invoke)
    assert first.retry_policy == again.retry_policy == POLICY
    fields: list[Any] = [INV, "S", "h", b"", None, {}, None, None, None]
    for max_attempts in (4.0, 4, 4.0):
        fields[4] = [100, 2.0, 2_000, max_attempts, "kill"]
        decoded = decode(msgpack.packb([1, 1, *fields]), 1)
        assert isinstance(decoded, Invoke)
        assert type(decoded.retry_policy.max_attempts) is type(max_attempts)


def test_a_record_with_a_bad_field_is_an_error_naming_the_lsn() -> None:
    bad_timer = msgpack.packb([1, 7, INV, [1], 1])
    with pytest.raises(CodecError, match="LSN 12 of kind TimerFired has malformed fields"):
        decode(bad_timer, 12)
    with pytest.raises(CodecError, match="LSN 3 has unknown command kind 99"):
        decode(msgpack.packb([1, 99, INV]), 3)
    with pytest.raises(CodecError, match="LSN 4 of kind Purge has malformed fields"):
        decode(msgpack.packb([1, 6]), 4)
