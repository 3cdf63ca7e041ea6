"""Human output of the admin-API verbs: invocation tables, the describe view with its timeline,
deployment tables, and the JSON / JSON-lines writers.

Everything the server sends is printed as `Text` (never as rich markup), because messages and stack
traces are user data that may contain brackets.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable
from typing import Any

import click
from rich.console import Console, Group, JustifyMethod
from rich.table import Table
from rich.text import Text

from processor.status_colors import status_color

OUTPUT_FORMATS = ("human", "json", "jsonl")
_WIDE = 200  # when piped, do not squeeze ids into the 80 columns rich assumes
_NARROW = 150


def console(*, stderr: bool = False) -> Console:
    probe = Console(stderr=stderr)
    if probe.is_terminal or os.environ.get("COLUMNS"):
        return probe
    return Console(stderr=stderr, width=_WIDE)


def emit_json(data: Any, output: str) -> None:
    """`json`: the value, indented; `jsonl`: one compact line per item of a list (else one line)."""
    if output == "json":
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    items = data if isinstance(data, list) else [data]
    for item in items:
        click.echo(json.dumps(item, ensure_ascii=False, separators=(",", ":")))


# -- times -----------------------------------------------------------------------------------------


def parse_time(value: Any) -> dt.datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def span(seconds: float) -> str:
    seconds = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:.1f}s" if seconds < 10 else f"{int(seconds)}s"


def age(value: Any, now: dt.datetime) -> str:
    moment = parse_time(value)
    return "" if moment is None else span((now - moment).total_seconds())


def until(value: Any, now: dt.datetime) -> str:
    moment = parse_time(value)
    if moment is None:
        return "" if value is None else str(value)
    delta = (moment - now).total_seconds()
    return f"in {span(delta)}" if delta >= 0 else f"due {span(delta)} ago"


def clock(value: Any) -> str:
    moment = parse_time(value)
    if moment is None:
        return "" if value is None else str(value)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


# -- pieces ----------------------------------------------------------------------------------------


def one_line(text: Any, limit: int = 60) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def failure_line(failure: Any, limit: int = 60) -> str:
    if not isinstance(failure, dict):
        return ""
    code = failure.get("code")
    head = f"{code}: " if code is not None else ""
    return one_line(f"{head}{failure.get('message', '')}", limit)


def result_failure(invocation: dict[str, Any]) -> dict[str, Any] | None:
    result = invocation.get("result")
    failure = result.get("failure") if isinstance(result, dict) else None
    return failure if isinstance(failure, dict) else None


def status_text(invocation: dict[str, Any]) -> Text:
    status = str(invocation.get("status", "?"))
    failed = result_failure(invocation) is not None
    label = f"{status} (failed)" if status == "completed" and failed else status
    return Text(label, style=status_color(status, failed=failed).rich)


_RIGHT = ("AGE", "RETRIES")
_DROP_FIRST = ("DEPLOYMENT", "NEXT RETRY", "AGE", "RETRIES")  # when the terminal is too narrow
_FAILURE_MIN, _FAILURE_MAX = 16, 60


def invocations_table(
    invocations: Iterable[dict[str, Any]], now: dt.datetime, width: int = _WIDE
) -> Table:
    """One line per invocation. The failure gets the room the other columns leave; on a narrow
    terminal the least useful columns go first (`describe` shows them), never the id."""
    columns: dict[str, list[Text]] = {
        h: [] for h in ("ID", "TARGET", "STATUS", "AGE", "RETRIES", "NEXT RETRY", "DEPLOYMENT")
    }
    failures = []
    for inv in invocations:
        columns["ID"].append(Text(str(inv.get("id", ""))))
        columns["TARGET"].append(Text(str(inv.get("target", ""))))
        columns["STATUS"].append(status_text(inv))
        columns["AGE"].append(Text(age(inv.get("created_at"), now)))
        columns["RETRIES"].append(Text(str(inv.get("retry_count", ""))))
        columns["NEXT RETRY"].append(Text(until(inv.get("next_retry_at"), now)))
        columns["DEPLOYMENT"].append(Text(str(inv.get("pinned_deployment") or "-")))
        # A completed invocation shows how it ended: an earlier attempt's failure that a resume
        # or a retry got past is history (describe keeps it), not what the list is about.
        done = inv.get("status") == "completed"
        failures.append(result_failure(inv) if done else inv.get("last_failure"))

    def used() -> int:
        widths = [max([len(h), *(c.cell_len for c in cells)]) for h, cells in columns.items()]
        return sum(widths) + 2 * len(widths)

    for header in _DROP_FIRST:
        if used() + _FAILURE_MIN <= width:
            break
        del columns[header]
    room = max(_FAILURE_MIN, min(_FAILURE_MAX, width - used()))
    shown = [Text(failure_line(f, room), style="red") if f else Text("") for f in failures]
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    ordered = list(columns.items())
    ordered.insert(len(ordered) - ("DEPLOYMENT" in columns), ("LAST FAILURE", shown))
    for header, _cells in ordered:
        justify: JustifyMethod = "right" if header in _RIGHT else "left"
        # an id cut short is useless: on a very narrow terminal it folds onto a second line instead
        fold = header == "ID"
        table.add_column(
            header, no_wrap=not fold, overflow="fold" if fold else "ellipsis", justify=justify
        )
    for row in zip(*(cells for _header, cells in ordered), strict=True):
        table.add_row(*row)
    return table


# -- describe --------------------------------------------------------------------------------------

_ENTRY_KNOWN = {"index", "kind", "name", "appended_at", "value", "value_size", "value_base64"}
_EVENT_KNOWN = {"kind", "at", "seq", "stacktrace"}


def _value_detail(item: dict[str, Any]) -> str:
    if "value_size" not in item and "value" not in item and "value_base64" not in item:
        return ""
    size = item.get("value_size")
    if "value" in item:
        preview = one_line(json.dumps(item["value"], ensure_ascii=False), 40)
        return f"{size} B {preview}" if size is not None else preview
    return f"{size} B (binary)" if size is not None else "(binary)"


def _extras(item: dict[str, Any], known: set[str]) -> list[str]:
    parts = []
    for key, value in item.items():
        if key in known or key == "failure" or value is None:
            continue
        parts.append(f"{key}={one_line(json.dumps(value, ensure_ascii=False), 40)}")
    return parts


def _failure_of(item: dict[str, Any]) -> dict[str, Any] | None:
    nested = item.get("failure")
    if isinstance(nested, dict):
        return nested
    if "code" in item and "message" in item:
        return item
    return None


def entry_detail(entry: dict[str, Any]) -> Text:
    failure = _failure_of(entry)
    if failure is not None:
        return Text(f"failure {failure_line(failure, 70)}", style="red")
    parts = [p for p in [_value_detail(entry), *_extras(entry, _ENTRY_KNOWN)] if p]
    return Text(one_line(" ".join(parts), 90))


def event_detail(event: dict[str, Any]) -> Text:
    failure = _failure_of(event)
    known = _EVENT_KNOWN | ({"code", "message"} if failure is event else set())
    parts = _extras(event, known | {"related_index"})
    if failure is not None:
        parts.insert(0, f"failure {failure_line(failure, 70)}")
    return Text(one_line(" ".join(parts), 110), style="red" if failure is not None else "")


def timeline(detail: dict[str, Any]) -> list[tuple[str, str, str, str, Text]]:
    """Journal entries and events merged in time order: (time, index, kind, name, detail)."""
    rows: list[tuple[tuple[float, int, int], tuple[str, str, str, str, Text]]] = []
    for n, entry in enumerate(detail.get("journal") or []):
        moment = parse_time(entry.get("appended_at"))
        key = (moment.timestamp() if moment else 0.0, 1, n)
        cells = (str(entry.get("index", "")), str(entry.get("kind", "")), entry.get("name") or "")
        rows.append((key, (clock(entry.get("appended_at")), *cells, entry_detail(entry))))
    for n, event in enumerate(detail.get("events") or []):
        moment = parse_time(event.get("at"))
        # a 'created' event shares its time with the input entry but logically precedes it
        rank = 0 if event.get("kind") == "created" else 2
        key = (moment.timestamp() if moment else 0.0, rank, n)
        kind = f"event: {event.get('kind', '')}"
        rows.append((key, (clock(event.get("at")), "", kind, "", event_detail(event))))
    return [cells for _key, cells in sorted(rows, key=lambda row: row[0])]


def _no_attempt(detail: dict[str, Any]) -> str:
    # An attempt reports its deployment when it pins (its first message) or fails.
    if detail.get("status") == "running":
        return f"- (attempt {detail.get('attempt', 0)} has not reported its deployment yet)"
    return "-"


def _policy_line(policy: Any) -> str:
    """The effective retry policy in one line, e.g. '3 attempts; 100ms ×2.0 up to 1000ms; then
    pause' ('-' when the answer has none)."""
    if not isinstance(policy, dict):
        return "-"
    attempts = policy.get("max-attempts")
    count = "unlimited attempts" if attempts == "unlimited" else f"{attempts} attempts"
    return (
        f"{count}; backoff {policy.get('initial-interval-ms')}ms "
        f"×{policy.get('exponentiation-factor')} up to {policy.get('max-interval-ms')}ms; "
        f"then {policy.get('on-max-attempts')}"
    )


def describe_invocation(detail: dict[str, Any], now: dt.datetime) -> Group:
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold", no_wrap=True)
    head.add_column()
    retries = f"{detail.get('retry_count', 0)} failed since the last resume or progress"
    next_retry = detail.get("next_retry_at")
    fields: list[tuple[str, Text | str]] = [
        ("Target", Text(str(detail.get("target", "")))),
        ("Status", status_text(detail)),
        ("Attempt", f"{detail.get('attempt', 0)} ({retries})"),
        ("Next retry", f"{clock(next_retry)} ({until(next_retry, now)})" if next_retry else "-"),
        ("Retry policy", Text(_policy_line(detail.get("retry_policy")))),
        ("Pinned deployment", Text(str(detail.get("pinned_deployment") or "- (not pinned yet)"))),
        (
            "Last attempt on",
            Text(str(detail.get("last_attempt_deployment") or _no_attempt(detail))),
        ),
        (
            "Created",
            f"{clock(detail.get('created_at'))} ({age(detail.get('created_at'), now)} ago)",
        ),
        (
            "Modified",
            f"{clock(detail.get('modified_at'))} ({age(detail.get('modified_at'), now)} ago)",
        ),
    ]
    if detail.get("idempotency_key"):
        fields.append(("Idempotency key", Text(str(detail["idempotency_key"]))))
    result = detail.get("result")
    if isinstance(result, dict):
        failure = result_failure(detail)
        shown = Text(f"failure {failure_line(failure, 100)}", style="red") if failure else None
        fields.append(("Result", shown or Text(_value_detail(result) or "(no value)")))
    for name, value in fields:
        head.add_row(name, value)
    parts: list[Any] = [Text(f"Invocation {detail.get('id', '')}", style="bold"), head]
    last = detail.get("last_failure")
    if isinstance(last, dict):
        where = f"attempt {last.get('attempt', '?')}"
        if last.get("related_index") is not None:
            where += f", journal index {last['related_index']}"
        parts.append(Text(f"\nLast failure ({where}): {failure_line(last, 200)}", style="bold red"))
        trace = last.get("stacktrace")
        parts.append(Text(str(trace).rstrip() if trace else _no_trace(detail, last), style="red"))
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold")
    for column in ("TIME", "#", "KIND", "NAME", "DETAIL"):
        table.add_column(column, no_wrap=column != "DETAIL")
    for time_, index, kind, name, det in timeline(detail):
        table.add_row(time_, index, Text(kind), Text(name), det)
    parts += [Text("\nTimeline", style="bold"), table]
    return Group(*parts)


# Failures the engine itself records for an attempt (frames.CODE_*): the handler never raised.
_ENGINE_CODES = frozenset({502, 503, 504, 571})


def _no_trace(detail: dict[str, Any], last: dict[str, Any]) -> str:
    """What stands in for a missing stack trace, and where to look instead."""
    if last.get("code") not in _ENGINE_CODES:
        return "(no stack trace: the handler reported this failure without one)"
    deployment = detail.get("last_attempt_deployment") or detail.get("pinned_deployment")
    check = (
        f"`processor deployments describe {deployment}`"
        if deployment
        else "`processor deployments list`"
    )
    return (
        "(no stack trace: the engine recorded this failure, the handler did not raise it; check "
        f"that the deployment is up and reachable ({check}), then resume the invocation if it is "
        "paused)"
    )


# -- deployments -----------------------------------------------------------------------------------


def handler_names(service: dict[str, Any]) -> list[str]:
    names = []
    for handler in service.get("handlers") or []:
        names.append(str(handler.get("name", "?")) if isinstance(handler, dict) else str(handler))
    return names


def deployments_table(deployments: Iterable[dict[str, Any]], now: dt.datetime) -> Table:
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold")
    for column in ("ID", "URI", "SERVICES", "HANDLERS", "REGISTERED"):
        table.add_column(column, no_wrap=column not in ("SERVICES",))
    for dep in deployments:
        services = dep.get("services") or []
        names = ", ".join(str(s.get("name", "?")) for s in services)
        count = sum(len(handler_names(s)) for s in services)
        registered = dep.get("registered_at")
        table.add_row(
            Text(str(dep.get("id", ""))),
            Text(str(dep.get("uri", ""))),
            Text(names),
            str(count),
            f"{age(registered, now)} ago" if parse_time(registered) else "",
        )
    return table


def describe_deployment(dep: dict[str, Any], now: dt.datetime) -> Group:
    registered = dep.get("registered_at")
    header = Text(f"Deployment {dep.get('id', '')}\n", style="bold")
    header.append(Text(f"URI         {dep.get('uri', '')}\n", style=""))
    header.append(Text(f"Registered  {clock(registered)} ({age(registered, now)} ago)", style=""))
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("SERVICE", no_wrap=True)
    table.add_column("HANDLER", no_wrap=True)
    for service in dep.get("services") or []:
        for handler in handler_names(service) or ["-"]:
            table.add_row(Text(str(service.get("name", "?"))), Text(handler))
    return Group(header, Text(""), table)
