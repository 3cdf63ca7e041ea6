"""A small fake of the admin API (SPEC §6.2) for the CLI tests: an aiohttp app on 127.0.0.1:0 in a
background thread with its own event loop. It records every request and answers per SPEC §3.1, and
`forced` makes a chosen (id, verb) answer a chosen error, for failure paths."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from processor.ids import InvalidId, new_deployment_id, new_invocation_id, parse_invocation_id

# One reference moment, so entries given the same offset tie exactly (the timeline's order of ties
# is part of what the tests check). Every FakeAdmin (one per test) moves it to its own creation:
# fixed at import, a suite running for a minute before these tests turned a retry due "in 30s"
# into one due in the past.
_reference = [dt.datetime.now(dt.UTC)]


def iso(seconds_from_now: float) -> str:
    moment = _reference[0] + dt.timedelta(seconds=seconds_from_now)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


@dataclass
class FakeAdmin:
    invocations: dict[str, dict[str, Any]] = field(default_factory=dict)
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)
    discoverable: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # uri → services
    forced: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        _reference[0] = dt.datetime.now(dt.UTC)

    def add(
        self, target: str, status: str, *, age_s: float = 60.0, **fields: Any
    ) -> dict[str, Any]:
        invocation: dict[str, Any] = {
            "id": new_invocation_id(),
            "target": target,
            "service": target.split("/")[0],
            "handler": target.split("/")[1],
            "status": status,
            "attempt": 1,
            "retry_count": 0,
            "next_retry_at": None,
            "created_at": iso(-age_s),
            "modified_at": iso(-age_s / 2),
            "pinned_deployment": None,
            "last_attempt_deployment": None,
            "idempotency_key": None,
            "last_failure": None,
            "result": None,
            "journal": [],
            "events": [],
        }
        invocation.update(fields)
        self.invocations[invocation["id"]] = invocation
        return invocation

    def patches(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "PATCH"]

    # -- handlers ----------------------------------------------------------------------------------

    @web.middleware
    async def record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        query = {k: request.query.getall(k) for k in request.query}
        self.requests.append(Recorded(request.method, request.path, query, body))
        response: web.StreamResponse = await handler(request)
        return response

    async def list_invocations(self, request: web.Request) -> web.Response:
        q = request.query
        rows = sorted(self.invocations.values(), key=lambda i: i["created_at"], reverse=True)
        for key, column in (("service", "service"), ("handler", "handler"), ("status", "status")):
            if q.get(key):
                rows = [r for r in rows if r[column] == q[key]]
        if q.get("deployment"):
            rows = [r for r in rows if r["pinned_deployment"] == q["deployment"]]
        rows = rows[: int(q.get("limit", "100"))]
        summary = [{k: v for k, v in r.items() if k not in ("journal", "events")} for r in rows]
        return web.json_response({"invocations": summary})

    def _lookup(self, request: web.Request) -> dict[str, Any]:
        invocation_id = request.match_info["id"]
        try:
            parse_invocation_id(invocation_id)
        except InvalidId as error:
            raise web.HTTPBadRequest(text=json.dumps({"message": str(error)})) from None
        if invocation_id not in self.invocations:
            message = f"invocation {invocation_id} not found"
            raise web.HTTPNotFound(text=json.dumps({"message": message}))
        return self.invocations[invocation_id]

    async def describe_invocation(self, request: web.Request) -> web.Response:
        return web.json_response(self._lookup(request))

    async def verb(self, request: web.Request) -> web.Response:
        invocation = self._lookup(request)
        verb, status, iid = request.match_info["verb"], invocation["status"], invocation["id"]
        if (iid, verb) in self.forced:
            code, message = self.forced[iid, verb]
            return web.json_response({"message": message}, status=code)
        code, message, new = _apply(verb, status, request.query.get("deployment", "keep"), iid)
        if new == "purged":
            del self.invocations[iid]
        elif new is not None:
            invocation["status"] = new
        if verb == "kill" and code == 200:  # like the real server: the new status, no message
            return web.json_response({"status": invocation["status"]}, status=code)
        if verb == "resume" and code == 200 and status == "running":  # as the real server answers
            body = {"status": "running", "attempt": 1, "already_running": True}
            return web.json_response(body, status=code)
        return web.json_response({"message": message}, status=code)

    async def register(self, request: web.Request) -> web.Response:
        uri = (await request.json())["uri"]
        for deployment in self.deployments.values():
            if deployment["uri"] == uri:
                return web.json_response(deployment, status=200)
        if uri not in self.discoverable:
            message = f"deployment at {uri} is unreachable: connection refused"
            return web.json_response({"message": message}, status=400)
        deployment = {
            "id": new_deployment_id(),
            "uri": uri,
            "services": self.discoverable[uri],
            "registered_at": iso(0),
        }
        self.deployments[deployment["id"]] = deployment
        return web.json_response(deployment, status=201)

    async def list_deployments(self, _request: web.Request) -> web.Response:
        return web.json_response({"deployments": list(self.deployments.values())})

    async def describe_deployment(self, request: web.Request) -> web.Response:
        deployment = self.deployments.get(request.match_info["id"])
        if deployment is None:
            message = f"deployment {request.match_info['id']} not found"
            return web.json_response({"message": message}, status=404)
        return web.json_response(deployment)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.record])
        app.router.add_get("/invocations", self.list_invocations)
        app.router.add_get("/invocations/{id}", self.describe_invocation)
        app.router.add_patch("/invocations/{id}/{verb}", self.verb)
        app.router.add_post("/deployments", self.register)
        app.router.add_get("/deployments", self.list_deployments)
        app.router.add_get("/deployments/{id}", self.describe_deployment)
        return app


def _apply(verb: str, status: str, deployment: str, iid: str) -> tuple[int, str, str | None]:
    """(code, message, new status or 'purged' or None) per SPEC §3.1."""
    if verb == "pause":
        if status in ("running", "backing-off"):
            return 202, f"invocation {iid} paused", "paused"
        if status == "paused":
            return 200, f"invocation {iid} is already paused", None
        return 409, f"invocation {iid} is {status}; only running or backing-off can be paused", None
    if verb == "resume":
        if status == "scheduled":
            return 425, f"invocation {iid} has not started yet", None
        if status == "completed":
            return 409, f"invocation {iid} is completed", None
        if status == "running":
            if deployment != "keep":
                return 409, f"invocation {iid} is running on its pinned deployment", None
            return 200, f"invocation {iid} is already running", None
        return 200, f"invocation {iid} resumed", "running"
    if verb in ("cancel", "kill"):
        if status == "completed":
            return 409, f"invocation {iid} is already completed", None
        if verb == "cancel" and status != "scheduled":
            return 202, f"cancel signal appended to invocation {iid}", None
        return 200, f"invocation {iid} {verb}ed", "completed"
    if status != "completed":
        return 409, f"invocation {iid} is {status}; only completed invocations can be purged", None
    return 200, f"invocation {iid} purged", "purged"


@contextmanager
def running_fake_admin() -> Iterator[FakeAdmin]:
    fake = FakeAdmin()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fake-admin", daemon=True)
    thread.start()
    runner = web.AppRunner(fake.app(), handle_signals=False)

    async def start() -> int:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return int(runner.addresses[0][1])

    try:
        port = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
        fake.url = f"http://127.0.0.1:{port}"
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
