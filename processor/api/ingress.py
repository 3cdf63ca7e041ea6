"""The ingress (SPEC §6.1): start invocations over HTTP and read or wait for their results.

- `POST /{service}/{handler}` waits for the result; `POST /{service}/{handler}/send[?delay=]` is
  one-way (202). The `idempotency-key` header derives the id from (service, handler, key).
- `GET /invocations/{id}/output` answers the result or 470; `GET /invocations/{id}/attach` waits.

Everything that can be checked is checked before a command is appended: an unknown target, a bad
delay or a malformed id is answered without touching any log. The effective retry policy is
resolved here (config + discovery) and carried in the invoke command.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from aiohttp import web

from processor.api.errors import ApiError, error_middleware
from processor.api.partitions import PartitionHandle, PartitionRouter
from processor.commands import Invoke
from processor.ids import (
    InvalidId,
    idempotent_invocation_id,
    new_invocation_id,
    parse_invocation_id,
)
from processor.registry import Registry
from processor.retry import RetryPolicy, parse_duration_ms
from processor.status import Failure, Result

NOT_READY = 470  # Restate's "not ready yet" for GET …/output
MAX_BODY_BYTES = 10 * 1024 * 1024
FORWARDED_HEADERS_SKIP = {"host", "content-length", "connection", "transfer-encoding"}



def result_response(invocation_id: str, result: Result) -> web.Response:
    headers = {"x-invocation-id": invocation_id}
    if result.failure is not None:
        status = result.failure.code if 400 <= result.failure.code <= 599 else 500
        body = {"code": result.failure.code, "message": result.failure.message}
        return web.json_response(body, status=status, headers=headers)
    return web.Response(
        body=result.value or b"",
        status=200,
        headers={**headers, "content-type": "application/json"},
    )


def parse_id(raw: str) -> str:
    try:
        parse_invocation_id(raw)
    except InvalidId as exc:
        raise ApiError(400, str(exc)) from None
    return raw


def _result_from_reply(body: dict[str, Any]) -> Result | None:
    raw = body.get("result")
    if raw is None:
        return None
    failure = raw.get("failure")
    if failure is not None:
        return Result(failure=Failure(int(failure["code"]), str(failure["message"])))
    value = raw.get("value")
    return Result(value=value if isinstance(value, bytes) else None)


class Ingress:
    def __init__(
        self, router: PartitionRouter, registry: Registry, default_policy: RetryPolicy
    ) -> None:
        self.router = router
        self.registry = registry
        self.default_policy = default_policy

    def app(self) -> web.Application:
        app = web.Application(middlewares=[error_middleware], client_max_size=MAX_BODY_BYTES)
        app.router.add_get("/invocations/{id}/output", self.output)
        app.router.add_get("/invocations/{id}/attach", self.attach)
        app.router.add_post("/{service}/{handler}/send", self.send)
        app.router.add_post("/{service}/{handler}", self.call)
        return app

    def _prepare(self, request: web.Request, body: bytes, execute_at: int | None) -> Invoke:
        service = request.match_info["service"]
        handler = request.match_info["handler"]
        if not self.registry.handler_exists(service, handler):
            raise ApiError(
                404,
                f"no registered deployment serves {service}/{handler}; register one with "
                "`processor deployments register <uri>` (POST /deployments on the admin API)",
            )
        key = request.headers.get("idempotency-key")
        if key is not None and not key.strip():
            raise ApiError(400, "the idempotency-key header must not be empty")
        invocation_id = (
            idempotent_invocation_id(service, handler, key) if key else new_invocation_id()
        )
        headers = {
            k.lower(): v
            for k, v in request.headers.items()
            if k.lower() not in FORWARDED_HEADERS_SKIP
        }
        return Invoke(
            invocation_id=invocation_id,
            service=service,
            handler=handler,
            input=body,
            retry_policy=self.registry.resolve_retry_policy(service, handler, self.default_policy),
            headers=headers,
            idempotency_key=key,
            execute_at=execute_at,
        )

    async def call(self, request: web.Request) -> web.Response:
        body = await request.read()
        invoke = self._prepare(request, body, None)
        partition = self.router.for_id(invoke.invocation_id)
        waiter = partition.wait_for_completion(invoke.invocation_id)
        try:
            reply = await partition.propose(lambda rid: _with_request(invoke, rid))
            if reply.code >= 400:
                raise ApiError(reply.code, str(reply.body.get("message", "rejected")))
            done = _result_from_reply(reply.body)
            result = done if done is not None else await waiter
        finally:
            partition.forget_waiter(invoke.invocation_id, waiter)
        return result_response(invoke.invocation_id, result)

    async def send(self, request: web.Request) -> web.Response:
        body = await request.read()
        execute_at = None
        if "delay" in request.query:
            try:
                delay = parse_duration_ms(request.query["delay"])
            except ValueError as exc:
                raise ApiError(400, f"bad ?delay=: {exc}") from None
            execute_at = int(time.time() * 1000) + delay if delay > 0 else None
        invoke = self._prepare(request, body, execute_at)
        partition = self.router.for_id(invoke.invocation_id)
        reply = await partition.propose(lambda rid: _with_request(invoke, rid))
        if reply.code >= 400:
            raise ApiError(reply.code, str(reply.body.get("message", "rejected")))
        status = reply.body.get("status", "Accepted")
        return web.json_response(
            {"invocationId": invoke.invocation_id, "status": status},
            status=202,
            headers={"x-invocation-id": invoke.invocation_id},
        )

    async def output(self, request: web.Request) -> web.Response:
        invocation_id = parse_id(request.match_info["id"])
        view = await self.router.for_id(invocation_id).get_view(invocation_id)
        if view is None:
            raise ApiError(404, f"invocation {invocation_id} not found")
        if view.result is None:
            raise ApiError(
                NOT_READY,
                f"invocation {invocation_id} is {view.status.value}, not completed yet; "
                f"use GET /invocations/{invocation_id}/attach to wait for it",
            )
        return result_response(invocation_id, view.result)

    async def attach(self, request: web.Request) -> web.Response:
        invocation_id = parse_id(request.match_info["id"])
        partition: PartitionHandle = self.router.for_id(invocation_id)
        waiter = partition.wait_for_completion(invocation_id)
        try:
            view = await partition.get_view(invocation_id)
            if view is None:
                raise ApiError(404, f"invocation {invocation_id} not found")
            result = view.result if view.result is not None else await waiter
        finally:
            partition.forget_waiter(invocation_id, waiter)
        return result_response(invocation_id, result)


def _with_request(invoke: Invoke, request_id: str) -> Invoke:
    return replace(invoke, request_id=request_id)
