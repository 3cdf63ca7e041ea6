"""Errors of the HTTP APIs as JSON `{"message": …}` answers, and the middleware that enforces it.

Every error names the object and the reason and, where it helps, what to do. An exception that
escapes a handler is logged and answered 500 with a message, never a bare traceback page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from processor.leader.replies import LeaderStopped
from processor.partition import PartitionFailed, PartitionNotRunning

log = structlog.get_logger("processor.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# Reason phrases of the non-standard codes this API answers (HTTP's own come from aiohttp).
_REASONS = {470: "Not Ready", 571: "Protocol Violation"}


def json_error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response(
        {"message": message, **extra}, status=status, reason=_REASONS.get(status)
    )


class ApiError(Exception):
    """Raised inside a route to answer `status` with `{"message": message}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def query_value(request: web.Request, name: str, default: str) -> str:
    """The one value of query parameter `name` (`default` when absent).

    Given twice (`?limit=5&limit=500`) it is a 400: taking either value silently would answer a
    question the caller may not have asked."""
    values = request.query.getall(name, [])
    if len(values) > 1:
        shown = ", ".join(repr(v) for v in values)
        raise ApiError(400, f"?{name}= is given {len(values)} times ({shown}); give it once")
    return values[0] if values else default


def unavailable_message(exc: Exception) -> str:
    """Why a partition cannot answer (503), and whether waiting helps."""
    if isinstance(exc, PartitionFailed):
        return (
            f"{exc}; it stays stopped until the cause is fixed and the daemon restarted "
            "(GET /health lists stopped partitions)"
        )
    return f"{exc}; the daemon is starting or shutting down, retry shortly"


def error_response(request: web.Request, exc: Exception) -> web.Response:
    """The JSON answer for an exception raised by a route; re-raises what is not an error."""
    if isinstance(exc, ApiError):
        return json_error(exc.status, exc.message)
    if isinstance(exc, LeaderStopped | PartitionNotRunning):
        return json_error(503, unavailable_message(exc))
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        reason = exc.text or exc.reason
        if exc.status == 404:
            reason = f"no route for {request.method} {request.path}"
        elif exc.status == 405:
            reason = f"method {request.method} is not allowed on {request.path}"
        response = json_error(exc.status, reason)
        if "Allow" in exc.headers:  # a 405 says which methods the path takes
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    if isinstance(exc, ConnectionResetError):
        # The client went away in the middle of its request: nothing to answer, nothing wrong here.
        log.debug("client disconnected", method=request.method, path=request.path)
        return json_error(400, "the client disconnected before its request body was complete")
    if isinstance(exc, RequestPayloadError | HttpProcessingError):
        # A body the server could not read: e.g. `Content-Encoding: gzip` on bytes that are not.
        return json_error(
            400,
            f"cannot read the request body of {request.method} {request.path}: {exc}; send it "
            "unencoded or with a Content-Encoding that matches it",
        )
    # Called from the middleware's `except` block, so the traceback is the current exception's.
    log.exception("unhandled error in API route", method=request.method, path=request.path)
    return json_error(500, f"internal error while handling {request.method} {request.path}")


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def cross_site_refusal(request: web.Request) -> str | None:
    """Why a state-changing request must be refused because a browser sent it from another site,
    or None. Any web page the operator opens can make their browser POST to 127.0.0.1:9070 (a
    form or `fetch` with a text/plain body needs no CORS preflight), e.g. to register a deployment
    that then receives every new invocation. Browsers always send `Origin` on such requests (and
    `Sec-Fetch-Site`); the CLI and scripts send neither, so they are unaffected. `Origin: null`
    (sandboxed frames, some redirects) counts as foreign unless the browser itself says the
    request came from this origin (`Sec-Fetch-Site: same-origin`)."""
    if request.method in _SAFE_METHODS:
        return None
    origin = request.headers.get("Origin")
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if origin is None or origin == f"{request.scheme}://{request.host}":
        same = fetch_site != "cross-site"
    else:
        same = origin == "null" and fetch_site == "same-origin"
    if same:
        return None
    return (
        f"refused: a {request.method} sent by a web page of another site (origin {origin}) may "
        "not change invocations or deployments; use the CLI, or the web UI on its own address"
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    refusal = cross_site_refusal(request)
    if refusal is not None and not request.path.startswith("/ui/"):  # the UI answers a page
        return json_error(403, refusal)
    try:
        return await handler(request)
    except Exception as exc:
        return error_response(request, exc)
