"""The leader with in-process deployments: aborted effects, the attempt bound, no deployment."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import msgpack
from aiohttp import web

from processor.codec import decode
from processor.commands import AttemptEntry
from processor.config import InvocationConfig
from processor.partition import Partition
from processor.retry import RetryPolicy
from processor.status import Status

from .e2e_support import Env
from .leader_support import eventually, serve_app, wait_for


def pack(frame: dict[str, Any]) -> bytes:
    return msgpack.packb(frame, use_bin_type=True)


class FakeDeployment:
    """`Svc/ticker` streams an entry every 10 ms forever; `Svc/gate` answers once released."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.max_in_flight = 0
        self.release = asyncio.Event()
        self.calls = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/discover", self.discover)
        app.router.add_post("/invoke/Svc/{handler}", self.invoke)
        return app

    async def discover(self, _: web.Request) -> web.Response:
        doc = {
            "protocol": 1,
            "services": [{"name": "Svc", "handlers": [{"name": "ticker"}, {"name": "gate"}]}],
        }
        return web.Response(body=pack(doc), content_type="application/x-msgpack")

    async def invoke(self, request: web.Request) -> web.StreamResponse:
        body = msgpack.unpackb(await request.read(), raw=False)
        self.calls += 1
        response = web.StreamResponse(headers={"content-type": "application/x-msgpack"})
        await response.prepare(request)
        index = len(body["journal"])
        if request.match_info["handler"] == "ticker":
            while True:
                entry = {"kind": "run", "name": f"tick-{index}", "value": b"1"}
                await response.write(pack({"t": "entry", "index": index, "entry": entry}))
                index += 1
                await asyncio.sleep(0.01)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self.release.wait()
        finally:
            self.in_flight -= 1
        await response.write(pack({"t": "output", "value": b'"released"'}))
        return response


@asynccontextmanager
async def fake_deployment() -> AsyncIterator[tuple[FakeDeployment, str]]:
    fake = FakeDeployment()
    async with serve_app(fake.app()) as uri:
        yield fake, uri


async def test_effects_of_an_aborted_attempt_are_not_appended(tmp_path: Path) -> None:
    env = Env(tmp_path)
    async with fake_deployment() as (_, uri), env.running() as p:
        await env.registry.register(uri)
        inv = await env.invoke("Svc", "ticker", None)

        async def ticking() -> bool:
            return (await env.view(inv)).journal_length >= 3

        await eventually(ticking, what="entries streaming in")
        assert (await env.pause(inv)).code == 202
        assert p.log is not None
        # An append already under way when the pause was applied may still land (its LSN was
        # taken); let those settle. After that, nothing of the aborted attempt is appended,
        # although the deployment keeps streaming until it notices the closed connection.
        await wait_for(lambda: p.leader.attempts.running == 0, what="the attempt to end")
        await anyio.sleep(0.05)
        settled = p.log.tail()
        journal_length = (await env.view(inv)).journal_length
        await anyio.sleep(0.2)
        records = await p.log.read_batch(settled + 1, 1000)
        assert [r for r in records if isinstance(decode(r.payload), AttemptEntry)] == []
        assert (await env.view(inv)).journal_length == journal_length
        assert p.leader.attempts.running == 0


async def test_attempts_beyond_the_limit_wait_in_a_queue(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.partition = Partition(
        0, tmp_path / "data", env.registry, invocation=InvocationConfig(max_concurrent_attempts=2)
    )
    async with fake_deployment() as (fake, uri), env.running() as p:
        await env.registry.register(uri)
        invs = [await env.invoke("Svc", "gate", None) for _ in range(5)]
        await wait_for(lambda: fake.in_flight == 2, what="two attempts in flight")
        assert p.leader.attempts.running == 2 and p.leader.attempts.queued == 3
        await anyio.sleep(0.1)
        assert fake.calls == 2  # the others have not been sent
        fake.release.set()
        for inv in invs:
            view = await env.wait_status(inv, Status.COMPLETED)
            assert view.result is not None and view.result.value == b'"released"'
    assert fake.max_in_flight == 2 and fake.calls == 5


async def test_no_deployment_for_the_service_fails_attempts_until_one_is_registered(
    tmp_path: Path,
) -> None:
    env = Env(tmp_path)
    policy = RetryPolicy(initial_interval_ms=10, max_attempts=2)
    async with fake_deployment() as (fake, uri), env.running() as p:
        inv = await env.invoke("Svc", "gate", None, policy)
        view = await env.wait_status(inv, Status.PAUSED)
        assert view.last_failure is not None
        assert "no registered deployment serves service 'Svc'" in view.last_failure.message
        assert view.attempt == 2
        await env.registry.register(uri)
        fake.release.set()
        done = p.wait_for_completion(inv)
        assert (await env.resume(inv)).code == 200
        with anyio.fail_after(10):
            result = await done
    assert result.value is not None and json.loads(result.value) == "released"
