"""Header values that are not UTF-8 (aiohttp keeps them as lone surrogates) are a 400 naming the
header, not a 500 from encoding the log record or hashing the idempotency key."""

from __future__ import annotations

from pathlib import Path

from .ingress_support import assert_rejected


async def test_header_value_that_is_not_utf8_is_400_naming_the_header(tmp_path: Path) -> None:
    head = b"POST /Greeter/greet/send HTTP/1.1\r\nx-trace: ab\xff\xfe\r\n"
    await assert_rejected(tmp_path, head, "x-trace", "UTF-8")


async def test_idempotency_key_that_is_not_utf8_is_400(tmp_path: Path) -> None:
    head = b"POST /Greeter/greet HTTP/1.1\r\nidempotency-key: k\xff\r\n"
    await assert_rejected(tmp_path, head, "idempotency-key", "UTF-8")
