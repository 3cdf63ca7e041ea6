"""Crash atomicity with a real process: SIGKILL between apply and commit loses nothing."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from log import open_log

from .conftest import stepping_clock

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
