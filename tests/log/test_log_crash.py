"""Crash safety for real: SIGKILL a process appending with fsync=always, then check the log."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from log import open_log
from tests.log.log_helpers import payload_for

REPO = Path(__file__).resolve().parents[2]


def run_child_and_kill(
    directory: Path, rng: random.Random, inline_us: int
) -> tuple[int, list[int]]:
    """Start the appender, SIGKILL it at a random moment; return (tail at start, acked LSNs)."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.log.log_crash_child", str(directory), str(inline_us)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert child.stdout is not None
    first = child.stdout.readline()
    if not first.startswith("ready"):
        child.kill()
        pytest.fail(f"crash child did not start: {first!r} {child.communicate()[1]}")
    start_tail = int(first.split()[1])
    acked: list[int] = []

    def collect() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith("ack "):
                acked.append(int(line[4:]))

    reader = threading.Thread(target=collect)
    reader.start()
    deadline = time.monotonic() + 5
    while len(acked) < 20 and time.monotonic() < deadline:  # wait until it is really appending
        time.sleep(0.005)
    time.sleep(rng.uniform(0.0, 0.3))
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    reader.join(timeout=10)
    assert child.returncode == -signal.SIGKILL, child.stderr.read() if child.stderr else ""
    return start_tail, acked


async def verify_and_continue(directory: Path, acked: list[int]) -> int:
    log = open_log(directory, fsync="always")
    try:
        tail = log.tail()
        assert acked, "the child acknowledged nothing before it was killed"
        assert max(acked) <= tail, f"acknowledged LSN {max(acked)} lost (tail {tail})"
        lsn = log.first_lsn()
        assert lsn == 1
        async for record in log.read(1):
            assert record.lsn == lsn
            assert record.payload == payload_for(lsn, 100), f"LSN {lsn} is not intact"
            lsn += 1
        assert lsn == tail + 1
        assert await log.append(payload_for(tail + 1, 100)) == tail + 1
        return tail + 1
    finally:
        await log.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("inline_us", [0, 1_000_000], ids=["fsync-in-thread", "fsync-inline"])
def test_acknowledged_appends_survive_sigkill_at_random_moments(
    tmp_path: Path, inline_us: int
) -> None:
    rng = random.Random(os.getpid())
    directory = tmp_path / "log"
    tail = 0
    for _ in range(5):
        start_tail, acked = run_child_and_kill(directory, rng, inline_us)
        assert start_tail == tail
        assert len(acked) == len(set(acked)), "an LSN was acknowledged twice"
        assert min(acked) == tail + 1
        tail = asyncio.run(verify_and_continue(directory, acked))
    assert len(list(directory.glob("*.seg"))) > 1  # the kills also hit rolled segments
