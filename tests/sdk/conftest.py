"""Fixtures for the SDK tests: deployments served on free loopback ports."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from processor.sdk import RunningServer, Service, run_server
from processor.sdk.testing import DeployFactory, Deployment


@pytest.fixture
async def deploy() -> AsyncIterator[DeployFactory]:
    servers: list[RunningServer] = []
    session = aiohttp.ClientSession()

    async def start(services: list[Service]) -> Deployment:
        server = await run_server(services, "127.0.0.1", 0)
        servers.append(server)
        return Deployment(server, session)

    yield start
    await session.close()
    for server in servers:
        await server.close()
