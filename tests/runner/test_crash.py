"""Crash atomicity with a real process: SIGKILL between apply and commit loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from log import open_log

from .conftest import stepping_clock, workload

CHILD = Path(__file__).with_name("crash_child.py")
BATCH = 50


def run_child(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHILD), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def applied_lsn(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT applied_lsn FROM partition").fetchone()[0])
    finally:
        conn.close()


async def test_process_killed_before_commit_resumes_at_applied_lsn_plus_one_with_same_digest(
    payloads: list[bytes], tmp_path: Path
) -> None:
    log_dir = tmp_path / "log"
    log = open_log(log_dir, fsync="never", clock=stepping_clock())
    await log.append_batch(payloads)
    await log.close()

    whole = run_child(log_dir, tmp_path / "whole.db", BATCH)
    assert whole.returncode == 0, whole.stderr
    reference = whole.stdout.split()[-1]

    crashed_db = tmp_path / "crashed.db"
    crashed = run_child(log_dir, crashed_db, BATCH, 4)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert "applied" not in crashed.stdout
    # batches 1-3 committed; batch 4 was fully written but not committed
    assert applied_lsn(crashed_db) == 3 * BATCH

    resumed = run_child(log_dir, crashed_db, BATCH)
    assert resumed.returncode == 0, resumed.stderr
    assert f"first-read {3 * BATCH + 1}" in resumed.stdout
    applied, digest = resumed.stdout.split()[-2:]
    assert int(applied) == len(payloads)
    assert digest == reference


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (not reaped yet: its parent is gone, init reaps it soon) is dead too
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z"):
            return False
    return True


async def test_process_killed_while_its_writer_process_writes_loses_that_batch_and_resumes(
    tmp_path: Path,
) -> None:
    """The writer process is inside batch K's transaction when its parent dies: it must exit
    without committing (a restarted parent must not find a dead one's batch committing under
    it), and the store resumes at applied_lsn + 1 with the digest of an uninterrupted run."""
    payloads = workload(invocations=500)
    log_dir = tmp_path / "log"
    log = open_log(log_dir, fsync="never", clock=stepping_clock())
    await log.append_batch(payloads)
    await log.close()
    size = 500  # more invocations per batch than commit inline: they go to the writer process

    whole = run_child(log_dir, tmp_path / "whole.db", size, "-", "process")
    assert whole.returncode == 0, whole.stderr
    reference = whole.stdout.split()[-1]

    crashed_db = tmp_path / "crashed.db"
    crashed = run_child(log_dir, crashed_db, size, 2, "process")
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    lines = dict(line.split(" ", 1) for line in crashed.stdout.splitlines())
    writer_pid, crash_ends = int(lines["writer"]), int(lines["crashing-batch-ends"])
    deadline = time.monotonic() + 10
    while pid_alive(writer_pid):
        assert time.monotonic() < deadline, "the writer process outlived its parent"
        await asyncio.sleep(0.05)
    resumed_at = applied_lsn(crashed_db)
    assert 0 < resumed_at < crash_ends  # the paused batch (and the one queued behind) are lost

    resumed = run_child(log_dir, crashed_db, size, "-", "process")
    assert resumed.returncode == 0, resumed.stderr
    assert f"first-read {resumed_at + 1}" in resumed.stdout
    applied, digest = resumed.stdout.split()[-2:]
    assert int(applied) == len(payloads)
    assert digest == reference
