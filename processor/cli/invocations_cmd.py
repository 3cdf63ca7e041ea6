"""`processor invocations list|describe|pause|resume|cancel|kill|purge` (SPEC §6.3).

The lifecycle verbs take one invocation id, or a query (`Service` or `Service/handler`) that selects
the invocations in the statuses the verb applies to (SPEC §3.1). A query shows its selection, asks
for confirmation (`--yes` skips it; the answer is read from stdin even without a terminal, and EOF
means no: a CI environment must never confirm by accident), runs the verb with a progress bar on
stderr and prints a summary; any failure makes the exit code 1.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from processor.cli.client import (
    AdminClient,
    AdminUnreachable,
    Answer,
    admin_url_group_option,
    admin_url_option,
    client_for,
)
from processor.cli.render import (
    OUTPUT_FORMATS,
    console,
    describe_invocation,
    emit_json,
    invocations_table,
)
from processor.ids import INVOCATION_PREFIX, InvalidId, parse_invocation_id, validate_deployment_id
from processor.names import closest_name
from processor.status import Status

_NOT_COMPLETED = tuple(s.value for s in Status if s is not Status.COMPLETED)


@dataclass(frozen=True, slots=True)
class Verb:
    name: str
    past: str
    statuses: tuple[str, ...]  # the statuses a query selects (SPEC §3.1)
    meanings: dict[int, str]  # success codes and what each means


VERBS = {
    "pause": Verb(
        "pause", "paused", ("running", "backing-off"), {202: "paused", 200: "was already paused"}
    ),
    "resume": Verb("resume", "resumed", ("paused", "suspended", "backing-off"), {200: "resumed"}),
    "cancel": Verb(
        "cancel",
        "canceled",
        _NOT_COMPLETED,
        {202: "cancel signal appended", 200: "canceled (it had not started yet)"},
    ),
    "kill": Verb("kill", "killed", _NOT_COMPLETED, {200: "killed"}),
    "purge": Verb("purge", "purged", ("completed",), {200: "purged"}),
}
_CONCURRENCY = 8
_ERROR_MEANINGS = {400: "bad request", 404: "not found", 409: "conflict", 425: "not started yet"}

output_option = click.option(
    "--output",
    "-o",
    type=click.Choice(OUTPUT_FORMATS),
    default="human",
    show_default=True,
    help="json prints the admin API's answer as is; jsonl one compact JSON object per line.",
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _check_invocation_id(text: str) -> str:
    try:
        parse_invocation_id(text)
    except InvalidId as error:
        raise click.BadParameter(str(error)) from None
    return text


def _check_deployment(text: str | None, *, allow_keywords: bool = False) -> str | None:
    if text is None or (allow_keywords and text in ("keep", "latest")):
        return text
    try:
        return validate_deployment_id(text)
    except InvalidId as error:
        hint = "'keep', 'latest' or " if allow_keywords else ""
        raise click.BadParameter(f"{error}; expected {hint}a deployment id") from None


@click.group()
@admin_url_group_option
def invocations() -> None:
    """List, inspect and control invocations through the admin API."""


@invocations.command("list")
@click.option("--service", help="Only invocations of this service.")
@click.option("--handler", help="Only invocations of this handler.")
@click.option("--status", type=click.Choice([s.value for s in Status]), help="Only this status.")
@click.option("--deployment", metavar="DP_ID", help="Only invocations pinned to this deployment.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many (newest first).")
@output_option
@admin_url_option
def list_(
    service: str | None,
    handler: str | None,
    status: str | None,
    deployment: str | None,
    limit: int | None,
    output: str,
    admin_url: str | None,
) -> None:
    """List invocations, newest first."""
    query = {
        "service": service,
        "handler": handler,
        "status": status,
        "deployment": _check_deployment(deployment),
        "limit": limit,
    }
    body = client_for(admin_url).call("GET", "/invocations", query=query)
    rows = body.get("invocations", []) if isinstance(body, dict) else []
    if output != "human":
        emit_json(body if output == "json" else rows, output)
        return
    if not rows:
        click.echo("No invocations match." + _service_hint(client_for(admin_url), service))
        return
    out = console()
    out.print(invocations_table(rows, _now(), out.width))


@invocations.command()
@click.argument("invocation_id", metavar="INVOCATION_ID")
@output_option
@admin_url_option
def describe(invocation_id: str, output: str, admin_url: str | None) -> None:
    """Show one invocation: status, pinned deployment, last failure and a timeline."""
    _check_invocation_id(invocation_id)
    body = client_for(admin_url).call("GET", f"/invocations/{invocation_id}")
    if output != "human":
        emit_json(body, output)
        return
    console().print(describe_invocation(body, _now()))


# -- lifecycle verbs -------------------------------------------------------------------------------


def _run_one(client: AdminClient, verb: Verb, invocation_id: str, query: dict[str, str]) -> Answer:
    return client.request("PATCH", f"/invocations/{invocation_id}/{verb.name}", query=query)


def _outcome(verb: Verb, invocation_id: str, answer: Answer) -> str:
    if answer.ok and isinstance(answer.body, dict) and answer.body.get("already_running"):
        meaning = "was already running, nothing to resume"
        if answer.body.get("pinned_deployment"):
            meaning += f"; pinned to {answer.body['pinned_deployment']} for its next attempt"
    elif answer.ok:
        meaning = verb.meanings.get(answer.status, verb.past)
    elif answer.wrong_server:
        meaning = "not sent to the admin API"
    else:
        meaning = _ERROR_MEANINGS.get(answer.status, "error")
    line = f"{invocation_id}: {meaning} ({answer.status} {answer.phrase})"
    detail = answer.message
    if detail is None and isinstance(answer.body, dict) and answer.body.get("status"):
        detail = f"now {answer.body['status']}"  # success answers may carry the new status only
    return f"{line}: {detail}" if detail else line


def _service_hint(client: AdminClient, service: str | None) -> str:
    """When nothing matched a service filter: a note if no deployment serves that service, with
    the closest registered name (names are case-sensitive), else ''."""
    if not service:
        return ""
    answer = client.request("GET", "/deployments")
    if not answer.ok or not isinstance(answer.body, dict):
        return ""
    known = sorted(
        {
            str(svc.get("name"))
            for d in answer.body.get("deployments", [])
            if isinstance(d, dict)
            for svc in d.get("services", [])
            if isinstance(svc, dict)
        }
    )
    if service in known:
        return ""
    close = closest_name(service, known)
    suggestion = f"; did you mean {close}? (names are case-sensitive)" if close else ""
    return f" No registered deployment serves a service {service!r}{suggestion}"


def _parse_query(text: str) -> tuple[str, str | None]:
    service, _, handler = text.partition("/")
    if not service or "/" in handler or (text.endswith("/") and not handler):
        raise click.BadParameter(
            f"{text!r} is neither an invocation id ({INVOCATION_PREFIX}…) nor a query "
            "'Service' or 'Service/handler'",
            param_hint="TARGET",
        )
    return service, handler or None


def _select(
    client: AdminClient, service: str, handler: str | None, statuses: tuple[str, ...], limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """One list request per status (the API filters by one status); newest first, cut to limit."""
    found: dict[str, dict[str, Any]] = {}
    truncated = False
    for status in statuses:
        query = {"service": service, "handler": handler, "status": status, "limit": limit}
        body = client.call("GET", "/invocations", query=query)
        rows = body.get("invocations", []) if isinstance(body, dict) else []
        truncated = truncated or len(rows) >= limit
        for row in rows:
            if row.get("status") == status:  # a server that ignores the filter must not widen it
                found.setdefault(str(row.get("id")), row)
    ordered = sorted(found.values(), key=lambda r: str(r.get("created_at") or ""), reverse=True)
    return ordered[:limit], truncated or len(ordered) > limit


def _confirm(question: str) -> bool:
    click.echo(f"{question} [y/N] ", nl=False, err=True)
    try:
        answer = sys.stdin.readline()
    except (OSError, ValueError):
        answer = ""
    if not answer or not sys.stdin.isatty():
        click.echo("", err=True)  # keep what follows off the prompt's line; EOF is a no
    return answer.strip().lower() in ("y", "yes")


def _run_many(
    client: AdminClient, verb: Verb, ids: list[str], query: dict[str, str]
) -> list[tuple[str, Answer | str]]:
    results: dict[str, Answer | str] = {}
    progress = Progress(
        TextColumn(f"{verb.name.capitalize()}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console(stderr=True),
    )

    def one(invocation_id: str) -> tuple[str, Answer | str]:
        try:
            return invocation_id, _run_one(client, verb, invocation_id, query)
        except AdminUnreachable as error:
            return invocation_id, error.message

    with progress, ThreadPoolExecutor(max_workers=_CONCURRENCY) as pool:
        task = progress.add_task(verb.name, total=len(ids))
        for invocation_id, result in pool.map(one, ids):
            results[invocation_id] = result
            progress.advance(task)
    return [(i, results[i]) for i in ids]


def _verb_command(verb: Verb) -> Callable[..., None]:
    def run(
        target: str,
        yes: bool,
        limit: int,
        status: tuple[str, ...],
        admin_url: str | None,
        deployment: str | None = None,
    ) -> None:
        client = client_for(admin_url)
        query = {"deployment": deployment} if deployment is not None else {}
        if target.startswith(INVOCATION_PREFIX):
            answer = _run_one(client, verb, _check_invocation_id(target), query)
            if not answer.ok:
                raise click.ClickException(_outcome(verb, target, answer))
            click.echo(_outcome(verb, target, answer))
            return
        service, handler = _parse_query(target)
        bad = [s for s in status if s not in verb.statuses]
        if bad:
            raise click.BadParameter(
                f"{verb.name} applies to {', '.join(verb.statuses)}, not {', '.join(bad)}",
                param_hint="--status",
            )
        statuses = status or verb.statuses
        rows, truncated = _select(client, service, handler, statuses, limit)
        what = f"({', '.join(statuses)}) of {target}"
        if not rows:
            hint = _service_hint(client, service)
            click.echo(f"No invocations {what}; nothing to {verb.name}.{hint}")
            return
        out = console()
        out.print(invocations_table(rows, _now(), out.width))
        if truncated:
            click.echo(f"Selected the newest {limit}; raise --limit to select more.", err=True)
        on = f" on deployment {deployment}" if deployment not in (None, "keep") else ""
        noun = "invocation" if len(rows) == 1 else "invocations"
        question = f"{verb.name.capitalize()} {len(rows)} {noun} {what}{on}?"
        if not yes and not _confirm(question):
            # No answer at all (a script, a pipe) most likely wanted --yes.
            hint = "" if sys.stdin.isatty() else " (answer y, or pass --yes when not at a terminal)"
            click.echo(f"Nothing was changed.{hint}", err=True)
            click.get_current_context().exit(1)
        results = _run_many(client, verb, [str(r["id"]) for r in rows], query)
        failed = [(i, r) for i, r in results if isinstance(r, str) or not r.ok]
        click.echo(f"{len(results) - len(failed)} {verb.past}, {len(failed)} failed.")
        for invocation_id, result in failed:
            if isinstance(result, str):
                click.echo(f"  {invocation_id}: {result}")
            else:
                click.echo(f"  {_outcome(verb, invocation_id, result)}")
        if failed:
            click.get_current_context().exit(1)

    run.__name__ = verb.name
    run.__doc__ = (
        f"{verb.name.capitalize()} an invocation (INVOCATION_ID) or every invocation of a query "
        f"TARGET ('Service' or 'Service/handler') in status {', '.join(verb.statuses)}."
    )
    return run


def _register(verb: Verb) -> None:
    command: Callable[..., None] = _verb_command(verb)
    if verb.name == "resume":
        command = click.option(
            "--deployment",
            default="keep",
            show_default=True,
            metavar="keep|latest|DP_ID",
            callback=lambda _c, _p, v: _check_deployment(v, allow_keywords=True),
            help="Keep the pinned deployment, re-pin to the latest one, or to this one.",
        )(command)
    command = admin_url_option(command)
    command = click.option(
        "--status",
        multiple=True,
        metavar="STATUS",
        help=f"With a query: only these statuses (of {', '.join(verb.statuses)}).",
    )(command)
    command = click.option(
        "--limit",
        type=click.IntRange(min=1),
        default=500,
        show_default=True,
        help="With a query: select at most this many.",
    )(command)
    command = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")(
        command
    )
    command = click.argument("target", metavar="INVOCATION_ID|Service[/handler]")(command)
    short = f"{verb.name.capitalize()} invocations by id or Service[/handler] query."
    invocations.command(verb.name, short_help=short)(command)


for _verb in VERBS.values():
    _register(_verb)
