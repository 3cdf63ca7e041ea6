"""A real partition and registry behind the ingress, and raw HTTP requests (so any bytes can be
sent): for ingress inputs that must be a clear 400 that appends nothing and stops nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp.test_utils import TestServer

from processor.api.ingress import Ingress
from processor.api.partitions import PartitionRouter
from processor.partition import Partition
from processor.registry import Registry
from processor.retry import RetryPolicy
from tests.ui.fakes import discovery_server


@dataclass
class Env:
    partition: Partition
    port: int


@asynccontextmanager
async def running_ingress(tmp_path: Path) -> AsyncIterator[Env]:
    """A partition and the ingress in front of it (entered inside the test: the partition's task
    group must be left by the task that entered it)."""
    async with discovery_server({"Greeter": ["greet"]}) as (uri, _):
        registry = Registry(tmp_path / "deployments.db")
        await registry.register(uri)
        partition = Partition(0, tmp_path, registry)
        try:
            async with partition.running():
                ingress = Ingress(PartitionRouter([partition]), registry, RetryPolicy())
                server = TestServer(ingress.app())
                await server.start_server()
                try:
                    assert server.port is not None
                    yield Env(partition, server.port)
                finally:
                    await server.close()
        finally:
            registry.close()


async def raw_request(port: int, head: bytes, body: bytes = b"{}") -> tuple[int, dict[str, str]]:
    """Send one request with exactly these header bytes; (status, JSON body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            head + b"Host: test\r\nConnection: close\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    payload = rest.partition(b"\r\n\r\n")[2]
    return int(status_line.split()[1]), json.loads(payload)


async def assert_rejected(tmp_path: Path, head: bytes, *words: str) -> None:
    async with running_ingress(tmp_path) as env:
        await _assert_rejected(env, head, *words)


async def _assert_rejected(env: Env, head: bytes, *words: str) -> None:
    log = env.partition.log
    assert log is not None
    before = log.tail()
    status, body = await raw_request(env.port, head)
    assert status == 400, (status, body)
    for word in words:
        assert word in body["message"], body
    assert log.tail() == before
    # the partition is still alive: a valid invoke is accepted
    status, body = await raw_request(env.port, b"POST /Greeter/greet/send HTTP/1.1\r\n")
    assert status == 202, (status, body)
