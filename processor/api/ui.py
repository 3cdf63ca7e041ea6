"""The web UI (issue 7): server-rendered pages under `/ui/` on the admin port.

Pages: the invocation list (counts, filters, paging, bulk actions with a confirmation step), one
invocation (header, last failure, timeline, verb buttons), deployments (list and registration).
Every read and every state change goes through `AdminApi` methods (`run_verb`,
`query_invocations`, `invocation_with_history`, `register_uri`), i.e. the same code path and
status checks as the JSON routes. Templates are Jinja2 with autoescape on; the only script is
`static/ui.js` (auto-refresh while something is in flight, selection, confirmations), and the
Content-Security-Policy forbids inline scripts, so injected markup could not run even if it got
through. State-changing POSTs from another origin are refused (no cross-site form posts).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Middleware
from aiohttp.web_protocol import RequestPayloadError

from processor.api import ui_format as fmt
from processor.api.admin import MAX_LIST_LIMIT, VERBS, AdminApi
from processor.api.errors import (
    ApiError,
    Handler,
    cross_site_refusal,
    log,
    unavailable_message,
)
from processor.api.ui_flash import FlashSigner, without_flash
from processor.api.ui_pages import BulkPages, DeploymentPages
from processor.ids import InvalidId, parse_invocation_id
from processor.leader.replies import LeaderStopped
from processor.partition import PartitionNotRunning
from processor.status import InvocationView
from processor.status_colors import FAILED_COMPLETION, STATUS_COLORS

HERE = Path(__file__).parent
PAGE_SIZE = 50
REFRESH_MS = 2000
_VERB_PATTERN = "|".join(VERBS)
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # Not "no-referrer": under it, browsers send `Origin: null` with the UI's own form posts, and
    # the cross-site check could not tell them from a sandboxed frame's.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def make_env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(fmt=fmt, verbs=VERBS, verb_statuses=fmt.VERB_STATUSES, refresh_ms=REFRESH_MS)
    return env


class Ui:
    def __init__(self, admin: AdminApi, env: jinja2.Environment | None = None) -> None:
        self.admin = admin
        self.env = env or make_env()
        self.flash = FlashSigner()

    def render(
        self, request: web.Request, template: str, status: int = 200, **ctx: Any
    ) -> web.Response:
        base = str(request.app.router["index"].url_for())
        ctx.setdefault("flash", None)
        html = self.env.get_template(template).render(base=base, now=fmt.now_ms(), **ctx)
        return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")

    def error_page(self, request: web.Request, status: int, message: str) -> web.Response:
        return self.render(request, "error.html", status=status, code=status, message=message)

    # -- invocations -----------------------------------------------------------------------------

    async def counts(self) -> dict[str, int]:
        chunks = await asyncio.gather(*(p.count_by_status() for p in self.admin.router.partitions))
        total: dict[str, int] = dict.fromkeys(fmt.STATUS_ORDER, 0)
        for chunk in chunks:
            for status, n in chunk.items():
                total[status] = total.get(status, 0) + n
        return total

    async def find(
        self, filters: dict[str, Any], text: str, page: int
    ) -> tuple[list[InvocationView], bool]:
        """One page of invocations (newest first) and whether an older page exists."""
        if text:
            try:
                parse_invocation_id(text)
            except InvalidId:
                views = await self.admin.query_invocations(**filters, limit=MAX_LIST_LIMIT)
                needle = text.lower()
                views = [v for v in views if needle in v.id.lower()]
            else:
                view = await self.admin.router.for_id(text).get_view(text)
                views = [view] if view is not None and _matches(view, filters) else []
        else:
            limit = min(page * PAGE_SIZE + 1, MAX_LIST_LIMIT)
            views = await self.admin.query_invocations(**filters, limit=limit)
        start = (page - 1) * PAGE_SIZE
        return views[start : start + PAGE_SIZE], len(views) > start + PAGE_SIZE

    async def index(self, request: web.Request) -> web.Response:
        q = request.query
        statuses = [s for raw in q.getall("status", []) for s in raw.split(",") if s.strip()]
        filters: dict[str, Any] = {
            "service": q.get("service", "").strip() or None,
            "handler": q.get("handler", "").strip() or None,
            "statuses": statuses or None,
            "deployment": q.get("deployment", "").strip() or None,
        }
        text = q.get("q", "").strip()
        try:
            page = max(1, int(q.get("page", "1")))
        except ValueError:
            page = 1
        error = None
        status = 200
        try:
            rows, has_next = await self.find(filters, text, page)
        except ApiError as exc:
            rows, has_next, error, status = [], False, exc.message, exc.status
        counts = await self.counts()
        params = {k: v for k, v in without_flash(q) if k != "page" and v}
        return self.render(
            request,
            "invocations.html",
            status=status,
            rows=rows,
            counts=counts,
            filters=filters,
            statuses=statuses,
            text=text,
            page=page,
            has_next=has_next,
            error=error,
            flash=self.flash.read(q),
            in_flight=any(counts.get(s, 0) for s in fmt.IN_FLIGHT),
            deployments=self.admin.registry.list(),
            query=urlencode(without_flash(q)),
            page_link=lambda n: "?" + urlencode({**params, "page": n}),
        )

    async def invocation(self, request: web.Request) -> web.Response:
        try:
            view, journal, events = await self.admin.invocation_with_history(
                request.match_info["id"]
            )
        except ApiError as exc:
            return self.error_page(request, exc.status, exc.message)
        registry = self.admin.registry
        latest = registry.latest_for(view.service)
        serving = [d for d in registry.list() if view.service in d.services]
        return self.render(
            request,
            "invocation.html",
            view=view,
            status_key=fmt.status_key(view),
            timeline=fmt.timeline(journal, events),
            latest=latest,
            serving=serving,
            flash=self.flash.read(request.query),
            in_flight=view.status.value in fmt.IN_FLIGHT,
        )

    async def act(self, request: web.Request) -> web.StreamResponse:
        """One verb from the invocation page; then back to it showing the answer (PRG)."""
        verb, raw_id = request.match_info["verb"], request.match_info["id"]
        try:
            parse_invocation_id(raw_id)
        except InvalidId as exc:
            return self.error_page(request, 400, str(exc))
        form = await request.post()
        try:
            reply = await self.admin.run_verb(verb, raw_id, str(form.get("deployment", "keep")))
            code, body = reply.code, reply.body
        except ApiError as exc:
            code, body = exc.status, {"message": exc.message}
        except (LeaderStopped, PartitionNotRunning) as exc:
            code, body = 503, {"message": unavailable_message(exc)}
        message = str(body.get("message") or "")
        if not message and body.get("already_running"):
            message = "was already running, nothing to resume"
        if not message and 200 <= code < 300:
            new_status = body.get("status")
            message = f"{fmt.VERB_PAST[verb]}" + (f"; now {new_status}" if new_status else "")
        base = str(request.app.router["index"].url_for())
        if verb == "purge" and 200 <= code < 300:
            answer = self.flash.query(verb, code, f"invocation {raw_id} purged")
            raise web.HTTPSeeOther(f"{base}?{answer}")
        answer = self.flash.query(verb, code, message)
        raise web.HTTPSeeOther(f"{base}invocations/{raw_id}?{answer}")

    async def status_css(self, request: web.Request) -> web.Response:
        lines = [f".st-{name} {{ --c: {color.css}; }}" for name, color in STATUS_COLORS.items()]
        lines.append(f".st-completed-failed {{ --c: {FAILED_COMPLETION.css}; }}")
        return web.Response(text="\n".join(lines) + "\n", content_type="text/css")

    async def not_found(self, request: web.Request) -> web.Response:
        """The catch-all route: a 405 when the path is a page that takes other methods (the
        catch-all would otherwise hide that), else a 404."""
        allowed: set[str] = set()
        for resource in request.app.router.resources():
            if resource is request.match_info.route.resource:
                continue
            match, methods = await resource.resolve(request)
            if match is None:
                allowed |= methods
        allowed.discard("*")
        if allowed:
            response = self.error_page(
                request, 405, f"{request.path} does not take {request.method}"
            )
            response.headers["Allow"] = ", ".join(sorted(allowed))
            return response
        return self.error_page(request, 404, f"there is no page at {request.path}")


def _matches(view: InvocationView, filters: dict[str, Any]) -> bool:
    return (
        (filters["service"] in (None, view.service))
        and (filters["handler"] in (None, view.handler))
        and (not filters["statuses"] or view.status.value in filters["statuses"])
        and (filters["deployment"] in (None, view.pinned_deployment))
    )


def make_guard(ui: Ui) -> Middleware:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Security headers on every page; refuse state-changing requests from other sites;
        errors as HTML pages (the admin app's middleware would answer JSON)."""
        refusal = cross_site_refusal(request)
        if refusal is not None:
            return web.Response(status=403, text=refusal, headers=SECURITY_HEADERS)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status >= 400:
                response = ui.error_page(request, exc.status, exc.text or exc.reason)
            else:
                exc.headers.update(SECURITY_HEADERS)
                raise
        except (LeaderStopped, PartitionNotRunning) as exc:
            response = ui.error_page(request, 503, unavailable_message(exc))
        except (UnicodeDecodeError, RequestPayloadError, HttpProcessingError) as exc:
            # A form that is not UTF-8 or a body that cannot be read: the sender's problem.
            response = ui.error_page(request, 400, f"cannot read the submitted form: {exc}")
        except ConnectionResetError:
            return web.Response(status=400)  # the browser left; nobody reads this
        except Exception:
            log.exception("unhandled error in UI route", method=request.method, path=request.path)
            response = ui.error_page(
                request, 500, f"internal error while handling {request.method} {request.path}"
            )
        response.headers.update(SECURITY_HEADERS)
        return response

    return guard


def ui_app(admin: AdminApi, ui: Ui | None = None) -> web.Application:
    """The UI as an aiohttp sub-application; mount it with `admin_app.add_subapp("/ui/", …)`."""
    ui = ui or Ui(admin)
    bulk = BulkPages(ui)
    deployments = DeploymentPages(ui)
    app = web.Application(middlewares=[make_guard(ui)])
    r = app.router
    r.add_get("/", ui.index, name="index")

    async def to_index(request: web.Request) -> web.Response:
        raise web.HTTPFound("/ui/" + (f"?{request.query_string}" if request.query_string else ""))

    r.add_get("/invocations", to_index)  # the list lives at the UI's root
    r.add_get("/invocations/{id}", ui.invocation, name="invocation")
    r.add_post(f"/invocations/{{id}}/{{verb:{_VERB_PATTERN}}}", ui.act)
    r.add_post("/actions", bulk.handle)
    r.add_get("/deployments", deployments.index)
    r.add_post("/deployments", deployments.register)
    r.add_get("/status.css", ui.status_css)
    r.add_static("/static/", HERE / "static", name="static")
    r.add_route("*", "/{tail:.*}", ui.not_found)
    return app


UI_KEY = web.AppKey("ui", Ui)


def mount_ui(admin_app: web.Application, admin: AdminApi) -> None:
    """Serve the UI under `/ui/` of the admin app (as `admin_app[UI_KEY]`), and redirect `/`
    there."""
    ui = admin_app[UI_KEY] = Ui(admin)

    async def to_ui(request: web.Request) -> web.Response:
        raise web.HTTPFound("/ui/")

    # Before the sub-application: its prefix also matches "/ui", the address typed without
    # its slash, which would then be the UI's 404 page.
    admin_app.router.add_get("/ui", to_ui)
    admin_app.add_subapp("/ui/", ui_app(admin, ui))
    admin_app.router.add_get("/", to_ui)
