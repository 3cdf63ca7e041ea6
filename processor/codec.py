"""The versioned msgpack envelope of log records: `[version, kind, *fields]`.

Records are compact arrays (no field names) because msgpack packs and unpacks arrays of scalars on
its fast path; the field order of each kind is fixed here and versioned. An unknown version or kind,
or fields that do not fit, raise `CodecError` naming the LSN when one is given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack

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
from processor.state_machine.fast import maker
from processor.status import Failure

VERSION = 1
_unpackb = msgpack.unpackb


class CodecError(ValueError):
    """A log record that cannot be decoded into a command."""


def failure_to_wire(f: Failure | None) -> list[Any] | None:
    if f is None:
        return None
    return [f.code, f.message, f.stacktrace, f.attempt, f.related_index]


_Failure = maker(Failure)


def failure_from_wire(raw: list[Any] | None) -> Failure | None:
    if raw is None:
        return None
    code, message, stacktrace, attempt, related_index = raw
    return _Failure(int(code), str(message), stacktrace, attempt, related_index)


def _req(f: Failure | None) -> Failure:
    if f is None:
        raise CodecError("missing failure")
    return f


_TIMER_KINDS = {k.value: k for k in TimerKind}

# kind code -> (encode fields, decode fields)
_ENCODERS: dict[type, tuple[int, Callable[[Any], list[Any]]]] = {
    Invoke: (
        1,
        lambda c: [
            c.invocation_id,
            c.service,
            c.handler,
            c.input,
            c.retry_policy.to_wire(),
            c.headers,
            c.idempotency_key,
            c.execute_at,
            c.request_id,
        ],
    ),
    Pause: (2, lambda c: [c.invocation_id, c.request_id]),
    Resume: (
        3,
        lambda c: [
            c.invocation_id,
            c.deployment_id,
            c.retry_policy.to_wire() if c.retry_policy else None,
            c.request_id,
        ],
    ),
    Cancel: (4, lambda c: [c.invocation_id, c.request_id]),
    Kill: (5, lambda c: [c.invocation_id, c.request_id]),
    Purge: (6, lambda c: [c.invocation_id, c.request_id]),
    TimerFired: (7, lambda c: [c.invocation_id, c.timer.kind.value, c.timer.key]),
    AttemptPinned: (8, lambda c: [c.invocation_id, c.attempt, c.deployment_id]),
    AttemptEntry: (9, lambda c: [c.invocation_id, c.attempt, c.index, c.entry]),
    AttemptSuspended: (10, lambda c: [c.invocation_id, c.attempt, list(c.awaiting)]),
    AttemptCompleted: (
        11,
        lambda c: [c.invocation_id, c.attempt, c.value, failure_to_wire(c.failure)],
    ),
    AttemptFailed: (
        12,
        lambda c: [
            c.invocation_id,
            c.attempt,
            failure_to_wire(c.failure),
            c.retryable,
            c.deployment_id,
        ],
    ),
    AnnounceLeader: (13, lambda c: [c.epoch]),
}

# Decoding builds each command with a fast positional constructor (see `state_machine.fast`): the
# decoded command is one of the few objects every record costs. Every field is passed, defaults
# included, in declaration order.
_Invoke, _Pause, _Resume = maker(Invoke), maker(Pause), maker(Resume)
_Cancel, _Kill, _Purge = maker(Cancel), maker(Kill), maker(Purge)
_TimerFired, _TimerKey = maker(TimerFired), maker(TimerKey)
_Pinned, _Entry, _Suspended = maker(AttemptPinned), maker(AttemptEntry), maker(AttemptSuspended)
_Completed, _Failed = maker(AttemptCompleted), maker(AttemptFailed)


def _int(value: Any) -> int:
    # Fields that are already ints (all of them, in logs this build wrote) skip the int() call.
    return value if type(value) is int else int(value)


_DECODERS: dict[int, Callable[[list[Any]], Command]] = {
    1: lambda f: _Invoke(
        f[0], f[1], f[2], f[3], RetryPolicy.from_wire(f[4]), dict(f[5]), f[6], f[7], f[8]
    ),
    2: lambda f: _Pause(f[0], f[1]),
    3: lambda f: _Resume(f[0], f[1], RetryPolicy.from_wire(f[2]) if f[2] else None, f[3]),
    4: lambda f: _Cancel(f[0], f[1]),
    5: lambda f: _Kill(f[0], f[1]),
    6: lambda f: _Purge(f[0], f[1]),
    7: lambda f: _TimerFired(f[0], _TimerKey(_TIMER_KINDS[f[1]], _int(f[2]))),
    8: lambda f: _Pinned(f[0], _int(f[1]), f[2]),
    9: lambda f: _Entry(f[0], _int(f[1]), _int(f[2]), dict(f[3])),
    10: lambda f: _Suspended(f[0], _int(f[1]), tuple(int(x) for x in f[2])),
    11: lambda f: _Completed(f[0], _int(f[1]), f[2], failure_from_wire(f[3])),
    12: lambda f: _Failed(f[0], _int(f[1]), _req(failure_from_wire(f[2])), bool(f[3]), f[4]),
    13: lambda f: AnnounceLeader(int(f[0])),
}

KIND_NAMES = {code: cls.__name__ for cls, (code, _) in _ENCODERS.items()}


def encode(command: Command) -> bytes:
    code, fields = _ENCODERS[type(command)]
    return msgpack.packb([VERSION, code, *fields(command)], use_bin_type=True)


def decode(payload: bytes, lsn: int | None = None) -> Command:
    # The fast path does only what a well-formed record needs; every error (and the message naming
    # the LSN) is worked out in `_decode_error`, off the path of the records that decode.
    try:
        raw = _unpackb(payload, raw=False, strict_map_key=False)
        if type(raw) is list and len(raw) >= 2 and raw[0] == VERSION:
            decoder = _DECODERS.get(raw[1])
            if decoder is not None:
                return decoder(raw[2:])
    except Exception:
        pass
    raise _decode_error(payload, lsn)


def _decode_error(payload: bytes, lsn: int | None) -> CodecError:
    """The error `decode` raises for `payload`, naming the LSN when one is given."""
    where = f" at LSN {lsn}" if lsn is not None else ""
    try:
        raw = _unpackb(payload, raw=False, strict_map_key=False)
    except Exception as exc:
        return CodecError(f"log record{where} is not valid msgpack: {exc}")
    if not isinstance(raw, list) or len(raw) < 2:
        return CodecError(f"log record{where} is not a command envelope [version, kind, ...]")
    version, kind = raw[0], raw[1]
    if version != VERSION:
        return CodecError(
            f"log record{where} has envelope version {version!r}; this build reads version "
            f"{VERSION}. Upgrade the processor to read this log."
        )
    decoder = _DECODERS.get(kind)
    if decoder is None:
        return CodecError(f"log record{where} has unknown command kind {kind!r}")
    try:
        decoder(raw[2:])
    except CodecError as exc:
        return CodecError(f"log record{where} of kind {KIND_NAMES[kind]}: {exc}")
    except (IndexError, KeyError, TypeError, ValueError) as exc:
        return CodecError(
            f"log record{where} of kind {KIND_NAMES[kind]} has malformed fields: {exc!r}"
        )
    except Exception as exc:
        return CodecError(
            f"log record{where} of kind {KIND_NAMES[kind]} cannot be decoded: {exc!r}"
        )
    return CodecError(f"log record{where} could not be decoded")  # pragma: no cover - unreachable
