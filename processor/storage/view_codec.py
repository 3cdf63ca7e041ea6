"""Compact msgpack encoding of `InvocationView` (the `view` blob of the invocations table).

A view is stored as one msgpack array `[VIEW_VERSION, field, field, ...]` in a fixed field order:
arrays of scalars are msgpack's fast path, and the encoding is canonical (sets are sorted, so the
same view always gives the same bytes; the state digest depends on that). Decoding accepts arrays
shorter than the current field list and fills the missing tail with defaults, so a field appended
to `InvocationView` later does not need a data migration.
"""

from __future__ import annotations

from typing import Any

import msgpack

from processor.codec import failure_from_wire, failure_to_wire, policy_from_wire
from processor.status import InvocationView, Result, Status

VIEW_VERSION = 1

_STATUSES = {s.value: s for s in Status}
_packb = msgpack.Packer(use_bin_type=True).pack


class ViewCodecError(ValueError):
    """A stored view blob that cannot be decoded."""


def _result_to_wire(r: Result | None) -> list[Any] | None:
    if r is None:
        return None
    return [r.value, failure_to_wire(r.failure)]


def _result_from_wire(raw: list[Any] | None) -> Result | None:
    if raw is None:
        return None
    return Result(raw[0], failure_from_wire(raw[1]))


def view_to_wire(v: InvocationView) -> list[Any]:
    return [
        VIEW_VERSION,
        v.id,
        v.service,
        v.handler,
        v.status._value_,  # the plain str (`.value` is a slow property)
        v.created_at,
        v.modified_at,
        v.retry_policy.to_wire(),
        v.idempotency_key,
        v.headers,
        v.execute_at,
        v.running_at,
        v.completed_at,
        v.next_retry_at,
        v.attempt,
        v.retry_count,
        v.pinned_deployment,
        v.last_attempt_deployment,
        v.journal_length,
        sorted(v.completed_ids) if v.completed_ids else [],
        sorted(v.sleeping) if v.sleeping else [],
        v.cancel_requested,
        list(v.awaiting) if v.awaiting else [],
        failure_to_wire(v.last_failure),
        _result_to_wire(v.result),
        v.event_count,
        v.transient_streak,
    ]


def encode_view(v: InvocationView) -> bytes:
    return _packb(view_to_wire(v))


def view_from_wire(raw: list[Any]) -> InvocationView:
    if not raw or raw[0] != VIEW_VERSION:
        raise ViewCodecError(f"unknown view encoding version {raw[0] if raw else None!r}")
    n = len(raw)

    def at(i: int, default: Any) -> Any:
        return raw[i] if i < n else default

    return InvocationView(
        id=raw[1],
        service=raw[2],
        handler=raw[3],
        status=_STATUSES[raw[4]],
        created_at=raw[5],
        modified_at=raw[6],
        retry_policy=policy_from_wire(raw[7]),
        idempotency_key=raw[8],
        headers=raw[9],
        execute_at=raw[10],
        running_at=raw[11],
        completed_at=raw[12],
        next_retry_at=raw[13],
        attempt=raw[14],
        retry_count=raw[15],
        pinned_deployment=raw[16],
        last_attempt_deployment=raw[17],
        journal_length=raw[18],
        completed_ids=frozenset(raw[19]),
        sleeping=frozenset(raw[20]),
        cancel_requested=raw[21],
        awaiting=tuple(raw[22]),
        last_failure=failure_from_wire(raw[23]),
        result=_result_from_wire(raw[24]),
        event_count=at(25, 0),
        transient_streak=at(26, 0),
    )


def decode_view(blob: bytes) -> InvocationView:
    try:
        raw = msgpack.unpackb(blob, raw=False, strict_map_key=False)
        return view_from_wire(raw)
    except ViewCodecError:
        raise
    except Exception as exc:
        raise ViewCodecError(f"stored invocation view cannot be decoded: {exc!r}") from None
