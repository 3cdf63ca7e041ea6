"""Fixtures of the end-to-end tests: a running daemon, an HTTP session, the CLI, deployments.

Every test module here is marked `slow` (real processes) but they are part of `make test`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import pytest

from tests.leader.e2e_support import DeploymentProcess, deployment

from .support import Cli, Daemon

StartDeployment = Callable[..., Awaitable[DeploymentProcess]]


@pytest.fixture
def daemon_handles(start_deployment: StartDeployment) -> Iterator[list[Daemon]]:
    """Every Daemon a test creates; any still alive at the end is SIGKILLed.

    Torn down before the deployments, so their in-flight attempts end with the connection (a
    deployment still serving a long attempt would not exit at once when asked to).
    """
    handles: list[Daemon] = []
    yield handles
    for handle in handles:
        handle.kill()


@pytest.fixture
def make_daemon(tmp_path: Path, daemon_handles: list[Daemon]) -> Callable[..., Daemon]:
    def make(partitions: int = 4, name: str = "daemon", workdir: Path | None = None) -> Daemon:
        handle = Daemon(workdir or tmp_path, partitions=partitions, name=name)
        daemon_handles.append(handle)
        return handle

    return make


@pytest.fixture
async def daemon(make_daemon: Callable[..., Daemon]) -> Daemon:
    return await make_daemon().start()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(limit=64)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        yield session


@pytest.fixture
def cli(daemon: Daemon) -> Cli:
    """The CLI pointed at the daemon as first started (a restart binds new ports)."""
    return Cli(daemon.admin_url)


@pytest.fixture
async def start_deployment(tmp_path: Path) -> AsyncIterator[StartDeployment]:
    """`await start_deployment(script, *args, env=...)`: a deployment process, stopped at end."""
    async with AsyncExitStack() as stack:

        async def start(
            script: Path, *args: str, env: dict[str, str] | None = None
        ) -> DeploymentProcess:
            return await stack.enter_async_context(
                deployment(script, *args, workdir=tmp_path, env=env)
            )

        yield start
