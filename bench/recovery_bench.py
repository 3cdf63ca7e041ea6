"""Recovery: how long a partition with a long log takes to become ready after a restart.

    python bench/recovery_bench.py [--quick] [--json] [--records N] [--tail T]
    (also: processor bench recovery)

The log of partition 0 is written directly with the log API and the codec (bench/workload.py's
`simple` happy path: invoke → pinned → one entry → completed, 4 records per invocation), N records
(1M; `--quick` 120k). Then, twice, a real `Partition` (the daemon's: FileLog + SQLite store +
runner + leader) is started and timed from `run()` to ready (`task_status.started()`: the runner
has applied the whole log and the leader has taken over):

1. tail replay: `state.db` present, applied up to N − T (prepared by a runner with `until_lsn`),
   so the last T records (100k) are replayed;
2. full rebuild: `state.db` deleted, all N records are applied from LSN 1.

The baseline of the rebuild is a plain sequential read of the same log (no decoding, no SQLite):
the ceiling the rebuild is compared with.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

import anyio
from _common import Result, emit
from harness import progress
from workload import simple

from log import open_log
from processor.config import LogConfig
from processor.partition import Partition
from processor.registry import Registry
from processor.runner import Runner
from processor.storage.store import Store
from processor.telemetry import configure_logging

SUITE = "recovery"
APPEND_CHUNK = 1000


async def write_log(path: Path, records: int) -> int:
    log = open_log(path, fsync="never")
    chunk: list[bytes] = []
    try:
        for payload in simple(records // 4 + 1, seed=11):
            chunk.append(payload)
            if len(chunk) == APPEND_CHUNK:
                await log.append_batch(chunk)
                chunk = []
                if log.tail() >= records:
                    break
        if chunk and log.tail() < records:
            await log.append_batch(chunk[: records - log.tail()])
        return log.tail()
    finally:
        await log.close()


async def apply_until(log_dir: Path, db: Path, lsn: int) -> None:
    log = open_log(log_dir, readonly=True)
    store = await Store.open(db)
    try:
        await Runner(log, store, until_lsn=lsn).catch_up()
    finally:
        store.close()
        await log.close()


async def scan(log_dir: Path) -> tuple[int, float]:
    log = open_log(log_dir, readonly=True)
    try:
        began, lsn, count = time.perf_counter(), 0, 0
        while True:
            batch = await log.read_batch(lsn + 1, 1000)
            if not batch:
                return count, time.perf_counter() - began
            count += len(batch)
            lsn = batch[-1].lsn
    finally:
        await log.close()


async def time_to_ready(data_dir: Path, registry: Registry) -> float:
    partition = Partition(0, data_dir, registry, log_config=LogConfig())
    async with anyio.create_task_group() as tg:
        began = time.perf_counter()
        await tg.start(partition.run)
        ready = time.perf_counter() - began
        partition.stop()
    return ready


def remove_store(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


async def bench(records: int, tail: int) -> list[Result]:
    base = Path(tempfile.mkdtemp(prefix="recovery-bench-"))
    try:
        log_dir = base / "partitions" / "0" / "log"
        db = base / "partitions" / "0" / "state.db"
        began = time.perf_counter()
        total = await write_log(log_dir, records)
        progress(f"recovery: wrote {total:,} records in {time.perf_counter() - began:.1f} s")
        await apply_until(log_dir, db, total - tail)
        registry = Registry(base / "deployments.db")
        try:
            tail_s = await time_to_ready(base, registry)
            progress(f"  tail replay of {tail:,} records: {tail_s:.2f} s")
            remove_store(db)
            rebuild_s = await time_to_ready(base, registry)
            progress(f"  full rebuild of {total:,} records: {rebuild_s:.2f} s")
        finally:
            registry.close()
        scanned, scan_s = await scan(log_dir)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    params = {"log_records": total}
    return [
        Result(SUITE, "tail_replay_s", tail_s, "s", {**params, "tail_records": tail}),
        Result(
            SUITE,
            "tail_replay_records_per_s",
            tail / tail_s,
            "1/s",
            {**params, "tail_records": tail},
        ),
        Result(SUITE, "rebuild_s", rebuild_s, "s", params),
        Result(SUITE, "rebuild_records_per_s", total / rebuild_s, "1/s", params, scanned / scan_s),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="120k records (under a minute)")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    parser.add_argument("--records", type=int, default=None)
    parser.add_argument("--tail", type=int, default=100_000)
    args = parser.parse_args(argv)
    records = args.records or (120_000 if args.quick else 1_000_000)
    tail = min(args.tail, records)
    configure_logging("warning", "console")  # stdout carries only the table / JSON lines
    emit(asyncio.run(bench(records, tail)), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
