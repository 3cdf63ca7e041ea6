"""The admin API (SPEC §6.2): invocation verbs, list and describe, deployments, health, metrics.

State changes (pause, resume, cancel, kill, purge) are proposed as commands and answered with the
state machine's `Reply` once applied. What needs live data (the deployment a resume should use) is
resolved here, before anything is appended; a request that fails validation appends nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from processor.api.errors import ApiError, error_middleware
from processor.api.ingress import parse_id
from processor.api.partitions import PartitionRouter
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
from processor.status import Status

DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 10_000
STATUSES = {s.value for s in Status}

MetricsRenderer = Callable[[], Awaitable[tuple[bytes, str]]]


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
        r.add_patch("/invocations/{id}/pause", self._verb(Pause))
        r.add_patch("/invocations/{id}/cancel", self._verb(Cancel))
        r.add_patch("/invocations/{id}/kill", self._verb(Kill))
        r.add_patch("/invocations/{id}/purge", self._verb(Purge))
        r.add_patch("/invocations/{id}/resume", self.resume)
        r.add_get("/invocations", self.list_invocations)
        r.add_get("/invocations/{id}", self.describe)
        r.add_post("/deployments", self.register)
        r.add_get("/deployments", self.list_deployments)
        r.add_get("/deployments/{id}", self.describe_deployment)
        r.add_get("/health", self.health)
        r.add_get("/metrics", self.render_metrics)
        return app

    def _verb(
        self, command: Callable[[str, str], Command]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            invocation_id = parse_id(request.match_info["id"])
            partition = self.router.for_id(invocation_id)
            reply = await partition.propose(lambda rid: command(invocation_id, rid))
            return web.json_response(reply.body, status=reply.code)

        return handle

    async def resume(self, request: web.Request) -> web.Response:
        invocation_id = parse_id(request.match_info["id"])
        option = request.query.get("deployment", "keep")
        partition = self.router.for_id(invocation_id)
        target = ResumeTarget(None, None)
        if option != "keep":
            view = await partition.get_view(invocation_id)
            if view is None:
                raise ApiError(404, f"invocation {invocation_id} not found")
            resolved = resolve_resume_deployment(view, option, self.registry, self.default_policy)
            if isinstance(resolved, ResumeRejected):
                raise ApiError(resolved.code, resolved.message)
            target = resolved
        reply = await partition.propose(
            lambda rid: Resume(invocation_id, target.deployment_id, target.retry_policy, rid)
        )
        return web.json_response(reply.body, status=reply.code)

    async def list_invocations(self, request: web.Request) -> web.Response:
        q = request.query
        statuses = None
        if q.get("status"):
            statuses = [s.strip() for s in q["status"].split(",") if s.strip()]
            unknown = [s for s in statuses if s not in STATUSES]
            if unknown:
                raise ApiError(
                    400,
                    f"unknown status {unknown[0]!r}; accepted: {', '.join(sorted(STATUSES))}",
                )
        try:
            limit = int(q.get("limit", DEFAULT_LIST_LIMIT))
        except ValueError:
            raise ApiError(400, f"bad ?limit={q.get('limit')!r}: expected an integer") from None
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise ApiError(400, f"?limit must be between 1 and {MAX_LIST_LIMIT}, got {limit}")
        deployment = q.get("deployment") or None
        if deployment is not None:
            try:
                validate_deployment_id(deployment)
            except InvalidId as exc:
                raise ApiError(400, str(exc)) from None
        per_partition = await asyncio.gather(
            *(
                p.list_invocations(
                    service=q.get("service") or None,
                    handler=q.get("handler") or None,
                    statuses=statuses,
                    deployment=deployment,
                    limit=limit,
                )
                for p in self.router.partitions
            )
        )
        views = sorted(
            (v for chunk in per_partition for v in chunk),
            key=lambda v: (v.created_at, v.id),
            reverse=True,
        )[:limit]
        return web.json_response({"invocations": [invocation_summary(v) for v in views]})

    async def describe(self, request: web.Request) -> web.Response:
        invocation_id = parse_id(request.match_info["id"])
        partition = self.router.for_id(invocation_id)
        view = await partition.get_view(invocation_id)
        if view is None:
            raise ApiError(404, f"invocation {invocation_id} not found")
        journal, events = await asyncio.gather(
            partition.get_journal(invocation_id), partition.get_events(invocation_id)
        )
        return web.json_response(invocation_detail(view, journal, events))

    async def register(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, 'the body must be JSON like {"uri": "http://host:port"}') from None
        uri = body.get("uri") if isinstance(body, dict) else None
        if not isinstance(uri, str) or not uri.startswith(("http://", "https://")):
            raise ApiError(400, f'"uri" must be an http(s) URL, got {uri!r}')
        try:
            deployment, created = await self.registry.register(uri)
        except RegistrationError as exc:
            raise ApiError(400, str(exc)) from None
        return web.json_response(deployment_json(deployment), status=201 if created else 200)

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
            raise ApiError(404, f"deployment {raw} not found")
        return web.json_response(deployment_json(deployment))

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "partitions": len(self.router.partitions)})

    async def render_metrics(self, request: web.Request) -> web.Response:
        if self.metrics is None:
            raise ApiError(404, "metrics are not enabled")
        body, content_type = await self.metrics()
        return web.Response(body=body, headers={"content-type": content_type})
