"""A small synchronous client of the admin API (SPEC §6.2) for the short-lived CLI.

stdlib `urllib.request` only: one connection per request is cheap on loopback and keeps the CLI free
of event-loop plumbing. HTTP error answers are returned, not raised (`Answer`), because the verbs
print the server's status and message either way; only an unreachable server raises
(`AdminUnreachable`), with a message that names the URL and how to point the CLI elsewhere.
Also owns the `--admin-url` option shared by the `invocations` and `deployments` groups.
"""

from __future__ import annotations

import http
import http.client
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import click

DEFAULT_ADMIN_URL = "http://127.0.0.1:9070"
ADMIN_URL_ENV = "PROCESSOR_ADMIN_URL"
DEFAULT_TIMEOUT_S = 30.0
_META_KEY = "processor.admin_url"

F = TypeVar("F", bound=Callable[..., Any])


class AdminUnreachable(click.ClickException):
    """The admin API could not be reached at all (refused, unknown host, timeout, reset)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"cannot reach the admin API at {url} ({reason}). Is `processor serve` running there? "
            f"Point the CLI elsewhere with --admin-url URL or the {ADMIN_URL_ENV} environment "
            "variable."
        )


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: Any  # parsed JSON, or the raw text when the body is not JSON
    wrong_server: bool = False  # the URL answered, but it is not the admin API

    @property
    def ok(self) -> bool:
        return self.status < 400

    @property
    def phrase(self) -> str:
        try:
            return http.HTTPStatus(self.status).phrase
        except ValueError:
            return "Unknown Status"

    @property
    def message(self) -> str | None:
        if isinstance(self.body, dict):
            message = self.body.get("message")
            return None if message is None else str(message)
        if isinstance(self.body, str) and self.body.strip():
            return self.body.strip()
        return None

    def describe_error(self) -> str:
        return f"{self.status} {self.phrase}: {self.message or '(no message)'}"


class AdminApiError(click.ClickException):
    """An error answer where the command needed a successful one."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.describe_error())
        self.answer = answer


def _validate_base_url(url: str) -> str:
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # e.g. an unclosed [IPv6] address
        parts = urllib.parse.SplitResult("", "", "", "", "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise click.BadParameter(
            f"{url!r} is not an http(s) URL; expected e.g. {DEFAULT_ADMIN_URL}",
            param_hint="--admin-url",
        )
    return url.rstrip("/")


class AdminClient:
    def __init__(self, base_url: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.base_url = _validate_base_url(base_url)
        self.timeout_s = timeout_s

    def url(self, path: str, query: Mapping[str, str | int | None] | None = None) -> str:
        params = {k: str(v) for k, v in (query or {}).items() if v is not None}
        suffix = f"?{urllib.parse.urlencode(params)}" if params else ""
        return f"{self.base_url}{path}{suffix}"

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int | None] | None = None,
        body: Any = None,
    ) -> Answer:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url(path, query), data=data, method=method)
        request.add_header("accept", "application/json")
        if data is not None:
            request.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return Answer(response.status, _parse(response.read()))
        except urllib.error.HTTPError as error:
            with error:
                return self._explain_wrong_server(Answer(error.code, _parse(error.read())))
        except urllib.error.URLError as error:
            raise AdminUnreachable(self.base_url, _reason(error.reason)) from None
        except (OSError, http.client.HTTPException) as error:
            raise AdminUnreachable(self.base_url, _reason(error)) from None

    def _explain_wrong_server(self, answer: Answer) -> Answer:
        """The CLI only asks for routes and methods the admin API has, so a 405, or a 404 for the
        route itself (not a JSON 'not found' about an id), means `base_url` is some other server,
        e.g. the ingress (whose `POST /{service}/{handler}` answers `GET /invocations/<id>` 405)."""
        message = answer.message or ""
        is_admin_not_found = isinstance(answer.body, dict) and not message.startswith("no route")
        if answer.status not in (404, 405) or (answer.status == 404 and is_admin_not_found):
            return answer
        hint = (
            f"{message or 'no such route'}; {self.base_url} does not look like the admin API "
            "(the ingress listens on another port, 8080 by default; the admin API on 9070). "
            f"Point the CLI at it with --admin-url URL or the {ADMIN_URL_ENV} environment variable"
        )
        return Answer(answer.status, {"message": hint}, wrong_server=True)

    def call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int | None] | None = None,
        body: Any = None,
    ) -> Any:
        """The JSON body of a successful answer; an error answer raises AdminApiError."""
        answer = self.request(method, path, query=query, body=body)
        if not answer.ok:
            raise AdminApiError(answer)
        return answer.body


def _parse(raw: bytes) -> Any:
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text


def _reason(reason: object) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    text = str(getattr(reason, "strerror", None) or reason)
    return text or type(reason).__name__


def admin_url_group_option(f: F) -> F:
    """`--admin-url` on a group: remembered for its subcommands."""

    def remember(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
        if value:
            ctx.meta[_META_KEY] = value
        return value

    return click.option(
        "--admin-url",
        metavar="URL",
        default=None,
        expose_value=False,
        callback=remember,
        is_eager=True,
        help=f"Admin API URL (env {ADMIN_URL_ENV}; default {DEFAULT_ADMIN_URL}).",
    )(f)


def admin_url_option(f: F) -> F:
    """`--admin-url` on a subcommand; overrides the group's option and the environment."""
    return click.option(
        "--admin-url",
        "admin_url",
        metavar="URL",
        default=None,
        help=f"Admin API URL (env {ADMIN_URL_ENV}; default {DEFAULT_ADMIN_URL}).",
    )(f)


def client_for(admin_url: str | None) -> AdminClient:
    """Resolve the URL: this command's flag, then the group's flag, then the env, then default."""
    ctx = click.get_current_context(silent=True)
    from_group = ctx.meta.get(_META_KEY) if ctx is not None else None
    url = admin_url or from_group or os.environ.get(ADMIN_URL_ENV) or DEFAULT_ADMIN_URL
    return AdminClient(url)
