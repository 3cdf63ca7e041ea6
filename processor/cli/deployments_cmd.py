"""`processor deployments register|list|describe` (SPEC §6.3): admin API registry clients."""

from __future__ import annotations

import datetime as dt
import urllib.parse

import click
from rich.text import Text

from processor.cli.client import admin_url_group_option, admin_url_option, client_for
from processor.cli.invocations_cmd import output_option
from processor.cli.render import (
    console,
    deployments_table,
    describe_deployment,
    emit_json,
    handler_names,
)
from processor.ids import InvalidId, validate_deployment_id


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@click.group()
@admin_url_group_option
def deployments() -> None:
    """Register and inspect deployments through the admin API."""


@deployments.command()
@click.argument("uri")
@output_option
@admin_url_option
def register(uri: str, output: str, admin_url: str | None) -> None:
    """Register the deployment served at URI (the admin API discovers its services)."""
    try:
        parts = urllib.parse.urlsplit(uri)
    except ValueError as exc:  # e.g. an unclosed [IPv6] address; the server says the rest
        raise click.BadParameter(f"{uri!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise click.BadParameter(f"{uri!r} is not an http(s) URL, e.g. http://127.0.0.1:9080")
    answer = client_for(admin_url).request("POST", "/deployments", body={"uri": uri})
    if not answer.ok:
        raise click.ClickException(f"cannot register {uri}: {answer.describe_error()}")
    body = answer.body if isinstance(answer.body, dict) else {}
    if output != "human":
        emit_json(body, output)
        return
    done = "Registered" if answer.status == 201 else "Already registered:"
    out = console()
    out.print(Text(f"{done} deployment {body.get('id', '?')} at {body.get('uri', uri)}"))
    for service in body.get("services") or []:
        handlers = ", ".join(handler_names(service)) or "-"
        out.print(Text(f"  {service.get('name', '?')}: {handlers}"))


@deployments.command("list")
@output_option
@admin_url_option
def list_(output: str, admin_url: str | None) -> None:
    """List the registered deployments."""
    body = client_for(admin_url).call("GET", "/deployments")
    rows = body.get("deployments", []) if isinstance(body, dict) else []
    if output != "human":
        emit_json(body if output == "json" else rows, output)
        return
    if not rows:
        click.echo("No deployments registered. Register one with `processor deployments register`.")
        return
    console().print(deployments_table(rows, _now()))


@deployments.command()
@click.argument("deployment_id", metavar="DP_ID")
@output_option
@admin_url_option
def describe(deployment_id: str, output: str, admin_url: str | None) -> None:
    """Show one deployment: its URI and the services and handlers it serves."""
    try:
        validate_deployment_id(deployment_id)
    except InvalidId as error:
        raise click.BadParameter(str(error)) from None
    body = client_for(admin_url).call("GET", f"/deployments/{deployment_id}")
    if output != "human":
        emit_json(body, output)
        return
    console().print(describe_deployment(body, _now()))
