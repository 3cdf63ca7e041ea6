"""Writes that never pause (catch-up, replay, a busy live partition) still keep the WAL bounded."""

from __future__ import annotations

import itertools
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from processor.storage import Store, schema
from processor.storage import store as store_module
from processor.storage.store import INLINE_WRITE_MAX_VIEWS

from .test_store import batch, created

LIMIT = 256 * 1024


@pytest.fixture
def small_wal_limit(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A 256 KiB WAL limit, no background checkpoints (they could rewind the WAL by luck), and
    the names of the threads that checkpoint."""
    monkeypatch.setattr(schema, "WAL_SIZE_LIMIT", LIMIT)
    monkeypatch.setattr(store_module, "WAL_SIZE_LIMIT", LIMIT)
    monkeypatch.setattr(store_module, "_CHECKPOINT_EVERY_ROWS", 10**9)
    monkeypatch.setattr(store_module, "_CHECKPOINT_EVERY_BATCHES", 10**9)
    threads: list[str] = []
    checkpoint = store_module._checkpoint

    def recording(conn: sqlite3.Connection) -> bool:
        threads.append(threading.current_thread().name)
        return checkpoint(conn)

    monkeypatch.setattr(store_module, "_checkpoint", recording)
    return threads


def views(prefix: str, count: int) -> list[tuple[str, Any]]:
    return [(f"inv_{prefix}_{i}", created(f"inv_{prefix}_{i}")) for i in range(count)]


def file_size(path: Path) -> int:
    return path.stat().st_size  # a stat: not worth a thread in a test


async def write_60_batches_back_to_back(store: Store, wal: Path) -> list[int]:
    """Write 60 batches too big to commit on the loop; the WAL's size after each."""
    sizes: list[int] = []
    for n in range(60):
        await store.write_batch(batch(n + 1, *views(str(n), INLINE_WRITE_MAX_VIEWS * 2)))
        sizes.append(file_size(wal))
    assert (await store.partition()).applied_lsn == 60
    return sizes


def assert_wal_stayed_near_its_limit(sizes: list[int]) -> None:
    steps = [b - a for a, b in itertools.pairwise(sizes)]
    growth = max(steps)
    assert sum(step for step in steps if step > 0) > 4 * LIMIT  # it did rewind, several times
    assert max(sizes) <= LIMIT + 2 * growth


async def test_back_to_back_writer_thread_batches_keep_the_wal_near_its_limit(
    tmp_path: Path, small_wal_limit: list[str]
) -> None:
    store = await Store.open(tmp_path / "state.db")
    try:
        sizes = await write_60_batches_back_to_back(store, tmp_path / "state.db-wal")
        stored = await store.load_views([f"inv_{n}_0" for n in range(60)])
        assert len(stored) == 60
    finally:
        store.close()
    assert_wal_stayed_near_its_limit(sizes)
    assert small_wal_limit and threading.current_thread().name not in small_wal_limit


async def test_back_to_back_writer_process_batches_keep_the_wal_near_its_limit(
    tmp_path: Path, small_wal_limit: list[str]
) -> None:
    """The writer process checkpoints the WAL itself once it passes the limit (no checkpoint
    runs in this process: background checkpoints are off here)."""
    store = await Store.open(tmp_path / "state.db", writer_process=True)
    assert store.writer_pid is not None
    try:
        sizes = await write_60_batches_back_to_back(store, tmp_path / "state.db-wal")
    finally:
        store.close()
    assert_wal_stayed_near_its_limit(sizes)
    assert small_wal_limit == []  # nothing checkpointed in this process


async def test_small_batches_keep_the_wal_bounded_without_checkpointing_on_the_loop(
    tmp_path: Path, small_wal_limit: list[str]
) -> None:
    store = await Store.open(tmp_path / "state.db")
    wal = tmp_path / "state.db-wal"
    loop = threading.current_thread().name
    written_on: list[str] = []
    store.before_commit = lambda: written_on.append(threading.current_thread().name)
    sizes: list[int] = []
    try:
        for n in range(150):
            await store.write_batch(batch(n + 1, *views(str(n), 8)))
            sizes.append(wal.stat().st_size)
        assert (await store.partition()).applied_lsn == 150
    finally:
        store.close()

    steps = [b - a for a, b in itertools.pairwise(sizes)]
    assert sum(step for step in steps if step > 0) > 2 * LIMIT
    assert max(sizes) <= LIMIT + 2 * max(steps)
    assert small_wal_limit and loop not in small_wal_limit
    # Only the two batches around a rewind leave the loop (the one that checkpoints, the one
    # that rewinds); then batches commit inline again.
    runs = "".join("L" if name == loop else "W" for name in written_on).split("L")
    assert max(len(run) for run in runs) == 2


async def test_a_background_checkpoint_that_copied_everything_sends_the_next_write_to_the_writer(
    tmp_path: Path, small_wal_limit: list[str]
) -> None:
    store = await Store.open(tmp_path / "state.db")
    loop = threading.current_thread().name
    written_on: list[str] = []
    store.before_commit = lambda: written_on.append(threading.current_thread().name)
    try:
        await store.write_batch(batch(1, *views("a", 8)))
        # What the checkpointer thread runs every few batches, here with nothing writing.
        await store._ckpt.run(store._background_checkpoint)
        await store.write_batch(batch(2, *views("b", 8)))
        await store.write_batch(batch(3, *views("c", 8)))
    finally:
        store.close()
    assert written_on[0] == loop
    assert written_on[1] != loop  # the write that rewinds the WAL (and syncs its header)
    assert written_on[2] == loop


async def test_a_reader_that_never_ends_its_transaction_gets_the_writer_to_warn(
    tmp_path: Path, small_wal_limit: list[str]
) -> None:
    store = await Store.open(tmp_path / "state.db")
    await store.write_batch(batch(1, *views("first", 8)))
    outside = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    outside.execute("BEGIN")
    outside.execute("SELECT COUNT(*) FROM invocations").fetchone()  # the snapshot pins the WAL
    try:
        with capture_logs() as logs:
            for n in range(80):
                await store.write_batch(batch(n + 2, *views(str(n), INLINE_WRITE_MAX_VIEWS * 2)))
        warnings = [e for e in logs if e["event"] == "state_wal_not_rewinding"]
        assert warnings and warnings[0]["log_level"] == "warning"
        assert "read transaction" in warnings[0]["message"]
        # warned again only each time the WAL doubles, not at every batch
        assert len(warnings) < 10
        sizes = [w["wal_mib"] for w in warnings]
        assert all(later >= 2 * earlier for earlier, later in itertools.pairwise(sizes))
        outside.execute("COMMIT")
        for n in range(80, 90):
            await store.write_batch(batch(n + 2, *views(str(n), INLINE_WRITE_MAX_VIEWS * 2)))
        assert (tmp_path / "state.db-wal").stat().st_size <= 2 * LIMIT
        # Pinned again later: warned again from the start, not only past the old high mark.
        outside.execute("BEGIN")
        outside.execute("SELECT COUNT(*) FROM invocations").fetchone()
        with capture_logs() as later:
            for n in range(90, 110):
                await store.write_batch(batch(n + 2, *views(str(n), INLINE_WRITE_MAX_VIEWS * 2)))
        again = [e for e in later if e["event"] == "state_wal_not_rewinding"]
        assert again and again[0]["wal_mib"] < sizes[-1]
        outside.execute("COMMIT")
    finally:
        outside.close()
        store.close()
