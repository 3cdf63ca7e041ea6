"""The admin API (SPEC §6.2): invocation verbs, list and describe, deployments, health, metrics.

State changes (pause, resume, cancel, kill, purge) are proposed as commands and answered with the
state machine's `Reply` once applied. What needs live data (the deployment a resume should use) is
resolved here, before anything is appended; a request that fails validation appends nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

from processor.actions import Reply
from processor.api.errors import ApiError, error_middleware, query_value
from processor.api.ingress import parse_id
from processor.api.partitions import JournalRow, PartitionRouter
from processor.api.render import invocation_detail, invocation_summary, iso
from processor.commands import Cancel, Command, Kill, Pause, Purge, Resume
from processor.ids import InvalidId, validate_deployment_id
from processor.registry import (
    Deployment,
    RegistrationError,
    Registry,
    ResumeRejected,
    ResumeTarget,
    resolve_resume_deployment,
)
from processor.retry import RetryPolicy
from processor.state_machine import apply
from processor.state_machine.lifecycle.common import not_found
from processor.state_machine.types import ApplyContext, Event
from processor.status import InvocationView, Status

DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 10_000
STATUSES = {s.value for s in Status}

MetricsRenderer = Callable[[], Awaitable[tuple[bytes, str]]]

# The state-changing verbs of SPEC §3; resume is built in `run_verb` (it resolves a deployment).
VERB_COMMANDS: dict[str, Callable[[str, str], Command]] = {
    "pause": Pause,
    "cancel": Cancel,
    "kill": Kill,
    "purge": Purge,
}
VERBS = ("pause", "resume", "cancel", "kill", "purge")


def _refusal(view: InvocationView, command: Command) -> ApiError | None:
    """The state machine's negative answer to `command` on `view` (applied in memory only), or None
    when the command would be accepted."""
    transition = apply(view, command, ApplyContext(0, 0))
    for action in transition.actions:
        if isinstance(action, Reply) and action.code >= 400:
            return ApiError(action.code, str(action.body.get("message", "")))
    return None


def check_statuses(statuses: Sequence[str] | None) -> None:
    unknown = [s for s in statuses or () if s not in STATUSES]
    if unknown:
        raise ApiError(
            400, f"unknown status {unknown[0]!r}; accepted: {', '.join(sorted(STATUSES))}"
        )


def deployment_json(d: Deployment) -> dict[str, Any]:
    return {**d.to_json(), "registered_at": iso(d.registered_at)}


class AdminApi:
    def __init__(
        self,
        router: PartitionRouter,
        registry: Registry,
        default_policy: RetryPolicy,
        metrics: MetricsRenderer | None = None,
    ) -> None:
        self.router = router
        self.registry = registry
        self.default_policy = default_policy
        self.metrics = metrics

    def app(self) -> web.Application:
        app = web.Application(middlewares=[error_middleware])
        r = app.router
        for verb in VERBS:
            r.add_patch(f"/invocations/{{id}}/{verb}", self._verb(verb))
        r.add_get("/invocations", self.list_invocations)
        r.add_get("/invocations/{id}", self.describe)
        r.add_post("/deployments", self.register)
        r.add_get("/deployments", self.list_deployments)
        r.add_get("/deployments/{id}", self.describe_deployment)
        r.add_get("/health", self.health)
        r.add_get("/metrics", self.render_metrics)
        return app

    def _verb(self, verb: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            option = query_value(request, "deployment", "keep")
            reply = await self.run_verb(verb, request.match_info["id"], option)
            return web.json_response(reply.body, status=reply.code)

        return handle

    async def run_verb(self, verb: str, raw_id: str, deployment: str = "keep") -> Reply:
        """Validate and propose `verb` (pause, resume, cancel, kill, purge) for one invocation.

        The one code path of every state-changing verb, for the JSON routes and the web UI alike.
        Raises ApiError (nothing appended) for a malformed id or a deployment option that does not
        resolve; otherwise answers with the state machine's `Reply`. `deployment` is only read by
        resume.
        """
        invocation_id = parse_id(raw_id)
        partition = self.router.for_id(invocation_id)
        if verb != "resume":
            command = VERB_COMMANDS.get(verb)
            if command is None:
                raise ApiError(400, f"unknown verb {verb!r}; accepted: {', '.join(VERBS)}")
            return await partition.propose(lambda rid: command(invocation_id, rid))
        target = ResumeTarget(None, None)
        if deployment != "keep":
            view = await partition.get_view(invocation_id)
            if view is None:
                raise ApiError(404, not_found(invocation_id))
            resolved = resolve_resume_deployment(
                view, deployment, self.registry, self.default_policy
            )
            if isinstance(resolved, ResumeRejected):
                # A status no resume applies to (scheduled 425, completed 409) answers before the
                # deployment's problem, as it does without the option. It is the state machine's
                # own answer, computed on the view just read (pure; nothing is appended).
                refusal = _refusal(view, Resume(invocation_id, None, None, "admin"))
                raise refusal or ApiError(resolved.code, resolved.message)
            target = resolved
        return await partition.propose(
            lambda rid: Resume(invocation_id, target.deployment_id, target.retry_policy, rid)
        )

    async def list_invocations(self, request: web.Request) -> web.Response:
        # `?status=` takes a comma-separated list and may be repeated; the others are single.
        raw_statuses = request.query.getall("status", [])
        statuses = [s.strip() for raw in raw_statuses for s in raw.split(",") if s.strip()] or None
        check_statuses(statuses)
        raw_limit = query_value(request, "limit", str(DEFAULT_LIST_LIMIT))
        try:
            limit = int(raw_limit)
        except ValueError:
            raise ApiError(400, f"bad ?limit={raw_limit!r}: expected an integer") from None
        views = await self.query_invocations(
            service=query_value(request, "service", "") or None,
            handler=query_value(request, "handler", "") or None,
            statuses=statuses,
            deployment=query_value(request, "deployment", "") or None,
            limit=limit,
        )
        return web.json_response({"invocations": [invocation_summary(v) for v in views]})

    async def query_invocations(
        self,
        *,
        service: str | None = None,
        handler: str | None = None,
        statuses: Sequence[str] | None = None,
        deployment: str | None = None,
        limit: int = DEFAULT_LIST_LIMIT,
    ) -> list[InvocationView]:
        """Invocations of every partition matching the filters, newest first, at most `limit`.

        Raises ApiError(400) for an unknown status, a malformed deployment id or a bad limit.
        """
        check_statuses(statuses)
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise ApiError(400, f"?limit must be between 1 and {MAX_LIST_LIMIT}, got {limit}")
        if deployment is not None:
            try:
                validate_deployment_id(deployment)
            except InvalidId as exc:
                raise ApiError(400, str(exc)) from None
        per_partition = await asyncio.gather(
            *(
                p.list_invocations(
                    service=service,
                    handler=handler,
                    statuses=statuses,
                    deployment=deployment,
                    limit=limit,
                )
                for p in self.router.partitions
            )
        )
        return sorted(
            (v for chunk in per_partition for v in chunk),
            key=lambda v: (v.created_at, v.id),
            reverse=True,
        )[:limit]

    async def invocation_with_history(
        self, raw_id: str
    ) -> tuple[InvocationView, list[JournalRow], list[Event]]:
        """The view, journal and events of one invocation; ApiError 400 malformed, 404 unknown."""
        invocation_id = parse_id(raw_id)
        partition = self.router.for_id(invocation_id)
        view = await partition.get_view(invocation_id)
        if view is None:
            raise ApiError(404, not_found(invocation_id))
        journal, events = await asyncio.gather(
            partition.get_journal(invocation_id), partition.get_events(invocation_id)
        )
        return view, journal, events

    async def describe(self, request: web.Request) -> web.Response:
        view, journal, events = await self.invocation_with_history(request.match_info["id"])
        return web.json_response(invocation_detail(view, journal, events))

    async def register(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (ValueError, RecursionError, LookupError) as exc:  # LookupError: unknown charset
            raise ApiError(
                400, f'the body must be JSON like {{"uri": "http://host:port"}} ({exc})'
            ) from None
        if not isinstance(body, dict):
            raise ApiError(
                400,
                f'the body must be a JSON object like {{"uri": "http://host:port"}}, got '
                f"{type(body).__name__}",
            )
        uri = body.get("uri")
        deployment, created = await self.register_uri(uri)
        return web.json_response(deployment_json(deployment), status=201 if created else 200)

    async def register_uri(self, uri: object) -> tuple[Deployment, bool]:
        """Discover and store the deployment at `uri`: (deployment, created); ApiError(400)."""
        if not isinstance(uri, str) or not uri.lower().startswith(("http://", "https://")):
            raise ApiError(400, f'"uri" must be an http(s) URL, got {uri!r}')
        try:
            return await self.registry.register(uri)
        except RegistrationError as exc:
            raise ApiError(400, str(exc)) from None

    async def list_deployments(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"deployments": [deployment_json(d) for d in self.registry.list()]}
        )

    async def describe_deployment(self, request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        try:
            validate_deployment_id(raw)
        except InvalidId as exc:
            raise ApiError(400, str(exc)) from None
        deployment = self.registry.get(raw)
        if deployment is None:
            raise ApiError(
                404,
                f"deployment {raw} not found; list the registered ones with "
                "`processor deployments list` (GET /deployments)",
            )
        return web.json_response(deployment_json(deployment))

    async def health(self, request: web.Request) -> web.Response:
        """200 while the daemon runs; "degraded" names the partitions that stopped and why."""
        failed = {
            str(p.partition_id): reason
            for p in self.router.partitions
            if (reason := getattr(p, "failure", None)) is not None
        }
        body: dict[str, Any] = {
            "status": "degraded" if failed else "ok",
            "partitions": len(self.router.partitions),
        }
        if failed:
            body["failed_partitions"] = failed
        return web.json_response(body)

    async def render_metrics(self, request: web.Request) -> web.Response:
        if self.metrics is None:
            raise ApiError(404, "metrics are not enabled")
        body, content_type = await self.metrics()
        return web.Response(body=body, headers={"content-type": content_type})
