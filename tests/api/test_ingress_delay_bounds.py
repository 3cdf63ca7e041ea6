"""`?delay=` values beyond any representable time are a 400 that appends nothing: one used to be
appended and then fail every batch write of its partition, at every restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from .ingress_support import assert_rejected


async def test_delay_beyond_any_representable_time_is_400_and_does_not_stop_the_partition(
    tmp_path: Path,
) -> None:
    # 9.3e18 ms fits msgpack's uint64 but not SQLite's int64: it used to be appended and then
    # failed every batch write of the partition (at every restart, too).
    head = b"POST /Greeter/greet/send?delay=9300000000000000000 HTTP/1.1\r\n"
    await assert_rejected(tmp_path, head, "delay")


@pytest.mark.parametrize("delay", [b"infs", b"1e400ms", b"99300000000000000000"])
async def test_non_finite_or_huge_delay_is_400_not_500(tmp_path: Path, delay: bytes) -> None:
    head = b"POST /Greeter/greet/send?delay=" + delay + b" HTTP/1.1\r\n"
    await assert_rejected(tmp_path, head, "delay")


async def test_delay_given_twice_is_400_and_appends_nothing(tmp_path: Path) -> None:
    head = b"POST /Greeter/greet/send?delay=1s&delay=1h HTTP/1.1\r\n"
    await assert_rejected(tmp_path, head, "?delay=", "give it once")
