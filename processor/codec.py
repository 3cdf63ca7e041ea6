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


def _dict(value: Any) -> dict[Any, Any]:
    # msgpack hands back a fresh dict for a map (nobody else holds it): no need to copy it.
    return value if type(value) is dict else dict(value)


_POLICIES: dict[tuple[Any, ...], RetryPolicy] = {}
_POLICIES_MAX = 1024


def policy_from_wire(raw: Any) -> RetryPolicy:
    """`RetryPolicy.from_wire`, shared: a log carries the same few policies over and over, and a
    policy is frozen, so equal wire forms can share one instance (building one costs ~5 µs)."""
    try:
        # the type of max_attempts is in the key: from_wire keeps it as it is (4 and 4.0 differ)
        key = (*raw, type(raw[3]))
        policy = _POLICIES.get(key)
    except Exception:  # not a 5-list of hashables: from_wire reports it (or copes, as before)
        return RetryPolicy.from_wire(raw)
    if policy is None:
        policy = RetryPolicy.from_wire(raw)
        if len(_POLICIES) >= _POLICIES_MAX:
            _POLICIES.clear()
        _POLICIES[key] = policy
    return policy


_TIMER_KEYS: dict[tuple[Any, Any], TimerKey] = {}


def _timer_key(kind: Any, key: Any) -> TimerKey:
    # Timer keys repeat (retry n, sleep completion ids) and are frozen: share them.
    cache_key = (kind, key)
    timer = _TIMER_KEYS.get(cache_key)
    if timer is None:
        timer = _TimerKey(_TIMER_KINDS[kind], _int(key))
        if len(_TIMER_KEYS) >= _POLICIES_MAX:
            _TIMER_KEYS.clear()
        _TIMER_KEYS[cache_key] = timer
    return timer


# Each decoder takes the whole record `[version, kind, *fields]` (no slice copy per record).
_DECODERS: dict[int, Callable[[list[Any]], Command]] = {
    1: lambda r: _Invoke(
        r[2], r[3], r[4], r[5], policy_from_wire(r[6]), _dict(r[7]), r[8], r[9], r[10]
    ),
    2: lambda r: _Pause(r[2], r[3]),
    3: lambda r: _Resume(r[2], r[3], policy_from_wire(r[4]) if r[4] else None, r[5]),
    4: lambda r: _Cancel(r[2], r[3]),
    5: lambda r: _Kill(r[2], r[3]),
    6: lambda r: _Purge(r[2], r[3]),
    7: lambda r: _TimerFired(r[2], _timer_key(r[3], r[4])),
    8: lambda r: _Pinned(r[2], _int(r[3]), r[4]),
    9: lambda r: _Entry(r[2], _int(r[3]), _int(r[4]), _dict(r[5])),
    10: lambda r: _Suspended(r[2], _int(r[3]), tuple(int(x) for x in r[4])),
    11: lambda r: _Completed(r[2], _int(r[3]), r[4], failure_from_wire(r[5])),
    12: lambda r: _Failed(r[2], _int(r[3]), _req(failure_from_wire(r[4])), bool(r[5]), r[6]),
    13: lambda r: AnnounceLeader(int(r[2])),
}
# The same, indexed by kind code, for the fast path (a list index instead of a dict lookup).
_BY_CODE: list[Callable[[list[Any]], Command] | None] = [
    _DECODERS.get(code) for code in range(max(_DECODERS) + 1)
]
_N_CODES = len(_BY_CODE)


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
            code = raw[1]
            if type(code) is int and 0 <= code < _N_CODES:
                decoder = _BY_CODE[code]
            else:
                decoder = _DECODERS.get(code)
            if decoder is not None:
                return decoder(raw)
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
        decoder(raw)
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
