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
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from processor.api.errors import ApiError, error_response, query_value
from processor.api.partitions import PartitionHandle, PartitionRouter
from processor.commands import Invoke
from processor.ids import (
    InvalidId,
    RandomIds,
    idempotent_invocation_id,
    parse_invocation_id,
)
from processor.registry import Registry
from processor.retry import RetryPolicy, parse_duration_ms
from processor.state_machine.fast import maker
from processor.state_machine.lifecycle.common import not_found
from processor.status import Failure, Result, Status

NOT_READY = 470  # Restate's "not ready yet" for GET …/output
MAX_BODY_BYTES = 10 * 1024 * 1024
# Not stored in the input entry: transport headers, and credentials (the journal is shown to anyone
# with access to the admin API and kept until the invocation is purged).
FORWARDED_HEADERS_SKIP = {
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "authorization",
    "proxy-authorization",
    "cookie",
}

# Called once per answered request with its route kind (call, send, output, attach, other) and
# status code: the daemon counts them for /metrics.
RequestCounter = Callable[[str, int], None]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


_new_id = RandomIds().next  # a fresh random invocation id and its partition key
_invoke = maker(Invoke)  # positional, every field in declaration order: see `Ingress._prepare`


def route_kind(request: web.Request) -> str:
    path = request.path
    if path.startswith("/invocations/"):
        return "attach" if path.endswith("/attach") else "output"
    if request.method == "POST":
        return "send" if path.endswith("/send") else "call"
    return "other"


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


def _utf8_header(name: str, value: str) -> str:
    """`value` if it is valid UTF-8 text. aiohttp keeps undecodable header bytes as lone
    surrogates, which cannot be encoded into a log record (or hashed into an id)."""
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ApiError(400, f"the {name} header is not valid UTF-8 text") from None
    return value


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
        self,
        router: PartitionRouter,
        registry: Registry,
        default_policy: RetryPolicy,
        count: RequestCounter | None = None,
    ) -> None:
        self.router = router
        self.registry = registry
        self.default_policy = default_policy
        self.count = count

    def app(self) -> web.Application:
        # One middleware for both error answers and counting (so error codes are counted too):
        # each middleware is another coroutine frame on every request of the hot path.
        count = self.count

        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            try:
                response = await handler(request)
            except Exception as exc:
                response = error_response(request, exc)
            if count is not None:
                count(route_kind(request), response.status)
            return response

        app = web.Application(middlewares=[middleware], client_max_size=MAX_BODY_BYTES)
        # The hot route first: aiohttp tries the routes in order, one regex match each. The
        # two-segment route cannot match the three-segment paths below it.
        app.router.add_post("/{service}/{handler}", self.call)
        app.router.add_post("/{service}/{handler}/send", self.send)
        app.router.add_get("/invocations/{id}/output", self.output)
        app.router.add_get("/invocations/{id}/attach", self.attach)
        return app

    def _prepare(
        self, request: web.Request, body: bytes, execute_at: int | None
    ) -> tuple[dict[str, Any], PartitionHandle]:
        """The Invoke command's fields (all but the request id) and the partition owning it."""
        service = request.match_info["service"]
        handler = request.match_info["handler"]
        if not self.registry.handler_exists(service, handler):
            raise ApiError(404, self.registry.unknown_target_message(service, handler))
        key = request.headers.get("idempotency-key")
        if key is not None:
            key = _utf8_header("idempotency-key", key)
            if not key.strip():
                raise ApiError(400, "the idempotency-key header must not be empty")
        if key:
            invocation_id = idempotent_invocation_id(service, handler, key)
            partition = self.router.for_id(invocation_id)
        else:
            invocation_id, partition_key = _new_id()
            partition = self.router.for_key(partition_key)
        headers = {}
        for k, v in request.headers.items():
            lower = k.lower()
            if lower not in FORWARDED_HEADERS_SKIP:
                headers[lower] = _utf8_header(lower, v)
        fields = {  # in Invoke's field order: `call` builds the command positionally
            "invocation_id": invocation_id,
            "service": service,
            "handler": handler,
            "input": body,
            "retry_policy": self.registry.resolve_retry_policy(
                service, handler, self.default_policy
            ),
            "headers": headers,
            "idempotency_key": key,
            "execute_at": execute_at,
        }
        return fields, partition

    async def call(self, request: web.Request) -> web.Response:
        body = await request.read()
        fields, partition = self._prepare(request, body, None)
        invocation_id: str = fields["invocation_id"]
        waiter = partition.wait_for_completion(invocation_id)
        try:
            reply = await partition.propose(lambda rid: _invoke(*fields.values(), rid))
            if reply.code >= 400:
                raise ApiError(reply.code, str(reply.body.get("message", "rejected")))
            done = _result_from_reply(reply.body)
            result = done if done is not None else await waiter
        finally:
            partition.forget_waiter(invocation_id, waiter)
        return result_response(invocation_id, result)

    async def send(self, request: web.Request) -> web.Response:
        body = await request.read()
        execute_at = None
        raw_delay = query_value(request, "delay", "")
        if "delay" in request.query:
            try:
                delay = parse_duration_ms(raw_delay)
            except ValueError as exc:
                raise ApiError(400, f"bad ?delay=: {exc}") from None
            execute_at = int(time.time() * 1000) + delay if delay > 0 else None
        fields, partition = self._prepare(request, body, execute_at)
        invocation_id: str = fields["invocation_id"]
        reply = await partition.propose(lambda rid: Invoke(**fields, request_id=rid))
        if reply.code >= 400:
            raise ApiError(reply.code, str(reply.body.get("message", "rejected")))
        status = reply.body.get("status", "Accepted")
        return web.json_response(
            {"invocationId": invocation_id, "status": status},
            status=202,
            headers={"x-invocation-id": invocation_id},
        )

    async def output(self, request: web.Request) -> web.Response:
        invocation_id = parse_id(request.match_info["id"])
        view = await self.router.for_id(invocation_id).get_view(invocation_id)
        if view is None:
            raise ApiError(404, not_found(invocation_id))
        if view.result is None:
            if view.status is Status.PAUSED:  # waiting would wait for an operator, say so
                advice = (
                    f"it waits for an operator: resume it (`processor invocations resume "
                    f"{invocation_id}`), then GET /invocations/{invocation_id}/attach to wait"
                )
            else:
                advice = f"use GET /invocations/{invocation_id}/attach to wait for it"
            raise ApiError(
                NOT_READY,
                f"invocation {invocation_id} is {view.status.value}, not completed yet; {advice}",
            )
        return result_response(invocation_id, view.result)

    async def attach(self, request: web.Request) -> web.Response:
        invocation_id = parse_id(request.match_info["id"])
        partition: PartitionHandle = self.router.for_id(invocation_id)
        waiter = partition.wait_for_completion(invocation_id)
        try:
            view = await partition.get_view(invocation_id)
            if view is None:
                raise ApiError(404, not_found(invocation_id))
            result = view.result if view.result is not None else await waiter
        finally:
            partition.forget_waiter(invocation_id, waiter)
        return result_response(invocation_id, result)
