"""JSON shapes of the admin API (SPEC §6.2): invocations, journal entries, events, deployments.

Times are ISO-8601 UTC strings. Payloads (bytes) are decoded JSON where they are JSON, otherwise
base64 under a `*_base64` key, so a client never has to guess which one it got.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

from processor.state_machine.types import Event
from processor.status import Failure, InvocationView, Result


def utc(ms: int) -> dt.datetime | None:
    """`ms` as a UTC datetime, or None beyond what datetime holds (years 1-9999): a deployment's
    sleep entry may carry any 64-bit `wake_up_at`, and a page must not fail on it."""
    try:
        return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    except (OverflowError, ValueError, OSError):
        return None


def iso(ms: int | None) -> str | None:
    """ISO-8601 UTC with milliseconds; `epoch+<ms>ms` for a time datetime cannot hold."""
    if ms is None:
        return None
    moment = utc(ms)
    if moment is None:
        return f"epoch+{ms}ms"
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def payload_fields(name: str, raw: bytes | None) -> dict[str, Any]:
    """`{name: <json>}` when `raw` is JSON text, else `{name + "_base64": "..."}`; plus its size."""
    if raw is None:
        return {}
    fields: dict[str, Any] = {f"{name}_size": len(raw)}
    try:
        fields[name] = json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, ValueError):
        fields[f"{name}_base64"] = base64.b64encode(raw).decode("ascii")
    return fields


def failure_json(failure: Failure | None) -> dict[str, Any] | None:
    if failure is None:
        return None
    return {
        "code": failure.code,
        "message": failure.message,
        "stacktrace": failure.stacktrace,
        "attempt": failure.attempt,
        "related_index": failure.related_index,
    }


def result_json(result: Result | None) -> dict[str, Any] | None:
    if result is None:
        return None
    if result.failure is not None:
        return {"failure": {"code": result.failure.code, "message": result.failure.message}}
    return payload_fields("value", result.value) or {"value": None}


def _plain(value: Any) -> Any:
    """Make a msgpack-decoded structure JSON-safe (bytes → decoded JSON or base64)."""
    if isinstance(value, bytes):
        try:
            return json.loads(value.decode("utf-8")) if value else ""
        except (UnicodeDecodeError, ValueError):
            return {"base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def journal_entry_json(index: int, entry: dict[str, Any], appended_at: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "index": index,
        "kind": entry.get("kind"),
        "appended_at": iso(appended_at),
    }
    for key, value in entry.items():
        if key in ("kind", "appended_at"):
            continue
        if key == "value" and isinstance(value, bytes):
            out.update(payload_fields("value", value))
        elif key == "wake_up_at" and isinstance(value, int):
            out[key] = iso(value)
        else:
            out[key] = _plain(value)
    return out


def event_json(event: Event) -> dict[str, Any]:
    """An event with its data's times (integer `*_at` fields, e.g. 'created'`s `execute_at`) as
    ISO-8601 like every other time in the API."""
    out: dict[str, Any] = {"kind": event.kind, "at": iso(event.at), "seq": event.seq}
    for key, value in _plain(event.data).items():
        is_time = key.endswith("_at") and isinstance(value, int) and not isinstance(value, bool)
        out[key] = iso(value) if is_time else value
    return out


def invocation_summary(view: InvocationView) -> dict[str, Any]:
    """The row shape of `GET /invocations` (no journal, no events)."""
    return {
        "id": view.id,
        "target": f"{view.service}/{view.handler}",
        "service": view.service,
        "handler": view.handler,
        "status": view.status.value,
        "attempt": view.attempt,
        "retry_count": view.retry_count,
        "next_retry_at": iso(view.next_retry_at),
        "created_at": iso(view.created_at),
        "modified_at": iso(view.modified_at),
        "execute_at": iso(view.execute_at),
        "running_at": iso(view.running_at),
        "completed_at": iso(view.completed_at),
        "pinned_deployment": view.pinned_deployment,
        "last_attempt_deployment": view.last_attempt_deployment,
        "idempotency_key": view.idempotency_key,
        "journal_length": view.journal_length,
        "awaiting": list(view.awaiting),
        "last_failure": failure_json(view.last_failure),
        "result": result_json(view.result),
    }


def invocation_detail(
    view: InvocationView,
    journal: list[tuple[int, dict[str, Any], int]],
    events: list[Event],
) -> dict[str, Any]:
    body = invocation_summary(view)
    body["retry_policy"] = {
        "initial-interval-ms": view.retry_policy.initial_interval_ms,
        "exponentiation-factor": view.retry_policy.exponentiation_factor,
        "max-interval-ms": view.retry_policy.max_interval_ms,
        "max-attempts": view.retry_policy.max_attempts or "unlimited",
        "on-max-attempts": view.retry_policy.on_max_attempts,
    }
    body["journal"] = [journal_entry_json(i, e, at) for i, e, at in journal]
    body["events"] = [event_json(e) for e in events]
    return body
