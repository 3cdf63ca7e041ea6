"""JSON shapes of the admin API (SPEC §6.2): invocations, journal entries, events, deployments.

Times are ISO-8601 UTC strings. Payloads (bytes) are decoded JSON where they are JSON, otherwise
base64 under a `*_base64` key, so a client never has to guess which one it got.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
from collections.abc import Mapping
from typing import Any

import msgpack

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
        fields[name] = _strict_json(raw) if raw else None
    except ValueError:
        fields[f"{name}_base64"] = base64.b64encode(raw).decode("ascii")
    return fields


# Deeper structures are cut off in API answers: Python's json module recurses, and a handler's
# payload or journal entry must not be able to turn every describe of its invocation into a 500.
MAX_RENDER_DEPTH = 64


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # e.g. 1e400: valid JSON text, but Infinity once parsed
        raise ValueError(f"{text} is beyond the float range")
    return value


def _strict_json(raw: bytes) -> Any:
    """`raw` parsed as standard JSON, no deeper than `MAX_RENDER_DEPTH`; ValueError otherwise
    (not UTF-8, not JSON, NaN/Infinity, too deep) so the caller shows it as base64."""
    try:
        value = json.loads(
            raw.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float
        )
    except (UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(str(exc)) from None
    if _depth_exceeds(value, MAX_RENDER_DEPTH):
        raise ValueError("nested too deeply to show")
    return value


def _depth_exceeds(value: Any, limit: int) -> bool:
    if limit < 0:
        return True
    if isinstance(value, dict):
        return any(_depth_exceeds(v, limit - 1) for v in value.values())
    if isinstance(value, list):
        return any(_depth_exceeds(v, limit - 1) for v in value)
    return False


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


def _plain(value: Any, depth: int = 0) -> Any:
    """Make a msgpack-decoded structure standard JSON: bytes → decoded JSON or base64, non-string
    keys → strings, NaN/±Infinity → strings, msgpack timestamps → ISO-8601, other extension types
    → `{"ext", "base64"}`, anything nested deeper than `MAX_RENDER_DEPTH` → a note saying so."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth >= MAX_RENDER_DEPTH:
        return {"truncated": f"nested deeper than {MAX_RENDER_DEPTH} levels"}
    if isinstance(value, bytes):
        try:
            return _strict_json(value) if value else ""
        except ValueError:
            return {"base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return {_plain_key(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, msgpack.ExtType):  # a namedtuple: before the tuple case
        return {"ext": value.code, "base64": base64.b64encode(value.data).decode("ascii")}
    if isinstance(value, list | tuple):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, msgpack.Timestamp):
        return iso(int(value.to_unix_nano()) // 1_000_000)
    return repr(value)


def _plain_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bytes):
        return key.decode("utf-8", errors="backslashreplace")
    return json.dumps(_plain(key), sort_keys=True)


def journal_entry_json(index: int, entry: Mapping[Any, Any], appended_at: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "index": index,
        "kind": _plain(entry.get("kind"), 1),
        "appended_at": iso(appended_at),
    }
    for raw_key, value in entry.items():
        if raw_key in ("kind", "appended_at"):
            continue
        key = _plain_key(raw_key)
        while key in out:  # "index", b"kind", or 7 next to "7": keep both, never overwrite
            key = f"entry.{key}"
        if key == "value" and isinstance(value, bytes):
            out.update(payload_fields("value", value))
        elif key == "wake_up_at" and isinstance(value, int) and not isinstance(value, bool):
            out[key] = iso(value)
        else:
            out[key] = _plain(value, 1)
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
        "exponentiation-factor": _plain(view.retry_policy.exponentiation_factor),
        "max-interval-ms": view.retry_policy.max_interval_ms,
        "max-attempts": view.retry_policy.max_attempts or "unlimited",
        "on-max-attempts": view.retry_policy.on_max_attempts,
    }
    body["journal"] = [journal_entry_json(i, e, at) for i, e, at in journal]
    body["events"] = [event_json(e) for e in events]
    return body
