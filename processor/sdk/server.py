"""The deployment's HTTP server (aiohttp): `GET /discover` and `POST /invoke/{service}/{handler}`.

An invoke answer is a stream of msgpack maps: each new journal entry is written as soon as the
handler produces it, before the handler takes its next step, then exactly one final object. A
client that closes the connection ends the attempt: the handler task is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgpack
from aiohttp import web

from processor.eventloop import DEFAULT_EVENT_LOOP, EventLoopName, run_asyncio
from processor.sdk.attempt import BadRequest, parse_request, run_attempt
from processor.sdk.errors import AttemptEnd
from processor.sdk.service import Service, discovery_document, index_services

MSGPACK = "application/x-msgpack"
SERVICES_KEY = web.AppKey("sdk_services", dict[str, Service])
# An attempt carries the whole journal: the input alone may be as large as the ingress accepts
# (10 MiB), and run results add to it. aiohttp's default limit (1 MiB) failed every attempt of such
# an invocation with 413.
MAX_REQUEST_BYTES = 1 << 30
# How often an in-flight attempt checks that its client is still connected, for servers that run
# without aiohttp's handler cancellation.
_DISCONNECT_POLL_S = 0.2


class ConnectionClosed(AttemptEnd):
    """The invoker closed the connection: the attempt is over."""


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


async def _discover(request: web.Request) -> web.Response:
    doc = discovery_document(request.app[SERVICES_KEY].values())
    if "application/json" in request.headers.get("Accept", ""):
        return web.json_response(doc)
    return web.Response(body=_pack(doc), content_type=MSGPACK)


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


class _FrameStream(web.StreamResponse):
    """The attempt's answer. Its headers leave with the first frame rather than on their own
    (aiohttp's `Response` does the same), so a short attempt's whole answer is one TCP segment.
    (A knob of aiohttp's; an aiohttp without it just sends the headers separately.)"""

    _send_headers_immediately = False


async def _invoke(request: web.Request) -> web.StreamResponse:
    service_name = request.match_info["service"]
    handler_name = request.match_info["handler"]
    service = request.app[SERVICES_KEY].get(service_name)
    if service is None:
        return web.json_response({"message": f"unknown service {service_name!r}"}, status=404)
    handler = service.handlers.get(handler_name)
    if handler is None:
        message = f"service {service_name!r} has no handler {handler_name!r}"
        return web.json_response({"message": message}, status=404)
    try:
        attempt = parse_request(await request.read())
    except BadRequest as exc:
        return web.json_response({"message": str(exc)}, status=400)

    response = _FrameStream(status=200, headers={"Content-Type": MSGPACK})
    response.enable_chunked_encoding()
    await response.prepare(request)

    async def emit(index: int, entry: dict[str, Any]) -> None:
        try:
            await response.write(_pack({"t": "entry", "index": index, "entry": entry}))
        except (ConnectionError, RuntimeError) as exc:
            raise ConnectionClosed(str(exc)) from None

    task = asyncio.create_task(run_attempt(handler, attempt, emit))
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=_DISCONNECT_POLL_S)
            if not task.done() and _client_gone(request):
                return response
        try:
            final = task.result()
        except ConnectionClosed:
            return response
        with contextlib.suppress(ConnectionError, RuntimeError):
            # The final frame and the stream's end in one write: one TCP segment (with the
            # headers too when nothing was written before) instead of two or three, so the
            # processor reads the whole answer of a short attempt in one go.
            await response.write_eof(_pack(final))
        return response
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await task


def make_app(services: Iterable[Service]) -> web.Application:
    """The deployment as an aiohttp application (for tests or embedding in another server)."""
    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    app[SERVICES_KEY] = index_services(services)
    app.router.add_get("/discover", _discover)
    app.router.add_post("/invoke/{service}/{handler}", _invoke)
    return app


@dataclass
class RunningServer:
    runner: web.AppRunner
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def close(self) -> None:
        await self.runner.cleanup()


async def run_server(
    services: Iterable[Service], host: str = "127.0.0.1", port: int = 0
) -> RunningServer:
    """Start serving in the running event loop; `port=0` picks a free port (see `.port`)."""
    runner = web.AppRunner(make_app(services), handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = int(runner.addresses[0][1]) if runner.addresses else port
    return RunningServer(runner, host, bound)


async def _serve_forever(services: list[Service], host: str, port: int) -> None:
    server = await run_server(services, host, port)
    print(f"listening on {server.url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.close()


def serve(
    services: Iterable[Service],
    host: str = "127.0.0.1",
    port: int = 9080,
    *,
    event_loop: EventLoopName = DEFAULT_EVENT_LOOP,
) -> None:
    """Serve until SIGINT/SIGTERM; prints `listening on http://host:port` once ready."""
    run_asyncio(_serve_forever(list(services), host, port), event_loop=event_loop)


__all__ = ["RunningServer", "make_app", "run_server", "serve"]
