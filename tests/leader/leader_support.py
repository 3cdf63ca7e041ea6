"""Helpers for the leader tests: condition waits and throwaway aiohttp servers on loopback."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
from aiohttp import web


async def wait_for(predicate: Callable[[], bool], limit_s: float = 5.0, what: str = "") -> None:
    """Poll `predicate` until it holds; fail with `what` after `limit_s`."""
    try:
        with anyio.fail_after(limit_s):
            while not predicate():  # noqa: ASYNC110 - polls a plain condition
                await anyio.sleep(0.002)
    except TimeoutError:
        raise AssertionError(
            f"timed out after {limit_s}s waiting for {what or predicate}"
        ) from None


async def eventually(
    check: Callable[[], Awaitable[bool]], limit_s: float = 10.0, what: str = ""
) -> None:
    """Like `wait_for` for an async check (e.g. a store read)."""
    try:
        with anyio.fail_after(limit_s):
            while not await check():  # noqa: ASYNC110 - polls a plain condition
                await anyio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out after {limit_s}s waiting for {what or check}") from None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@asynccontextmanager
async def serve_app(app: web.Application) -> AsyncIterator[str]:
    """Run `app` on a free loopback port; yields its base URI."""
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None and server.sockets  # type: ignore[attr-defined]
    port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
