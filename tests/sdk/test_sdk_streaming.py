"""The invoke answer is a live stream: entries arrive before the handler's next step, and a client
that goes away ends the attempt by cancelling the handler."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import msgpack
import pytest
from aiohttp import web

from processor.sdk import Context, Service, make_app
from processor.sdk.testing import DeployFactory, attempt_body, input_entry

WAIT_S = 5.0


class Gate:
    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.release = asyncio.Event()
        self.cancelled = asyncio.Event()


def gated(gate: Gate) -> Service:
    svc = Service("Gated")

    @svc.handler()
    async def go(ctx: Context) -> str:
        await ctx.run("first", lambda: 1)

        async def blocked() -> int:
            gate.reached.set()
            try:
                await gate.release.wait()
            except asyncio.CancelledError:
                gate.cancelled.set()
                raise
            return 2

        await ctx.run("second", blocked)
        return "done"

    return svc


async def _next_frame(resp: aiohttp.ClientResponse, unpacker: msgpack.Unpacker) -> object:
    while True:
        for frame in unpacker:
            return frame
        chunk = await asyncio.wait_for(resp.content.readany(), WAIT_S)
        assert chunk, "stream ended early"
        unpacker.feed(chunk)


async def test_each_entry_is_delivered_before_the_handler_takes_its_next_step(
    deploy: DeployFactory,
) -> None:
    gate = Gate()
    d = await deploy([gated(gate)])
    async with d.session.post(
        f"{d.url}/invoke/Gated/go", data=attempt_body([input_entry()])
    ) as resp:
        unpacker = msgpack.Unpacker(raw=False)
        first = await _next_frame(resp, unpacker)
        assert first == {
            "t": "entry",
            "index": 1,
            "entry": {"kind": "run", "name": "first", "value": b"1"},
        }
        await asyncio.wait_for(gate.reached.wait(), WAIT_S)
        gate.release.set()
        assert (await _next_frame(resp, unpacker))["index"] == 2  # type: ignore[index]
        assert await _next_frame(resp, unpacker) == {"t": "output", "value": b'"done"'}


ServerFactory = Callable[[Service], Awaitable[str]]


@pytest.fixture(params=["handler-cancellation", "disconnect-polling"])
async def serve_gated(request: pytest.FixtureRequest) -> AsyncIterator[ServerFactory]:
    """Both ways a closed connection reaches the handler: aiohttp cancelling the request task
    (`run_server`) and the SDK noticing the closed transport (a plain runner of `make_app`)."""
    runners: list[web.AppRunner] = []

    async def start(svc: Service) -> str:
        cancel = request.param == "handler-cancellation"
        runner = web.AppRunner(make_app([svc]), handler_cancellation=cancel)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_client_closing_the_connection_cancels_the_running_handler(
    serve_gated: ServerFactory,
) -> None:
    gate = Gate()
    url = await serve_gated(gated(gate))
    async with aiohttp.ClientSession() as session:
        resp = await session.post(f"{url}/invoke/Gated/go", data=attempt_body([input_entry()]))
        await asyncio.wait_for(gate.reached.wait(), WAIT_S)
        resp.close()  # drops the connection, as the invoker does to abort an attempt
    await asyncio.wait_for(gate.cancelled.wait(), WAIT_S)
    assert not gate.release.is_set()
