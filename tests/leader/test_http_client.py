"""The invoker's HTTP/1.1 client against a raw TCP server that writes exact bytes.

Every test runs on both event loops the daemon can use (uvloop by default, the stdlib loop with
`--event-loop asyncio`): their transports differ (uvloop's are not asyncio.Transport subclasses).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import pytest
from anyio import fail_after as anyio_fail_after

from processor.eventloop import EVENT_LOOPS, EventLoopName, run_asyncio
from processor.leader.http_client import (
    BadResponse,
    ConnectFailed,
    ConnectionCut,
    HttpClient,
    Response,
)

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-msgpack\r\n"


@pytest.fixture(params=EVENT_LOOPS)
def on_loop(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, None]], None]:
    name: EventLoopName = request.param

    def run(coro: Coroutine[Any, Any, None]) -> None:
        async def bounded() -> None:
            async with asyncio.timeout(20):
                await coro

        run_asyncio(bounded(), event_loop=name)

    return run


class Server:
    """A TCP server running `serve` per connection; counts connections and requests."""

    def __init__(self, serve: Serve) -> None:
        self.serve = serve
        self.connections = 0
        self.url = ""
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Server]:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        try:
            yield self
        finally:
            self._server.close()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One request's head and body (content-length framed)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length)


async def read_all(response: Response) -> bytes:
    out = b""
    while chunk := await response.read_chunk():
        out += chunk
    return out


def test_posts_the_body_with_length_and_reads_a_content_length_answer(on_loop: Any) -> None:
    seen: list[tuple[bytes, bytes]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        writer.write(OK_HEAD + b"Content-Length: 5\r\n\r\nhello")
        await writer.drain()

    async def main() -> None:
        async with Server(serve).running() as server:
            client = HttpClient()
            response = await client.post(server.url + "/invoke/S/h", b"\x81\xa1a\x01", "x/y")
            assert (response.status, response.reason) == (200, "OK")
            assert await read_all(response) == b"hello"
            await client.close()
        head, body = seen[0]
        assert head.startswith(b"POST /invoke/S/h HTTP/1.1\r\n")
        assert b"Content-Type: x/y\r\n" in head and b"Content-Length: 4\r\n" in head
        assert body == b"\x81\xa1a\x01"

    on_loop(main())


def test_chunked_answer_arrives_chunk_by_chunk_as_the_server_writes_it(on_loop: Any) -> None:
    release = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        await writer.drain()
        await release.wait()
        writer.write(b"2;ext=1\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n")
        await writer.drain()

    async def main() -> None:
        async with Server(serve).running() as server:
            client = HttpClient()
            response = await client.post(server.url + "/", b"", "x/y")
            assert await response.read_chunk() == b"abc"  # before the rest was even written
            release.set()
            assert await read_all(response) == b"de"
            await client.close()

    on_loop(main())


def test_keep_alive_connection_is_reused_for_the_next_call(on_loop: Any) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
            await writer.drain()

    async def main() -> None:
        async with Server(serve).running() as server:
            client = HttpClient()
            for _ in range(3):
                response = await client.post(server.url + "/", b"x", "x/y")
                assert await read_all(response) == b"ok"
                response.close()
            assert server.connections == 1
            await client.close()

    on_loop(main())


def test_pooled_connection_closed_by_the_server_is_retried_on_a_fresh_one(on_loop: Any) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK_HEAD + b"Content-Length: 2\r\n\r\nok")
        await writer.drain()
        # then close without saying so (a keep-alive timeout on the server's side)

    async def main() -> None:
        async with Server(serve).running() as server:
            client = HttpClient()
            assert await read_all(await client.post(server.url + "/", b"", "x/y")) == b"ok"
            assert await read_all(await client.post(server.url + "/", b"", "x/y")) == b"ok"
            assert server.connections == 2
            await client.close()

    on_loop(main())


def test_connection_close_and_http_1_0_answers_are_not_pooled(on_loop: Any) -> None:
    answers = [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\na",
        b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nb",
        b"HTTP/1.1 200 OK\r\n\r\nclose-delimited",
    ]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answers[server.connections - 1])
        await writer.drain()

    server = Server(serve)

    async def main() -> None:
        async with server.running():
            client = HttpClient()
            bodies = [await read_all(await client.post(server.url, b"", "x/y")) for _ in answers]
            assert bodies == [b"a", b"b", b"close-delimited"]
            assert server.connections == 3
            await client.close()

    on_loop(main())


def test_interim_100_answer_is_skipped(on_loop: Any) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + OK_HEAD + b"Content-Length: 1\r\n\r\nz")
        await writer.drain()

    async def main() -> None:
        async with Server(serve).running() as server:
            client = HttpClient()
            response = await client.post(server.url, b"", "x/y")
            assert response.status == 200 and await read_all(response) == b"z"
            await client.close()

    on_loop(main())


def test_refused_connection_names_the_os_reason(on_loop: Any) -> None:
    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        client = HttpClient()
        with pytest.raises(ConnectFailed, match=r"cannot connect to 127\.0\.0\.1") as caught:
            await client.post(f"http://127.0.0.1:{port}/", b"", "x/y")
        assert "refused" in caught.value.reason.lower()
        await client.close()

    on_loop(main())


def test_no_byte_within_the_inactivity_timeout_is_a_timeout(on_loop: Any) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n")
        await writer.drain()
        await asyncio.Event().wait()  # then silence

    async def main() -> None:
        async with Server(serve).running() as server:
            client = HttpClient(inactivity_timeout_s=0.2)
            response = await client.post(server.url, b"", "x/y")
            assert await response.read_chunk() == b"a"
            with pytest.raises(TimeoutError):
                await response.read_chunk()
            response.close()
            await client.close()

    on_loop(main())


def test_answer_cut_in_the_middle_of_the_body_is_a_cut(on_loop: Any) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK_HEAD + b"Content-Length: 10\r\n\r\nabc")
        await writer.drain()

    async def main() -> None:
        async with Server(serve).running() as server:
            client = HttpClient()
            response = await client.post(server.url, b"", "x/y")
            assert await response.read_chunk() == b"abc"
            with pytest.raises(ConnectionCut, match="in the middle of the answer's body"):
                await response.read_chunk()
            await client.close()

    on_loop(main())


def test_server_closing_before_answering_is_a_cut(on_loop: Any) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async def main() -> None:
        async with Server(serve).running() as server:
            client = HttpClient()
            with pytest.raises(ConnectionCut, match="before answering"):
                await client.post(server.url, b"", "x/y")
            await client.close()

    on_loop(main())


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"SMTP ready\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "bad content-length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
    ],
)
def test_bytes_that_are_not_http_are_a_bad_response(
    on_loop: Any, answer: bytes, message: str
) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer)
        await writer.drain()
        await asyncio.sleep(5)  # keep the connection: the client must not wait for the close

    async def main() -> None:
        async with Server(serve).running() as server:
            client = HttpClient(inactivity_timeout_s=3)
            with pytest.raises(BadResponse, match=message):
                response = await client.post(server.url, b"", "x/y")
                await read_all(response)
            await client.close()

    on_loop(main())


def test_non_utf8_reason_phrase_is_read_not_fatal(on_loop: Any) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 503 Sp\xe4ter\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    async def main() -> None:
        async with Server(serve).running() as server:
            client = HttpClient()
            response = await client.post(server.url, b"", "x/y")
            assert response.status == 503 and response.reason == "Sp\xe4ter"
            assert await read_all(response) == b""
            await client.close()

    on_loop(main())


def test_closing_an_unfinished_answer_closes_the_connection(on_loop: Any) -> None:
    closed = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n")
        await writer.drain()
        await reader.read()  # returns when the client closes
        closed.set()

    async def main() -> None:
        async with Server(serve).running() as server:
            client = HttpClient()
            response = await client.post(server.url, b"", "x/y")
            assert await response.read_chunk() == b"a"
            response.close()
            await asyncio.wait_for(closed.wait(), 5)
            await client.close()

    on_loop(main())


def test_released_answer_returns_its_connection_once_the_stream_end_arrives(on_loop: Any) -> None:
    end_marker = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nfinal\r\n")
            await writer.drain()
            await end_marker.wait()
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    async def main() -> None:
        async with Server(serve).running() as server:
            client = HttpClient()
            response = await client.post(server.url, b"", "x/y")
            assert await response.read_chunk() == b"final"
            response.release_when_done()  # the end marker is not there yet
            end_marker.set()
            for _ in range(100):
                if client._idle.get(("127.0.0.1", int(server.url.rsplit(":", 1)[1]), False)):
                    break
                await asyncio.sleep(0.01)
            second = await client.post(server.url, b"", "x/y")
            assert await second.read_chunk() == b"final"
            second.close()
            assert server.connections == 1
            await client.close()

    on_loop(main())


def test_a_name_that_does_not_resolve_is_reported_in_the_resolvers_words(on_loop: Any) -> None:
    async def main() -> None:
        client = HttpClient(connect_timeout_s=5)
        with pytest.raises(ConnectFailed) as caught:
            await client.post("http://no-such-host.invalid:9080/", b"", "x/y")
        assert "Unknown error" not in caught.value.reason and caught.value.reason
        await client.close()

    on_loop(main())


def test_a_204_answer_has_no_body_even_without_a_length(on_loop: Any) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            await writer.drain()

    async def main() -> None:
        async with Server(serve).running() as server:
            client = HttpClient(inactivity_timeout_s=5)
            for _ in range(2):
                response = await client.post(server.url, b"", "x/y")
                assert response.status == 204
                with anyio_fail_after(1):
                    assert await read_all(response) == b""
            assert server.connections == 1  # and the connection was kept
            await client.close()

    on_loop(main())


def test_bytes_arriving_on_an_idle_pooled_connection_retire_it(on_loop: Any) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK_HEAD + b"Content-Length: 1\r\n\r\na")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nbogus")  # unasked for
        await writer.drain()
        await asyncio.sleep(5)

    async def main() -> None:
        async with Server(serve).running() as server:
            client = HttpClient()
            assert await read_all(await client.post(server.url, b"", "x/y")) == b"a"
            key = ("127.0.0.1", int(server.url.rsplit(":", 1)[1]), False)
            (pooled,) = client._idle[key]
            assert not pooled.closed
            for _ in range(300):  # the unasked-for answer arrives ~50 ms later
                if pooled.closed:
                    break
                await asyncio.sleep(0.01)
            assert pooled.closed
            await client.close()

    on_loop(main())
