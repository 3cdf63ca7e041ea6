"""A store with a writer process: large batches commit there; its failures reach the runner."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import io
import os
import signal
import sqlite3
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, ClassVar

import pytest
import uvloop
from structlog.testing import capture_logs

from processor.storage import Store, writer_process
from processor.storage.store import INLINE_WRITE_MAX_VIEWS, StoreWriteFailed, _writer_pragmas
from processor.storage.writer import REWIND_WAL
from processor.storage.writer_process import WriterProcessFailed, _grow_pipe

from .test_store import batch, created

LARGE = INLINE_WRITE_MAX_VIEWS + 1  # invocations in a batch that goes to the writer process


def large_batch(lsn: int) -> list[tuple[str, object]]:
    return [(f"inv_{lsn}_{i}", created(f"inv_{lsn}_{i}")) for i in range(LARGE)]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "state.db", writer_process=True)
    yield opened
    opened.close()


async def test_large_batches_commit_in_the_writer_process(store: Store, tmp_path: Path) -> None:
    assert store.writer_pid is not None and store.writer_pid != os.getpid()
    await store.write_batch(batch(1, *large_batch(1)))  # type: ignore[arg-type]
    await store.write_batch(batch(2, ("inv_small", created("inv_small"))))  # inline
    assert (await store.partition()).applied_lsn == 2
    views = await store.load_views(["inv_1_0", f"inv_1_{LARGE - 1}", "inv_small"])
    assert len(views) == 3
    # a fresh connection sees the same: the batch is committed in the file, not in a cache
    conn = sqlite3.connect(tmp_path / "state.db")
    try:
        assert conn.execute("SELECT COUNT(*) FROM invocations").fetchone()[0] == LARGE + 1
    finally:
        conn.close()


async def test_a_failed_write_in_the_writer_process_names_the_error_and_refuses_later_ones(
    store: Store, tmp_path: Path
) -> None:
    await store.write_batch(batch(1, *large_batch(1)))  # type: ignore[arg-type]
    vandal = sqlite3.connect(tmp_path / "state.db")
    vandal.execute(
        "CREATE TRIGGER vandal BEFORE INSERT ON invocations BEGIN SELECT RAISE(ABORT, 'no new "
        "invocations here'); END"
    )
    vandal.close()
    with pytest.raises(WriterProcessFailed, match="IntegrityError: no new invocations here"):
        await store.write_batch(batch(2, *large_batch(2)))  # type: ignore[arg-type]
    with pytest.raises(StoreWriteFailed, match="an earlier batch write failed"):
        await store.write_batch(batch(3, ("inv_small", created("inv_small"))))


async def test_a_killed_writer_process_fails_the_write_in_flight_with_how_it_ended(
    store: Store,
) -> None:
    assert store.writer_pid is not None
    store.process_pause_before_commit_s = 30.0
    pending = store.start_write(batch(1, *large_batch(1)))  # type: ignore[arg-type]
    os.kill(store.writer_pid, signal.SIGKILL)
    with pytest.raises(WriterProcessFailed, match=r"killed by SIGKILL.*resumes at applied_lsn"):
        await pending
    assert (await store.partition()).applied_lsn == 0  # it had not committed
    with pytest.raises(StoreWriteFailed):
        await store.write_batch(batch(2, ("inv_small", created("inv_small"))))


async def test_closing_the_store_stops_its_writer_process(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "state.db", writer_process=True)
    pid = store.writer_pid
    assert pid is not None
    await store.write_batch(batch(1, *large_batch(1)))  # type: ignore[arg-type]
    store.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # exited and reaped by close()


async def test_a_before_commit_hook_cannot_run_in_the_writer_process(store: Store) -> None:
    store.before_commit = lambda: None
    with pytest.raises(RuntimeError, match="open the store without writer_process"):
        await store.write_batch(batch(1, *large_batch(1)))  # type: ignore[arg-type]


@pytest.mark.skipif(not hasattr(fcntl, "F_GETPIPE_SZ"), reason="Linux pipes only")
def test_the_request_pipe_holds_a_whole_batch() -> None:
    """A batch the pipe cannot hold waits in the transport until the runner yields, and the
    writer then runs after the runner instead of beside it."""
    read_end, write_end = os.pipe()
    try:
        _grow_pipe(write_end)
        assert fcntl.fcntl(write_end, fcntl.F_GETPIPE_SZ) >= 256 * 1024
    finally:
        os.close(read_end)
        os.close(write_end)


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


async def _nothing() -> None:
    pass


def _open_fds_after_warming(run: Callable[[Coroutine[Any, Any, None]], None]) -> set[str]:
    """The fds open now, once the loop's own process-wide ones exist (uvloop keeps a pipe pair
    from its first loop on)."""
    run(_nothing())
    return _open_fds()


LOOPS: dict[str, Callable[[Coroutine[Any, Any, None]], None]] = {
    "asyncio": asyncio.run,
    "uvloop": uvloop.run,
}


class _OwnershipProbe(io.FileIO):
    """A pipe's file object that notes, when it closes its fd, whether the fd was still open
    (closed already, by the transport's own code, means a double close)."""

    seen: ClassVar[list[str]] = []

    def close(self) -> None:
        if not self.closed and self.closefd:
            try:
                os.fstat(self.fileno())
                self.seen.append("open")
            except OSError:
                self.seen.append("closed already")
        super().close()


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_a_store_closes_each_pipe_end_once_on_either_loop(
    loop: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvloop closes a pipe's fd itself and then the file object it was given: a file object
    owning the fd would close it a second time, maybe under another thread's new file."""

    def probing_fdopen(fd: int, mode: str, buffering: int = -1, closefd: bool = True) -> Any:
        return _OwnershipProbe(fd, mode.replace("b", ""), closefd=closefd)

    monkeypatch.setattr(os, "fdopen", probing_fdopen)
    _OwnershipProbe.seen.clear()

    async def open_write_close() -> None:
        store = await Store.open(tmp_path / "state.db", writer_process=True)
        await store.write_batch(batch(1, *large_batch(1)))  # type: ignore[arg-type]
        store.close()
        await asyncio.sleep(0.05)  # the transports finish closing on the loop's next turns

    before = _open_fds_after_warming(LOOPS[loop])
    LOOPS[loop](open_write_close())
    gc.collect()
    assert "closed already" not in _OwnershipProbe.seen
    assert _open_fds() <= before  # nothing leaked


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("loop", sorted(LOOPS))
@pytest.mark.parametrize("turns", [1, 2, 3])
def test_opening_a_store_cancelled_midway_leaks_no_fd_and_no_process(
    loop: str, turns: int, tmp_path: Path
) -> None:
    async def cancel_open() -> None:
        task = asyncio.ensure_future(Store.open(tmp_path / "state.db", writer_process=True))
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            (await task).close()
        await asyncio.sleep(0.05)

    before = _open_fds_after_warming(LOOPS[loop])
    LOOPS[loop](cancel_open())
    gc.collect()
    assert _open_fds() <= before


async def test_a_writer_process_that_cannot_start_leaves_the_store_writing_in_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_process, "_CHILD", str(tmp_path / "missing_child.py"))
    with capture_logs() as logs:
        store = await Store.open(tmp_path / "state.db", writer_process=True)
    try:
        assert store.writer_pid is None
        assert [log["event"] for log in logs] == ["state_writer_process_unavailable"]
        assert "did not start" in logs[0]["message"]
        await store.write_batch(batch(1, *large_batch(1)))  # type: ignore[arg-type]
        assert (await store.partition()).applied_lsn == 1
    finally:
        store.close()


async def test_the_writer_process_replies_before_it_checkpoints_and_reports_it_next_time(
    tmp_path: Path,
) -> None:
    """A COMMIT that leaves the WAL over its limit is answered at once; the checkpoint (and the
    WAL's rewind) runs after the reply, and the next write's reply says it ran."""
    path = str(tmp_path / "state.db")
    (await Store.open(path)).close()  # creates the schema
    process = await writer_process.WriterProcess.start(path, _writer_pragmas(), REWIND_WAL)
    try:
        update = [("UPDATE partition SET applied_lsn=? WHERE id=0", [1], False)]
        first = await process.write(update, 0.0, 0)  # any WAL is over a limit of 0 bytes
        assert first[1] is False  # not checkpointed yet when it answered
        await process.ping()  # the checkpoint ran after the reply
        update = [("UPDATE partition SET applied_lsn=? WHERE id=0", [2], False)]
        second = await process.write(update, 0.0, 1 << 30)
        assert second[1] is True
        third = await process.write(update, 0.0, 1 << 30)
        assert third[1] is False  # reported once
    finally:
        process.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT applied_lsn, leader_epoch FROM partition").fetchone() == (2, 0)
    finally:
        conn.close()
