"""Benchmark of the durable log: append throughput under group commit, and sequential reads.

    python bench/log_bench.py [--quick] [--json]      (also: processor bench log --quick)

Appends 128-byte records from 1, 64 and 1024 concurrent appender tasks with fsync `always` and
`never`, and compares each with a naive baseline: a plain file with one `write` (+ one
`fdatasync` for `always`) per record, measured right before that run (disk latency on a shared
machine swings several-fold within a minute, so a baseline from the start of the run would skew
later ratios). Then reads the log back sequentially after reopening it. Next to each rate, the
process CPU time per record (`cpu_us_per_record`, all threads): less sensitive to other load on
the machine than the wall-clock rate. The log is configured as the daemon configures it
(`inline_fsync_under_us`, see log/file_log.py) and runs on the daemon's event loop (uvloop).
Progress goes to stderr; the table (or JSON lines with --json) to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import Result, emit

from log import FileLog
from processor.eventloop import run_asyncio
from processor.partition import INLINE_FSYNC_UNDER_US

SUITE = "log"
RECORD_BYTES = 128


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def naive_baseline(directory: Path, seconds: float, sync: bool) -> float:
    """Records/s of one write (+ one fdatasync) per record to a plain file."""
    path = directory / "naive.dat"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    record = os.urandom(RECORD_BYTES + 24)
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    try:
        while True:
            for _ in range(64 if not sync else 1):
                os.write(fd, record)
                if sync:
                    os.fdatasync(fd)
                count += 1
            if time.perf_counter() >= deadline:
                break
    finally:
        os.close(fd)
        path.unlink()
    return count / (time.perf_counter() - start)


async def append_run(
    directory: Path, fsync: str, appenders: int, seconds: float
) -> tuple[float, float]:
    """(records/s, CPU seconds per record)."""
    log = FileLog(directory, fsync=fsync, inline_fsync_under_us=INLINE_FSYNC_UNDER_US)
    payload = os.urandom(RECORD_BYTES)
    counts = [0] * appenders
    stop = False

    async def appender(i: int) -> None:
        n = 0
        while not stop:
            await log.append(payload)
            n += 1
        counts[i] = n

    tasks = [asyncio.create_task(appender(i)) for i in range(appenders)]
    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.sleep(seconds)
    stop = True
    await asyncio.gather(*tasks)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    await log.close()
    assert log.tail() == sum(counts), "every acknowledged append is in the log"
    return sum(counts) / elapsed, cpu / max(1, sum(counts))


async def read_run(directory: Path, records: int) -> tuple[float, float]:
    """(records/s, CPU seconds per record)."""
    log = FileLog(directory, fsync="never")
    payload = os.urandom(RECORD_BYTES)
    for _ in range(0, records, 10_000):
        await log.append_batch([payload] * 10_000)
    await log.close()
    log = FileLog(directory, fsync="never")  # reopen: reads come from the segment files
    start, cpu = time.perf_counter(), time.process_time()
    lsn, seen = 1, 0
    while True:
        batch = await log.read_batch(lsn, 4096)
        if not batch:
            break
        seen += len(batch)
        lsn = batch[-1].lsn + 1
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    await log.close()
    assert seen == log.tail()
    return seen / elapsed, cpu / seen


async def run(quick: bool, root: Path) -> list[Result]:
    seconds = 1.0 if quick else 3.0
    results: list[Result] = []
    for fsync in ("always", "never"):
        for appenders in (1, 64, 1024):
            progress(f"naive baseline, then append, fsync={fsync}, appenders={appenders} ...")
            baseline = naive_baseline(root, seconds / 2, sync=fsync == "always")
            directory = root / f"append-{fsync}-{appenders}"
            rate, cpu = await append_run(directory, fsync, appenders, seconds)
            shutil.rmtree(directory)
            params = {
                "fsync": fsync,
                "appenders": appenders,
                "record_bytes": RECORD_BYTES,
                "inline_fsync_under_us": INLINE_FSYNC_UNDER_US,
            }
            results.append(Result(SUITE, "append_records_per_s", rate, "1/s", params, baseline))
            mb = rate * RECORD_BYTES / 1e6
            results.append(Result(SUITE, "append_mb_per_s", mb, "MB/s", dict(params)))
            results.append(Result(SUITE, "cpu_us_per_record", cpu * 1e6, "us", dict(params)))
    records = 300_000 if quick else 2_000_000
    progress(f"sequential read of {records} records ...")
    rate, cpu = await read_run(root / "read", records)
    params = {"records": records, "record_bytes": RECORD_BYTES}
    results.append(Result(SUITE, "read_records_per_s", rate, "1/s", params))
    results.append(Result(SUITE, "cpu_us_per_record", cpu * 1e6, "us", {"read": True, **params}))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short run (well under a minute)")
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    parser.add_argument("--dir", type=Path, help="where to put the logs (default: a temp dir)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="log-bench-", dir=args.dir))
    try:
        results = run_asyncio(run(args.quick, root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    emit(results, args.json)


if __name__ == "__main__":
    main()
