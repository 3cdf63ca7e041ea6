"""A client's malformed HTTP request is not the daemon's error: no traceback at error level."""

from __future__ import annotations

import asyncio
import io
import logging

import structlog
from aiohttp import web
from aiohttp.test_utils import TestServer

from processor.telemetry import configure_logging


async def test_malformed_request_is_answered_400_without_an_error_traceback() -> None:
    root = logging.getLogger()
    handlers, level, structlog_config = list(root.handlers), root.level, structlog.get_config()
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    try:
        server = TestServer(web.Application())
        await server.start_server()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 10)
            writer.close()
        finally:
            await server.close()
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.configure(**structlog_config)
    assert answer.startswith(b"HTTP/1.0 400") or answer.startswith(b"HTTP/1.1 400")
    assert "Traceback" not in out.getvalue() and "Error handling request" not in out.getvalue()
