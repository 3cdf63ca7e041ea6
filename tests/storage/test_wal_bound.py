"""Writes that never pause (catch-up, replay, a busy live partition) still keep the WAL bounded."""

from __future__ import annotations

import itertools
import sqlite3
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from processor.storage import Store, schema
from processor.storage import store as store_module
from processor.storage.digest import digest_conn
from processor.storage.store import INLINE_WRITE_MAX_VIEWS
from processor.storage.writer import rewind_wal

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


@dataclass
class WalState:
    size: int
    restarts: int  # the header's checkpoint sequence number: +1 each time the WAL starts over
    frames: int  # the frames written since it last started over


def wal_state(wal: Path) -> WalState:
    """Read the WAL file's header and count the frames that carry its salts (the frames of
    earlier rounds, still in the file, carry older salts)."""
    data = wal.read_bytes()  # a few hundred KiB at most here
    if len(data) < 32:
        return WalState(len(data), 0, 0)
    page_size, restarts = struct.unpack(">II", data[8:16])
    salts = data[16:24]
    frames, offset, frame_size = 0, 32, 24 + page_size
    while offset + frame_size <= len(data) and data[offset + 8 : offset + 16] == salts:
        frames += 1
        offset += frame_size
    return WalState(len(data), restarts, frames)


async def write_60_batches_back_to_back(store: Store, wal: Path) -> list[WalState]:
    """Write 60 batches too big to commit on the loop; the WAL's state after each."""
    states: list[WalState] = []
    for n in range(60):
        await store.write_batch(batch(n + 1, *views(str(n), INLINE_WRITE_MAX_VIEWS * 2)))
        await store.writer_settled()  # the writer process checkpoints after its reply
        states.append(wal_state(wal))
    assert (await store.partition()).applied_lsn == 60
    return states


def assert_wal_stayed_near_its_limit(states: list[WalState]) -> None:
    sizes = [s.size for s in states]
    growth = max(b - a for a, b in itertools.pairwise(sizes))
    assert states[-1].restarts - states[0].restarts >= 4  # it did rewind, several times
    assert max(sizes) <= LIMIT + 2 * growth


def assert_the_writer_rewound_the_wal_itself(states: list[WalState]) -> None:
    """Each time the WAL started over, it did so in the writer's own transaction right after its
    checkpoint (a frame or two), not in the next batch's (dozens of frames)."""
    rounds = [b for a, b in itertools.pairwise(states) if b.restarts != a.restarts]
    assert rounds
    assert all(s.frames <= 2 for s in rounds), [s.frames for s in rounds]
    assert max(s.frames for s in states) > 10  # what one batch writes


async def test_back_to_back_writer_thread_batches_keep_the_wal_near_its_limit(
    tmp_path: Path, small_wal_limit: list[str]
) -> None:
    store = await Store.open(tmp_path / "state.db")
    try:
        states = await write_60_batches_back_to_back(store, tmp_path / "state.db-wal")
        stored = await store.load_views([f"inv_{n}_0" for n in range(60)])
        assert len(stored) == 60
    finally:
        store.close()
    assert_wal_stayed_near_its_limit(states)
    assert_the_writer_rewound_the_wal_itself(states)
    assert small_wal_limit and threading.current_thread().name not in small_wal_limit


async def test_back_to_back_writer_process_batches_keep_the_wal_near_its_limit(
    tmp_path: Path, small_wal_limit: list[str]
) -> None:
    """The writer process checkpoints the WAL itself once it passes the limit (no checkpoint
    runs in this process: background checkpoints are off here)."""
    store = await Store.open(tmp_path / "state.db", writer_process=True)
    assert store.writer_pid is not None
    try:
        states = await write_60_batches_back_to_back(store, tmp_path / "state.db-wal")
    finally:
        store.close()
    assert_wal_stayed_near_its_limit(states)
    assert_the_writer_rewound_the_wal_itself(states)
    assert small_wal_limit == []  # nothing checkpointed in this process


async def test_small_batches_keep_the_wal_bounded_without_checkpointing_on_the_loop(
    tmp_path: Path, small_wal_limit: list[str]
) -> None:
    store = await Store.open(tmp_path / "state.db")
    wal = tmp_path / "state.db-wal"
    loop = threading.current_thread().name
    written_on: list[str] = []
    store.before_commit = lambda: written_on.append(threading.current_thread().name)
    states: list[WalState] = []
    try:
        for n in range(150):
            await store.write_batch(batch(n + 1, *views(str(n), 8)))
            states.append(wal_state(wal))
        assert (await store.partition()).applied_lsn == 150
    finally:
        store.close()

    sizes = [s.size for s in states]
    assert states[-1].restarts - states[0].restarts >= 2
    assert max(sizes) <= LIMIT + 2 * max(b - a for a, b in itertools.pairwise(sizes))
    assert small_wal_limit and loop not in small_wal_limit
    # Only the batch that checkpoints leaves the loop (the writer rewinds the WAL right after
    # it); the next batch commits inline again.
    runs = "".join("L" if name == loop else "W" for name in written_on).split("L")
    assert max(len(run) for run in runs) == 1


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


async def test_the_wal_rewind_transaction_starts_the_wal_over_and_changes_no_state(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    store = await Store.open(path)  # open, so that its WAL stays (the last close removes it)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        written = batch(1, *views("a", 8))
        written.leader_epoch = 3
        await store.write_batch(written)
        schema.configure(conn)
        before = digest_conn(conn)
        full = wal_state(path.with_name("state.db-wal"))
        busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert (busy, frames) == (0, copied)
        rewind_wal(conn)
        after = wal_state(path.with_name("state.db-wal"))
        assert after.restarts == full.restarts + 1
        assert 1 <= after.frames <= 2 < full.frames
        assert digest_conn(conn) == before
        assert conn.execute("SELECT leader_epoch FROM partition").fetchone() == (3,)
    finally:
        conn.close()
        store.close()
