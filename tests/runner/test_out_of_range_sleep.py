"""A deployment controls the numbers of its sleep entries. One beyond SQLite's signed 64-bit
INTEGER (msgpack carries up to 2^64 - 1) used to be applied as a timer whose row could not be
written: the batch failed, the partition stopped, and every restart failed on the same record. It
is a protocol error of the attempt instead (retryable), and the batch commits."""

from __future__ import annotations

import pytest

from log import MemoryLog
from processor.codec import encode
from processor.commands import AttemptEntry, AttemptPinned, Invoke
from processor.retry import RetryPolicy
from processor.runner import Runner
from processor.status import Status

from .conftest import StoreFactory, stepping_clock

INV = "inv_" + "0" * 32 + "7"


@pytest.mark.parametrize(
    "fields",
    [
        {"completion_id": 1, "wake_up_at": 2**63},
        {"completion_id": 2**64 - 1, "wake_up_at": 1_700_000_060_000},
    ],
)
async def test_sleep_entry_outside_int64_fails_the_attempt_and_the_partition_keeps_applying(
    open_store: StoreFactory, fields: dict[str, int]
) -> None:
    log = MemoryLog(clock=stepping_clock())
    await log.append_batch(
        [
            encode(Invoke(INV, "Greeter", "greet", b'"Ada"', RetryPolicy())),
            encode(AttemptPinned(INV, 1, "dp_" + "1" * 22)),
            encode(AttemptEntry(INV, 1, 1, {"kind": "sleep", **fields})),
        ]
    )
    store = await open_store()
    runner = Runner(log, store)
    assert await runner.catch_up() == 3
    view = await store.get_view(INV)
    assert view is not None and view.status is Status.BACKING_OFF
    assert view.last_failure is not None and "sleep entry 1" in view.last_failure.message
    assert view.journal_length == 1 and view.sleeping == frozenset()
    await log.close()
