"""Web UI pages that are not about one invocation: bulk actions (confirm, then run) and deployments.

A bulk action is two POSTs to `/ui/actions`: the first shows how many of the selected invocations
the verb applies to (by status) and which are skipped; the second (`confirmed=yes`) runs the verb on
each through `AdminApi.run_verb`, a few at a time, and shows every answer.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from processor.api import ui_format as fmt
from processor.api.admin import MAX_LIST_LIMIT, VERBS
from processor.api.errors import ApiError, unavailable_message
from processor.ids import InvalidId, parse_invocation_id
from processor.leader.replies import LeaderStopped
from processor.partition import PartitionNotRunning
from processor.status import InvocationView

if TYPE_CHECKING:
    from processor.api.ui import Ui

BULK_CONCURRENCY = 8


class BulkPages:
    def __init__(self, ui: Ui) -> None:
        self.ui = ui

    async def handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        verb = str(form.get("verb", ""))
        # Only the list's own filters go back into the link, re-encoded (never a raw URL).
        back = urlencode(parse_qsl(str(form.get("back", ""))))
        if verb not in VERBS:
            return self.ui.error_page(
                request, 400, f"unknown action {verb!r}; choose one of {', '.join(VERBS)}"
            )
        ids = list(dict.fromkeys(str(x) for x in form.getall("id", [])))
        for raw in ids:
            try:
                parse_invocation_id(raw)
            except InvalidId as exc:
                return self.ui.error_page(request, 400, str(exc))
        deployment = str(form.get("deployment", "keep")) or "keep"
        if form.get("confirmed") == "yes":
            return await self.run(request, verb, ids, deployment, back)
        return await self.confirm(request, verb, ids, deployment, back)

    async def confirm(
        self, request: web.Request, verb: str, ids: list[str], deployment: str, back: str
    ) -> web.Response:
        router = self.ui.admin.router
        views = await asyncio.gather(*(router.for_id(i).get_view(i) for i in ids))
        chosen: list[InvocationView] = []
        skipped: Counter[str] = Counter()
        for view in views:
            if view is None:
                skipped["not found"] += 1
            elif fmt.applicable(verb, view.status.value):
                chosen.append(view)
            else:
                skipped[view.status.value] += 1
        by_status = Counter(v.status.value for v in chosen)
        return self.ui.render(
            request,
            "confirm.html",
            status=200 if ids else 400,
            verb=verb,
            selected=len(ids),
            chosen=chosen,
            by_status=sorted(by_status.items(), key=lambda kv: fmt.STATUS_ORDER.index(kv[0])),
            skipped=sorted(skipped.items()),
            deployment=deployment,
            back=back,
        )

    async def run(
        self, request: web.Request, verb: str, ids: list[str], deployment: str, back: str
    ) -> web.Response:
        gate = asyncio.Semaphore(BULK_CONCURRENCY)

        async def one(invocation_id: str) -> dict[str, Any]:
            async with gate:
                try:
                    reply = await self.ui.admin.run_verb(verb, invocation_id, deployment)
                    code, body = reply.code, reply.body
                except ApiError as exc:
                    code, body = exc.status, {"message": exc.message}
                except (LeaderStopped, PartitionNotRunning) as exc:
                    code, body = 503, {"message": unavailable_message(exc)}
            ok = 200 <= code < 300
            message = body.get("message") or (f"now {body['status']}" if "status" in body else "")
            return {"id": invocation_id, "code": code, "ok": ok, "message": str(message)}

        results = await asyncio.gather(*(one(i) for i in ids))
        failed = sum(1 for r in results if not r["ok"])
        return self.ui.render(
            request,
            "results.html",
            verb=verb,
            results=results,
            done=len(results) - failed,
            failed=failed,
            back=back,
        )


class DeploymentPages:
    def __init__(self, ui: Ui) -> None:
        self.ui = ui

    async def pinned(self, deployment_id: str) -> int:
        views = await self.ui.admin.query_invocations(
            deployment=deployment_id, limit=MAX_LIST_LIMIT
        )
        return len(views)

    async def page(
        self, request: web.Request, status: int = 200, uri: str = "", error: str | None = None
    ) -> web.Response:
        deployments = self.ui.admin.registry.list()
        counts = await asyncio.gather(*(self.pinned(d.id) for d in deployments))
        return self.ui.render(
            request,
            "deployments.html",
            status=status,
            rows=list(zip(deployments, counts, strict=True)),
            max_count=MAX_LIST_LIMIT,
            uri=uri,
            error=error,
            flash=self.ui.flash.read(request.query),
        )

    async def index(self, request: web.Request) -> web.Response:
        return await self.page(request)

    async def register(self, request: web.Request) -> web.Response:
        form = await request.post()
        uri = str(form.get("uri", "")).strip()
        try:
            deployment, created = await self.ui.admin.register_uri(uri)
        except ApiError as exc:
            return await self.page(request, exc.status, uri, exc.message)
        what = "registered" if created else "was already registered as"
        answer = self.ui.flash.query(
            "register", 201 if created else 200, f"{uri} {what} {deployment.id}"
        )
        base = str(request.app.router["index"].url_for())
        raise web.HTTPSeeOther(f"{base}deployments?{answer}")
