"""A partition's state is a function of its log: batch size, cache size and replay do not matter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import processor.storage.store as store_module
from log import MemoryLog, open_log
from processor.actions import Action
from processor.replay import replay
from processor.runner import Runner
from processor.storage import Store
from processor.storage.writer_process import WriterProcess

from .conftest import StoreFactory, stepping_clock


async def assert_same_digest_at_sizes(
    memlog: MemoryLog, open_store: StoreFactory, sizes: tuple[int, ...], *, writer_process: bool
) -> None:
    """Applying `memlog` in batches of each size ends at the digest of batches of 1000."""
    reference = await open_store("reference.db")
    await Runner(memlog, reference, batch_size=1000).catch_up()
    for size in sizes:
        store = await open_store(f"sized-{size}.db", writer_process=writer_process)
        assert (store.writer_pid is not None) == writer_process
        runner = Runner(memlog, store, batch_size=size)
        await runner.catch_up()
        assert runner.applied_lsn == memlog.tail()
        assert await store.digest() == await reference.digest()


async def test_batch_sizes_1_7_and_1000_give_the_same_digest(
    memlog: MemoryLog, open_store: StoreFactory
) -> None:
    digests = set()
    for size in (1, 7, 1000):
        store = await open_store(f"state-{size}.db")
        runner = Runner(memlog, store, batch_size=size)
        await runner.catch_up()
        assert runner.applied_lsn == memlog.tail()
        digests.add(await store.digest())
    assert len(digests) == 1


async def test_pipelined_batches_through_the_writer_thread_give_the_same_digest(
    memlog: MemoryLog, open_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small batches usually commit inline on the loop (nothing overlaps then); sent to the
    writer thread, each batch is planned and applied while the one before it is still being
    written, so later batches see earlier ones only through the runner's overlay."""
    monkeypatch.setattr(store_module, "INLINE_WRITE_MAX_VIEWS", 0)
    await assert_same_digest_at_sizes(memlog, open_store, (1, 7, 64), writer_process=False)


async def test_batches_written_by_the_writer_process_give_the_same_digest(
    memlog: MemoryLog, open_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer process runs the same planned statements as the writer thread: every batch
    through it (none inline), pipelined, at any batch size, ends at the same state."""
    monkeypatch.setattr(store_module, "INLINE_WRITE_MAX_VIEWS", 0)
    await assert_same_digest_at_sizes(memlog, open_store, (1, 7, 64, 1000), writer_process=True)


async def test_small_batches_inline_and_large_ones_in_the_writer_process_interleave_safely(
    memlog: MemoryLog, open_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches of a few invocations commit on the loop's connection, larger ones in the writer
    process: two connections take turns on one file, and none commits out of order."""
    reference = await open_store("reference.db")
    await Runner(memlog, reference, batch_size=1000).catch_up()
    sent: list[int] = []
    write = WriterProcess.write

    def counting(self: WriterProcess, *args: Any) -> Any:
        sent.append(1)
        return write(self, *args)

    monkeypatch.setattr(WriterProcess, "write", counting)
    store = await open_store("mixed.db", writer_process=True)
    runner = Runner(memlog, store)
    batches = 0
    for size in (3, 300, 1, 150, 40, 1000):
        runner.batch_size = size
        runner.until_lsn = min(memlog.tail(), runner.applied_lsn + 2 * size + 5)
        before = runner.records_applied
        await runner.catch_up()
        batches += (runner.records_applied - before + size - 1) // size
    runner.until_lsn = None
    await runner.catch_up()
    assert runner.applied_lsn == memlog.tail()
    assert 0 < len(sent) < batches  # both paths were taken
    assert await store.digest() == await reference.digest()


async def test_replaying_a_live_partitions_log_gives_the_live_digest(
    payloads: list[bytes], tmp_path: Path
) -> None:
    log_dir = tmp_path / "log"
    live_log = open_log(log_dir, fsync="never", clock=stepping_clock())
    live = await Store.open(tmp_path / "state.db")
    executed: list[Action] = []

    async def sink(actions: list[Action]) -> None:
        executed.extend(actions)

    try:
        runner = Runner(live_log, live, sink=sink, batch_size=64)
        # appended in uneven chunks while the live runner keeps up, as a leader would
        for start in range(0, len(payloads), 97):
            await live_log.append_batch(payloads[start : start + 97])
            await runner.catch_up()
        live_digest = await live.digest()
        assert executed  # the live runner is a leader: it executed actions

        reader = open_log(log_dir, readonly=True)  # beside the open writer
        try:
            result = await replay(reader, log_name=str(log_dir), live_state=tmp_path / "state.db")
        finally:
            await reader.close()
    finally:
        live.close()
        await live_log.close()
    assert result.records == len(payloads) == result.last_lsn
    assert result.digest == live_digest == result.live_digest
    assert result.verified is True and result.divergence is None
