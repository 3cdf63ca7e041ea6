"""The invoker against real aiohttp servers on loopback: streaming, and every failure mode."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import msgpack
import pytest
from aiohttp import web

from processor.commands import (
    AttemptCompleted,
    AttemptEntry,
    AttemptFailed,
    AttemptPinned,
    AttemptSuspended,
    Command,
)
from processor.leader.invoker import AttemptRequest, Invoker, seed_for

from .leader_support import free_port, serve_app, wait_for

INV = "inv_1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
DP = "dp_0000000000000000000001"
INPUT = {"kind": "input", "value": b'"Ada"', "headers": {}, "appended_at": 1}

Handler = Callable[[web.Request, web.StreamResponse], Awaitable[None]]


def pack(frame: dict[str, Any]) -> bytes:
    return msgpack.packb(frame, use_bin_type=True)


def entry(index: int, name: str = "step") -> bytes:
    return pack(
        {"t": "entry", "index": index, "entry": {"kind": "run", "name": name, "value": b"1"}}
    )


def streaming_app(body: Handler, seen: list[dict[str, Any]] | None = None) -> web.Application:
    async def invoke(request: web.Request) -> web.StreamResponse:
        if seen is not None:
            seen.append(msgpack.unpackb(await request.read(), raw=False))
        response = web.StreamResponse(headers={"content-type": "application/x-msgpack"})
        await response.prepare(request)
        await body(request, response)
        return response

    app = web.Application()
    app.router.add_post("/invoke/{service}/{handler}", invoke)
    return app


def request(uri: str, journal: list[dict[str, Any]] | None = None) -> AttemptRequest:
    return AttemptRequest(
        invocation_id=INV,
        attempt=3,
        service="Greeter",
        handler="greet",
        deployment_id=DP,
        uri=uri,
        journal=journal if journal is not None else [INPUT],
        seed=seed_for(INV),
    )


class Emitted:
    def __init__(self) -> None:
        self.batches: list[list[Command]] = []

    async def __call__(self, commands: list[Command]) -> None:
        self.batches.append(list(commands))

    @property
    def commands(self) -> list[Command]:
        return [c for b in self.batches for c in b]

    def only_failure(self) -> AttemptFailed:
        failures = [c for c in self.commands if isinstance(c, AttemptFailed)]
        assert len(failures) == 1, self.commands
        assert self.commands[-1] is failures[0]
        assert failures[0].retryable and failures[0].deployment_id == DP
        assert failures[0].attempt == 3 and failures[0].failure.attempt == 3
        return failures[0]


async def run(handler: Handler, timeout_s: float = 5.0, journal: Any = None) -> Emitted:
    emitted = Emitted()
    async with serve_app(streaming_app(handler)) as uri, Invoker(timeout_s) as invoker:
        await invoker.run_attempt(request(uri, journal), emitted)
    return emitted


async def test_sends_the_whole_journal_and_a_seed_and_streams_entries_as_they_arrive() -> None:
    seen: list[dict[str, Any]] = []
    emitted = Emitted()
    entry_stored = asyncio.Event()

    async def body(_: web.Request, response: web.StreamResponse) -> None:
        await response.write(entry(1, "a"))
        # The final frame is written only once the invoker has handed the entry to emit().
        await asyncio.wait_for(entry_stored.wait(), 5)
        await response.write(entry(2, "b") + pack({"t": "output", "value": b'"done"'}))

    async def emit(commands: list[Command]) -> None:
        await emitted(commands)
        if any(isinstance(c, AttemptEntry) and c.index == 1 for c in commands):
            entry_stored.set()

    journal = [INPUT]
    async with serve_app(streaming_app(body, seen)) as uri, Invoker() as invoker:
        await invoker.run_attempt(request(uri, journal), emit)

    assert seen == [{"invocation_id": INV, "attempt": 3, "journal": journal, "seed": seed_for(INV)}]
    assert emitted.batches[0] == [
        AttemptPinned(INV, 3, DP),
        AttemptEntry(INV, 3, 1, {"kind": "run", "name": "a", "value": b"1"}),
    ]
    assert emitted.batches[1] == [
        AttemptEntry(INV, 3, 2, {"kind": "run", "name": "b", "value": b"1"}),
        AttemptCompleted(INV, 3, value=b'"done"'),
    ]


async def test_seed_is_stable_per_invocation() -> None:
    assert seed_for(INV) == seed_for(INV)
    assert seed_for(INV) != seed_for(INV[:-1] + "b")
    assert 0 <= seed_for(INV) < 2**63


async def test_suspend_frame_becomes_attempt_suspended() -> None:
    async def body(_: web.Request, response: web.StreamResponse) -> None:
        sleep = {"kind": "sleep", "completion_id": 1, "wake_up_at": 5}
        await response.write(pack({"t": "entry", "index": 1, "entry": sleep}))
        await response.write(pack({"t": "suspend", "awaiting": [1]}))

    emitted = await run(body)
    assert emitted.commands[0] == AttemptPinned(INV, 3, DP)
    assert emitted.commands[-1] == AttemptSuspended(INV, 3, (1,))


async def test_terminal_failure_output_completes_with_the_failure() -> None:
    async def body(_: web.Request, response: web.StreamResponse) -> None:
        await response.write(pack({"t": "output", "failure": {"code": 409, "message": "canceled"}}))

    emitted = await run(body)
    done = emitted.commands[-1]
    assert isinstance(done, AttemptCompleted) and done.failure is not None
    assert (done.failure.code, done.failure.message, done.value) == (409, "canceled", None)


async def test_error_frame_becomes_attempt_failed_with_its_details() -> None:
    async def body(_: web.Request, response: web.StreamResponse) -> None:
        await response.write(entry(1))
        await response.write(
            pack(
                {
                    "t": "error",
                    "code": 570,
                    "message": "journal mismatch at index 1",
                    "stacktrace": "Traceback ...",
                    "retryable": False,
                    "related_index": 1,
                }
            )
        )

    emitted = await run(body)
    failed = emitted.commands[-1]
    assert isinstance(failed, AttemptFailed)
    assert failed.retryable is False and failed.deployment_id == DP
    assert failed.failure.code == 570
    assert failed.failure.message == "journal mismatch at index 1"
    assert failed.failure.stacktrace == "Traceback ..."
    assert failed.failure.related_index == 1


async def test_connection_refused_names_the_uri() -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    emitted = Emitted()
    async with Invoker() as invoker:
        await invoker.run_attempt(request(uri), emitted)
    failure = emitted.only_failure().failure
    assert failure.code == 503
    assert "connection refused" in failure.message and uri in failure.message


async def test_non_200_answer_reports_status_and_body_excerpt() -> None:
    async def invoke(_: web.Request) -> web.Response:
        return web.Response(status=500, text="handler crashed: KeyError 'x'")

    app = web.Application()
    app.router.add_post("/invoke/{service}/{handler}", invoke)
    emitted = Emitted()
    async with serve_app(app) as uri, Invoker() as invoker:
        await invoker.run_attempt(request(uri), emitted)
    message = emitted.only_failure().failure.message
    assert "HTTP 500" in message and "handler crashed: KeyError" in message


async def test_unknown_route_404_is_a_retryable_failure() -> None:
    emitted = Emitted()
    async with serve_app(web.Application()) as uri, Invoker() as invoker:
        await invoker.run_attempt(request(uri), emitted)
    assert "HTTP 404" in emitted.only_failure().failure.message


async def test_inactivity_timeout_keeps_the_entries_that_arrived() -> None:
    async def body(_: web.Request, response: web.StreamResponse) -> None:
        await response.write(entry(1))
        await asyncio.sleep(30)

    with anyio.fail_after(5):
        emitted = await run(body, timeout_s=0.2)
    assert isinstance(emitted.commands[1], AttemptEntry)
    failure = emitted.only_failure().failure
    assert failure.code == 504 and "inactivity timeout" in failure.message


async def test_no_answer_at_all_times_out() -> None:
    async def invoke(_: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response()

    app = web.Application()
    app.router.add_post("/invoke/{service}/{handler}", invoke)
    emitted = Emitted()
    with anyio.fail_after(5):
        async with serve_app(app) as uri, Invoker(0.2) as invoker:
            await invoker.run_attempt(request(uri), emitted)
    assert "inactivity timeout" in emitted.only_failure().failure.message


async def test_stream_ending_without_final_frame_is_a_failure() -> None:
    async def body(_: web.Request, response: web.StreamResponse) -> None:
        await response.write(entry(1))

    emitted = await run(body)
    assert isinstance(emitted.commands[1], AttemptEntry)
    assert "ended without a final frame" in emitted.only_failure().failure.message


async def test_stream_cut_in_the_middle_of_a_frame_is_a_failure() -> None:
    async def body(request: web.Request, response: web.StreamResponse) -> None:
        await response.write(entry(1))
        await response.write(entry(2)[:5])
        assert request.transport is not None
        request.transport.close()  # like a deployment process that dies

    emitted = await run(body)
    assert [type(c) for c in emitted.commands] == [AttemptPinned, AttemptEntry, AttemptFailed]
    assert "was cut while reading the stream" in emitted.only_failure().failure.message


async def test_undecodable_frame_is_a_protocol_failure() -> None:
    async def body(_: web.Request, response: web.StreamResponse) -> None:
        await response.write(entry(1) + b"\xc1\xc1\xc1")

    emitted = await run(body)
    failure = emitted.only_failure().failure
    assert failure.code == 571 and "undecodable frame" in failure.message
    assert isinstance(emitted.commands[1], AttemptEntry)  # decoded before the bad bytes


async def test_frame_that_is_not_a_known_kind_is_a_protocol_failure() -> None:
    async def body(_: web.Request, response: web.StreamResponse) -> None:
        await response.write(pack({"t": "bogus"}))

    emitted = await run(body)
    assert "unknown frame kind 'bogus'" in emitted.only_failure().failure.message


async def test_entry_index_gap_fails_the_attempt_and_stops_reading() -> None:
    async def body(_: web.Request, response: web.StreamResponse) -> None:
        await response.write(entry(2) + entry(3) + pack({"t": "output", "value": b"1"}))

    journal = [INPUT, {"kind": "run", "name": "a", "value": b"1", "appended_at": 2}]
    emitted = await run(body, journal=[INPUT])
    failure = emitted.only_failure().failure
    assert failure.message.startswith("journal index gap: expected entry index 1, got 2")
    assert failure.related_index == 2
    assert not any(isinstance(c, AttemptEntry) for c in emitted.commands)
    # With the second entry already stored, index 1 again is a duplicate.
    emitted = await run(body, journal=journal)
    assert [type(c) for c in emitted.commands] == [
        AttemptPinned,
        AttemptEntry,
        AttemptEntry,
        AttemptCompleted,
    ]

    async def duplicate(_: web.Request, response: web.StreamResponse) -> None:
        await response.write(entry(1))

    emitted = await run(duplicate, journal=journal)
    assert "expected entry index 2, got 1 (duplicate)" in emitted.only_failure().failure.message


async def test_cancelling_the_attempt_closes_the_connection() -> None:
    closed = asyncio.Event()
    started = asyncio.Event()

    async def body(_: web.Request, response: web.StreamResponse) -> None:
        started.set()
        try:
            for i in range(1, 1000):
                await response.write(entry(i))
                await asyncio.sleep(0.01)
        except (ConnectionResetError, asyncio.CancelledError):
            closed.set()
            raise

    emitted = Emitted()
    async with serve_app(streaming_app(body)) as uri, Invoker() as invoker:
        async with anyio.create_task_group() as tg:
            tg.start_soon(invoker.run_attempt, request(uri), emitted)
            await wait_for(lambda: len(emitted.commands) >= 3, what="some entries")
            tg.cancel_scope.cancel()
        with anyio.fail_after(5):
            await closed.wait()
    assert not any(isinstance(c, AttemptFailed) for c in emitted.commands)


@pytest.mark.parametrize("bad", [entry(5), b"\xc1"], ids=["index-gap", "undecodable-byte"])
async def test_a_protocol_violation_closes_the_connection_so_the_deployment_stops(
    bad: bytes,
) -> None:
    closed = asyncio.Event()

    async def body(_: web.Request, response: web.StreamResponse) -> None:
        await response.write(entry(1) + bad)
        try:
            for i in range(6, 400):  # the handler would go on with its side effects
                await response.write(entry(i))
                await asyncio.sleep(0.01)
        except (ConnectionResetError, asyncio.CancelledError):
            closed.set()
            raise

    emitted = Emitted()
    async with serve_app(streaming_app(body)) as uri, Invoker() as invoker:
        await invoker.run_attempt(request(uri), emitted)
        assert emitted.only_failure().failure.code == 571  # a protocol failure
        with anyio.fail_after(2):
            await closed.wait()
