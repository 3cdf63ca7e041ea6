"""What the web UI shows, computed from views, journal rows and events: times, sizes, one-line
failures, which verbs apply in which status, and the merged timeline of an invocation.

Pure functions only (no aiohttp, no templates), so the pages stay thin and this is easy to test.
Everything returned is plain text; escaping is the templates' job (Jinja2 autoescape).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from processor.api.render import iso as iso  # re-exported: `<time datetime>` in the templates
from processor.api.render import utc
from processor.state_machine.types import Event
from processor.status import Failure, InvocationView, Status

_NOT_COMPLETED = tuple(s.value for s in Status if s is not Status.COMPLETED)

# The statuses each verb applies to (SPEC §3.1): what a bulk action selects and which buttons of
# the invocation page are enabled. The same selection as the CLI's queries.
VERB_STATUSES: Mapping[str, tuple[str, ...]] = {
    "pause": ("running", "backing-off"),
    "resume": ("paused", "suspended", "backing-off"),
    "cancel": _NOT_COMPLETED,
    "kill": _NOT_COMPLETED,
    "purge": ("completed",),
}
VERB_PAST = {
    "pause": "paused",
    "resume": "resumed",
    "cancel": "canceled",
    "kill": "killed",
    "purge": "purged",
}
# Statuses in which something will change without anyone acting: the pages refresh themselves.
IN_FLIGHT = ("scheduled", "running", "backing-off", "suspended")
STATUS_ORDER = tuple(s.value for s in Status)


def now_ms() -> int:
    return int(dt.datetime.now(dt.UTC).timestamp() * 1000)


def span(ms: int) -> str:
    seconds = abs(ms) / 1000
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:.1f}s" if seconds < 10 else f"{int(seconds)}s"


def age(ms: int | None, now: int) -> str:
    return "" if ms is None else span(now - ms)


def until(ms: int | None, now: int) -> str:
    if ms is None:
        return ""
    return f"in {span(ms - now)}" if ms >= now else f"due {span(now - ms)} ago"


def clock(ms: int | None) -> str:
    """A readable UTC time with milliseconds, e.g. `2024-05-01 12:00:03.120`."""
    if ms is None:
        return ""
    moment = utc(ms)
    if moment is None:
        return f"epoch+{ms}ms"
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1024 * 1024):.1f} MiB"


def failure_line(failure: Failure | Mapping[str, Any] | None) -> str:
    """`code message` on one line (the message's first line), or '' for no failure."""
    if failure is None:
        return ""
    code: Any
    message: Any
    if isinstance(failure, Failure):
        code, message = failure.code, failure.message
    else:
        code, message = failure.get("code"), failure.get("message")
    first = str(message or "").strip().splitlines()[:1]
    return f"{code} {first[0] if first else ''}".strip()


def status_key(view: InvocationView) -> str:
    """The status plus `-failed` for a completed invocation whose result is a failure (CSS)."""
    failed = view.result is not None and view.result.failure is not None
    return f"{view.status.value}-failed" if failed else view.status.value


def applicable(verb: str, status: str) -> bool:
    return status in VERB_STATUSES.get(verb, ())


@dataclass(frozen=True, slots=True)
class TimelineRow:
    at: int
    source: str  # "journal" or "event"
    index: int | None  # journal index, None for events
    kind: str
    name: str
    detail: str
    failed: bool = False
    stacktrace: str | None = None


def _journal_row(index: int, entry: Mapping[str, Any], appended_at: int) -> TimelineRow:
    kind = str(entry.get("kind", "?"))
    name = str(entry.get("name") or "")
    if not name and entry.get("completion_id") is not None:
        name = f"completion {entry['completion_id']}"
    failure = entry.get("failure")
    if isinstance(failure, Mapping):
        return TimelineRow(
            appended_at, "journal", index, kind, name, failure_line(failure), True,
            failure.get("stacktrace") if isinstance(failure.get("stacktrace"), str) else None,
        )  # fmt: skip
    details = []
    value = entry.get("value")
    if isinstance(value, bytes):
        details.append(size(len(value)))
    if isinstance(entry.get("wake_up_at"), int):
        details.append(f"wakes up at {clock(entry['wake_up_at'])}")
    return TimelineRow(appended_at, "journal", index, kind, name, ", ".join(details))


def _plain(value: Any) -> str:
    if isinstance(value, bytes):
        return size(len(value))
    return str(value)


def _event_row(event: Event) -> TimelineRow:
    data = dict(event.data)
    failure = data.pop("failure", None)
    if "code" in data and "message" in data:
        failure = {"code": data.pop("code"), "message": data.pop("message")}
    stacktrace = data.pop("stacktrace", None)
    if isinstance(failure, Mapping) and isinstance(failure.get("stacktrace"), str):
        stacktrace = failure["stacktrace"]
    parts = [failure_line(failure)] if isinstance(failure, Mapping) else []
    count = data.pop("count", None)
    if isinstance(count, int) and count > 1:
        parts.append(f"×{count}")
    parts += [f"{k} {_plain(v)}" for k, v in data.items() if v is not None and v != ""]
    return TimelineRow(
        event.at,
        "event",
        None,
        event.kind,
        "",
        ", ".join(p for p in parts if p),
        isinstance(failure, Mapping),
        stacktrace if isinstance(stacktrace, str) else None,
    )


def timeline(
    journal: Iterable[tuple[int, Mapping[str, Any], int]], events: Iterable[Event]
) -> list[TimelineRow]:
    """Journal entries and events in one list, in time order (journal first on equal times)."""
    rows = [(at, 0, i, _journal_row(i, e, at)) for i, e, at in journal]
    rows += [(e.at, 1, e.seq, _event_row(e)) for e in events]
    rows.sort(key=lambda r: r[:3])
    return [r[3] for r in rows]
