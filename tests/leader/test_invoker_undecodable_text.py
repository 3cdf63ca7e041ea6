"""Text that aiohttp hands over undecoded (a non-UTF-8 reason phrase arrives as lone surrogates)
ends up in the failure's message readably; the failure can be encoded into a log record. It used
to raise from the attempt task while encoding the effect, which crashed the partition's leader,
and the re-issued attempt after a restart met the same answer."""

from __future__ import annotations

import asyncio

from processor.codec import decode, encode
from processor.commands import AttemptFailed, Command
from processor.leader.invoker import AttemptRequest, Invoker

INV = "inv_1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
DP = "dp_0000000000000000000001"


async def test_non_utf8_reason_phrase_is_a_retryable_failure_that_encodes() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 500 Bad \xff\xfe reason\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    emitted: list[Command] = []

    async def emit(commands: list[Command]) -> None:
        emitted.extend(decode(encode(c)) for c in commands)  # as the leader's append does

    try:
        request = AttemptRequest(
            INV, 3, "Greeter", "greet", DP, f"http://127.0.0.1:{port}", [{"kind": "input"}], 1
        )
        async with Invoker(inactivity_timeout_s=5) as invoker:
            await invoker.run_attempt(request, emit)
    finally:
        server.close()
    [failed] = emitted
    assert isinstance(failed, AttemptFailed) and failed.retryable
    assert "HTTP 500" in failed.failure.message and "reason" in failed.failure.message
