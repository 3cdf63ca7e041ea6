"""Answers that are not the protocol's frames end the attempt with one clear protocol failure.

A 200 answer that is a web page (or any other content type) used to fail with "frame is not a
map: 60" (the byte of "<"); a map with a list as a key made msgpack raise TypeError, which escaped
the invoker; `true` passed as an integer field of a frame. Each is now a retryable failure with
code 571 whose message says what was wrong.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgpack
import pytest
from aiohttp import web

from processor.codec import decode, encode
from processor.commands import AttemptCompleted, AttemptEntry, AttemptFailed, AttemptPinned
from processor.leader import invoker as invoker_module
from processor.leader.invoker import Invoker
from processor.retry import RetryPolicy
from processor.status import Status

from .e2e_support import Env
from .leader_support import serve_app
from .test_invoker import DP, INV, Emitted, entry, pack, request, run

PROTOCOL = 571
HTML = "<!doctype html><html><body><h1>Welcome to nginx!</h1></body></html>"


def plain_app(body: bytes, content_type: str) -> web.Application:
    """A server that answers every invoke with `body` and `content_type`, status 200."""

    async def invoke(_: web.Request) -> web.Response:
        return web.Response(body=body, headers={"content-type": content_type})

    app = web.Application()
    app.router.add_post("/invoke/{service}/{handler}", invoke)
    return app


async def attempt_against(app: web.Application) -> AttemptFailed:
    emitted = Emitted()
    async with serve_app(app) as uri, Invoker(5) as invoker:
        await invoker.run_attempt(request(uri), emitted)
    failed = emitted.only_failure()
    assert failed.failure.code == PROTOCOL
    return failed


@asynccontextmanager
async def raw_server(answer: bytes) -> AsyncIterator[str]:
    """A bare TCP server that writes `answer` (head and body) to every request, then closes."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


# --- a 200 answer that is not the deployment protocol --------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/html; charset=utf-8", HTML),
        ("application/json", '{"status": "ok"}'),
        ("text/plain", "Hello from the ingress"),
    ],
    ids=["html-page", "json-api", "plain-text"],
)
async def test_a_200_answer_with_another_content_type_names_it_and_the_expected_protocol(
    content_type: str, body: str
) -> None:
    failed = await attempt_against(plain_app(body.encode(), content_type))
    message = failed.failure.message
    assert f"answered HTTP 200 with content-type {content_type!r}" in message
    assert "instead of 'application/x-msgpack'" in message
    assert "not speaking the deployment protocol" in message
    assert "registered URI" in message  # what to check
    assert body[:40] in message  # what answered
    assert "frame is not a map" not in message


async def test_a_200_answer_without_content_type_that_is_not_frames_says_what_answered() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(HTML)
    emitted = Emitted()
    async with raw_server(head + HTML.encode()) as uri, Invoker(5) as invoker:
        await invoker.run_attempt(request(uri), emitted)
    failure = emitted.only_failure().failure
    assert failure.code == PROTOCOL
    assert "without a content-type" in failure.message
    assert "not speaking the deployment protocol" in failure.message
    assert "Welcome to nginx!" in failure.message
    assert "frame is not a map" not in failure.message  # not the byte value of "<"


async def test_the_msgpack_content_type_with_parameters_is_the_protocol() -> None:
    body = entry(1) + pack({"t": "output", "value": b'"ok"'})
    emitted = Emitted()
    app = plain_app(body, "application/x-msgpack; charset=binary")
    async with serve_app(app) as uri, Invoker(5) as invoker:
        await invoker.run_attempt(request(uri), emitted)
    assert [type(c) for c in emitted.commands] == [AttemptPinned, AttemptEntry, AttemptCompleted]


async def test_a_failure_naming_a_content_type_with_odd_bytes_can_be_logged() -> None:
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/\xff\xfehtml\r\nContent-Length: 4\r\n"
        b"Connection: close\r\n\r\n\xff\xfe<p>"
    )
    emitted = Emitted()
    async with raw_server(head) as uri, Invoker(5) as invoker:
        await invoker.run_attempt(request(uri), emitted)
    [failed] = [decode(encode(c)) for c in emitted.commands]  # as the leader's append does
    assert isinstance(failed, AttemptFailed) and failed.failure.code == PROTOCOL
    assert "content-type 'text/" in failed.failure.message


# --- frames msgpack cannot decode ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        (b"\x81\x91\x01\x01", "key is a list or a map"),  # {[1]: 1}
        (b"\x81\x80\x01", "key is a list or a map"),  # {{}: 1}
        (b"\x91" * 2000 + b"\xc0", "nested deeper than msgpack allows"),
        (b"\x81\xa1t\xa2\xff\xfe", "not valid UTF-8"),  # {"t": <bad UTF-8>}
        (b"\xd4\xff\x00", "bytes that are not msgpack"),  # a timestamp of one byte
        (b"\xc1", "bytes that are not msgpack"),  # the reserved byte
    ],
    ids=["list-key", "map-key", "too-deep", "bad-utf8", "bad-timestamp", "reserved-byte"],
)
async def test_an_undecodable_frame_is_a_protocol_failure_after_the_entries_before_it(
    bad: bytes, says: str
) -> None:
    async def body(_: web.Request, response: web.StreamResponse) -> None:
        await response.write(entry(1) + bad)

    emitted = await run(body)
    assert emitted.commands[:2] == [
        AttemptPinned(INV, 3, DP),
        AttemptEntry(INV, 3, 1, {"kind": "run", "name": "step", "value": b"1"}),
    ]
    failure = emitted.only_failure().failure
    assert failure.code == PROTOCOL
    assert failure.message.startswith("undecodable frame after entry index 1: ")
    assert says in failure.message and "PROTOCOL.md" in failure.message


async def test_a_frame_larger_than_the_limit_is_a_protocol_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(invoker_module, "MAX_FRAME_BYTES", 1024)

    async def body(_: web.Request, response: web.StreamResponse) -> None:
        await response.write(pack({"t": "output", "value": b"x" * 4096}))

    emitted = await run(body)
    failure = emitted.only_failure().failure
    assert failure.code == PROTOCOL
    assert "a frame larger than 1024 bytes" in failure.message


async def test_a_list_nested_too_deep_to_repr_is_reported_without_crashing() -> None:
    async def body(_: web.Request, response: web.StreamResponse) -> None:
        await response.write(b"\x91" * 1020 + b"\xc0")  # decodes, but repr() would recurse

    emitted = await run(body)
    failure = emitted.only_failure().failure
    assert failure.code == PROTOCOL
    assert failure.message.startswith("frame is not a map but list [[[[")
    assert len(failure.message) < 1000


# --- booleans are not integers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "says"),
    [
        ({"t": "entry", "index": True, "entry": {"kind": "run"}}, "without an integer index"),
        ({"t": "suspend", "awaiting": [True]}, "list of integer completion ids"),
        ({"t": "output", "failure": {"code": True, "message": "no"}}, "an integer code"),
    ],
    ids=["entry-index", "completion-id", "output-failure-code"],
)
async def test_true_in_an_integer_field_is_a_protocol_failure(
    frame: dict[str, Any], says: str
) -> None:
    async def body(_: web.Request, response: web.StreamResponse) -> None:
        await response.write(pack(frame))

    emitted = await run(body)
    failure = emitted.only_failure().failure
    assert failure.code == PROTOCOL and says in failure.message
    assert not any(isinstance(c, (AttemptPinned, AttemptEntry)) for c in emitted.commands)


async def test_true_as_related_index_or_code_of_an_error_frame_is_not_taken_as_a_number() -> None:
    async def body(_: web.Request, response: web.StreamResponse) -> None:
        error = {"t": "error", "code": True, "message": "boom", "related_index": True}
        await response.write(entry(1) + pack(error))

    emitted = await run(body)
    failure = emitted.only_failure().failure
    assert failure.related_index is None  # not journal index 1
    assert failure.code == 500 and failure.message == "boom"


# --- in a partition ------------------------------------------------------------------------------


class MalformedDeployment:
    """Discovers like a deployment; `Svc/html` answers a web page, `Svc/listkey` a map keyed by a
    list, `Svc/ok` answers properly."""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/discover", self.discover)
        app.router.add_post("/invoke/Svc/{handler}", self.invoke)
        return app

    async def discover(self, _: web.Request) -> web.Response:
        handlers = [{"name": name} for name in ("html", "listkey", "ok")]
        doc = {"protocol": 1, "services": [{"name": "Svc", "handlers": handlers}]}
        return web.Response(body=pack(doc), content_type="application/x-msgpack")

    async def invoke(self, request: web.Request) -> web.StreamResponse:
        assert msgpack.unpackb(await request.read(), raw=False)["journal"]
        handler = request.match_info["handler"]
        if handler == "html":
            return web.Response(text=HTML, content_type="text/html")
        response = web.StreamResponse(headers={"content-type": "application/x-msgpack"})
        await response.prepare(request)
        if handler == "listkey":
            await response.write(b"\x81\x91\x01\x01")  # (an entry first would be progress)
        else:
            await response.write(pack({"t": "output", "value": b'"ok"'}))
        return response


@pytest.mark.parametrize(
    ("handler", "says"),
    [("html", "content-type 'text/html"), ("listkey", "key is a list or a map")],
)
async def test_a_partition_records_the_protocol_failure_and_keeps_running(
    tmp_path: Path, handler: str, says: str
) -> None:
    env = Env(tmp_path)
    policy = RetryPolicy(initial_interval_ms=10, max_interval_ms=10, max_attempts=2)
    async with serve_app(MalformedDeployment().app()) as uri, env.running() as p:
        await env.registry.register(uri)
        inv = await env.invoke("Svc", handler, None, policy)
        view = await env.wait_status(inv, Status.PAUSED)
        assert view.last_failure is not None and view.last_failure.code == PROTOCOL
        assert says in view.last_failure.message
        events = await p.get_events(inv)
        [error] = [e for e in events if e.kind == "transient-error"]
        assert says in error.data["message"] and error.data["count"] == 2
        assert "internal error" not in error.data["message"]
        # The partition goes on serving other invocations.
        ok = await env.invoke("Svc", "ok", None, policy)
        done = await env.wait_status(ok, Status.COMPLETED)
        assert done.result is not None and done.result.value == b'"ok"'
