"""Benchmark `apply`: the runner applying a realistic workload in follower mode, against SQLite.

    python bench/apply_bench.py [--quick] [--json]        (also: processor bench apply)

1. A seeded workload (bench/workload.py: invokes, entries, completions, failures with retries,
   pauses/resumes, sleeps and timers, cancels, kills, purges) is written to a FileLog.
2. The runner applies it with actions dropped, its store writing large batches in a writer
   process as the daemon's does: commands/s and each batch transaction's BEGIN→COMMIT time
   (p50/p99). For comparison, the same with the writer thread (the store's in-process writer).
3. The same records through a naive baseline in the same run: one awaited aiosqlite call per SQL
   statement, one transaction per command (what "just use aiosqlite" gives).
4. `replay` rebuilds the same log into a fresh store: records/s.
   Also: the runner with batches of 8 commands, each committed before the next is read (a live
   partition's group commits, written on the loop), whose cost per command is mostly the
   per-batch fixed cost; and the frontier: the same log in catch-up batches of 500 and 1,000
   commands, commands/s against commit p99, beside the 300 of step 2 (bigger batches fold more
   writes of one invocation into one row but commit later).
   And the issue's yardstick on the same records: a simple two-table apply loop
   (`reference_loop.py`), with SQLite and in Python alone, so the figures above can be read
   against what this machine gives a loop that does almost nothing per record.
5. Peak RSS of child processes applying a small and a 10x larger happy-path log (the runner's
   process plus its writer process): memory must not grow with history (the view cache is
   bounded, journals stay on disk).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgpack

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reference_loop
from _common import Result, emit
from workload import WorkloadConfig, generate, simple

from log import open_log
from processor.codec import decode
from processor.commands import AnnounceLeader
from processor.replay import replay
from processor.runner import LIVE_BATCH_SIZE, Runner, tune_switch_interval
from processor.state_machine import apply
from processor.state_machine.types import ApplyContext
from processor.storage import BatchWrites, Store
from processor.storage.view_codec import decode_view, encode_view

SUITE = "apply"
BATCH_SIZE = LIVE_BATCH_SIZE  # the runner's batch (Runner's default)
SMALL_BATCH = 8  # a live partition's batches: a few commands per group commit
# The commit-latency / throughput trade-off: the same log at other catch-up batch sizes than
# BATCH_SIZE (whose run is the frontier's last point).
FRONTIER_BATCHES = (500, 1000)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def peak_rss_mb(pid: int | str = "self") -> float:
    """The peak RSS of this process (or `pid`) since it started its program.

    Not `ru_maxrss` where /proc is there: Linux carries a process's peak over `fork` + `exec`, so a
    child measured that way reports at least its parent's size when it was spawned (this bench's
    parent holds the whole workload: every child then read ~380 MB, the parent's size). `VmHWM` is
    the peak resident set of the current program (`exec` starts it afresh)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def write_log(path: Path, payloads: Iterable[bytes]) -> int:
    log = open_log(path, fsync="never")
    chunk: list[bytes] = []
    try:
        for p in payloads:
            chunk.append(p)
            if len(chunk) == 1000:
                await log.append_batch(chunk)
                chunk = []
        if chunk:
            await log.append_batch(chunk)
        return log.tail()
    finally:
        await log.close()


async def apply_runner(
    log_dir: Path,
    db: Path,
    batch_size: int = BATCH_SIZE,
    until_lsn: int | None = None,
    writer_process: bool = True,
    peaks: dict[str, float] | None = None,
    live: bool = False,
) -> tuple[int, float, list[float], float]:
    """Apply the log in follower mode: (records, wall seconds, commit latencies, CPU seconds).

    The store writes as the daemon's does: large batches in its writer process (`writer_process`
    False: in a thread of this process, for comparison). CPU seconds (all threads of this
    process, not the writer process) are reported too because on a shared machine the
    wall-clock rate mostly measures how much CPU the other processes left us. `peaks` receives
    the writer process's peak RSS (`writer_rss_mb`). `live`: one batch at a time, each committed
    before the next is read (`Runner.step`), as a live partition at the log's tail does; else the
    catch-up pipeline."""
    latencies: list[float] = []
    log = open_log(log_dir, readonly=True)
    store = await Store.open(db, writer_process=writer_process)
    try:
        runner = Runner(
            log,
            store,
            batch_size=batch_size,
            until_lsn=until_lsn,
            on_batch=lambda n, s: latencies.append(s),
        )
        began, cpu = time.perf_counter(), time.process_time()
        if live:
            while await runner.step():
                pass
        else:
            await runner.catch_up()
        wall, cpu = time.perf_counter() - began, time.process_time() - cpu
        if peaks is not None and store.writer_pid is not None:
            peaks["writer_rss_mb"] = peak_rss_mb(store.writer_pid)
        return runner.records_applied, wall, latencies, cpu
    finally:
        store.close()
        await log.close()


_KEY_OF = "(SELECT key FROM invocations WHERE id=?)"
_UPSERT = (
    "INSERT INTO invocations (id, service, handler, status, created_at, modified_at, "
    "pinned_deployment, completed_at, idempotency_key, view) VALUES (?,?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT (id) DO UPDATE SET status=excluded.status, modified_at=excluded.modified_at, "
    "pinned_deployment=excluded.pinned_deployment, completed_at=excluded.completed_at, "
    "view=excluded.view"
)


def naive_statements(w: BatchWrites) -> list[tuple[str, tuple[Any, ...]]]:
    """The statements of one command's writes, one per row, the way a first version would write
    them (an upsert by id; the other rows find the invocation's key by its id)."""
    out: list[tuple[str, tuple[Any, ...]]] = []
    for inv in w.purged:
        for table in ("journal", "events", "timers"):
            out.append((f"DELETE FROM {table} WHERE inv_key={_KEY_OF}", (inv,)))
        out.append(("DELETE FROM invocations WHERE id=?", (inv,)))
    for v in w.views.values():
        if v is not None:
            row = (v.id, v.service, v.handler, v.status.value, v.created_at, v.modified_at)
            extra = (v.pinned_deployment, v.completed_at, v.idempotency_key, encode_view(v))
            out.append((_UPSERT, row + extra))
    for inv in w.cleared_timers:
        out.append((f"DELETE FROM timers WHERE inv_key={_KEY_OF}", (inv,)))
    for inv, timers in w.timers.items():
        for (kind, key), fire_at in timers.items():
            if fire_at is None:
                sql = f"DELETE FROM timers WHERE inv_key={_KEY_OF} AND kind=? AND key=?"
                out.append((sql, (inv, kind, key)))
            else:
                sql = f"INSERT OR REPLACE INTO timers VALUES ({_KEY_OF},?,?,?,?)"
                out.append((sql, (inv, kind, key, inv, fire_at)))
    for inv, rows in w.journal.items():
        for idx, entry, at in rows:
            sql = f"INSERT INTO journal VALUES ({_KEY_OF},?,?,?,?)"
            out.append((sql, (inv, idx, inv, msgpack.packb(entry), at)))
    for inv, evs in w.events.items():
        for seq, (kind, at, data) in evs.items():
            sql = f"INSERT OR REPLACE INTO events VALUES ({_KEY_OF},?,?,?,?,?)"
            out.append((sql, (inv, seq, inv, kind, at, msgpack.packb(data))))
    sql = "UPDATE partition SET applied_lsn=? WHERE id=0"
    out.append((sql, (w.applied_lsn,)))
    return out


async def apply_naive(log_dir: Path, db: Path, limit: int) -> tuple[int, float]:
    """One awaited aiosqlite call per statement, one transaction per command."""
    import aiosqlite

    (await Store.open(db)).close()  # the same schema
    log = open_log(log_dir, readonly=True)
    records = await log.read_batch(1, limit)
    await log.close()
    began = time.perf_counter()
    async with aiosqlite.connect(db, isolation_level=None) as conn:
        await conn.execute("PRAGMA synchronous=NORMAL")
        for rec in records:
            cmd = decode(rec.payload, rec.lsn)
            inv = "" if isinstance(cmd, AnnounceLeader) else cmd.invocation_id
            view = None
            if inv:
                cur = await conn.execute("SELECT view FROM invocations WHERE id=?", (inv,))
                row = await cur.fetchone()
                view = decode_view(row[0]) if row else None
            t = apply(view, cmd, ApplyContext(rec.lsn, rec.timestamp_ms))
            w = BatchWrites(applied_lsn=rec.lsn)
            w.add(inv, t)
            await conn.execute("BEGIN IMMEDIATE")
            for sql, args in naive_statements(w):
                await conn.execute(sql, args)
            await conn.execute("COMMIT")
    return len(records), time.perf_counter() - began


async def reference_speeds(log_dir: Path, db: Path) -> tuple[float, list[float], float]:
    """The simple two-table loop over the same records: records/s and batch latencies with
    SQLite, records/s in Python alone."""
    log = open_log(log_dir, readonly=True)
    try:
        records = [(r.lsn, r.payload) for r in await log.read_batch(1, log.tail())]
    finally:
        await log.close()
    rate, latencies = reference_loop.with_sqlite(records, db, BATCH_SIZE)
    return rate, latencies, reference_loop.python_only(records, BATCH_SIZE)


async def replay_speed(log_dir: Path) -> tuple[int, float]:
    log = open_log(log_dir, readonly=True)
    try:
        result = await replay(log, log_name=str(log_dir))
        return result.records, result.seconds
    finally:
        await log.close()


def rss_child(log_dir: str) -> None:
    tune_switch_interval()
    peaks: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        records, seconds, _, _ = asyncio.run(
            apply_runner(Path(log_dir), Path(tmp) / "state.db", peaks=peaks)
        )
    runner_mb, writer_mb = peak_rss_mb(), peaks.get("writer_rss_mb", 0.0)
    print(
        json.dumps(
            {
                "records": records,
                "seconds": seconds,
                "peak_rss_mb": runner_mb + writer_mb,  # the two processes' peaks, summed
                "runner_rss_mb": runner_mb,
                "writer_rss_mb": writer_mb,
            }
        )
    )


def measure_rss(log_dir: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(log_dir)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main_async(quick: bool, as_json: bool) -> int:
    invocations = 3_000 if quick else 100_000
    baseline_records = 2_000 if quick else 20_000
    rss_small, rss_large = (3_000, 30_000) if quick else (100_000, 1_000_000)
    small_records = 20_000 if quick else 100_000
    params = {"invocations": invocations, "batch_size": BATCH_SIZE, "seed": 7}
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="apply-bench-") as tmp:
        base = Path(tmp)
        t0 = time.perf_counter()
        total = await write_log(base / "log", generate(WorkloadConfig(invocations, seed=7)))
        progress(
            f"workload: {total:,} commands, {invocations:,} invocations "
            f"({time.perf_counter() - t0:.1f} s to generate)"
        )
        n, secs, lat, cpu = await apply_runner(base / "log", base / "state.db")
        rate = n / secs
        progress(
            f"runner: {n:,} commands in {secs:.2f} s ({cpu:.2f} s CPU: "
            f"{n / cpu:,.0f} commands per CPU-second) over {len(lat)} batches"
        )
        tn, tsecs, tlat, _ = await apply_runner(
            base / "log", base / "thread.db", writer_process=False
        )
        progress(
            f"runner, writer thread instead of process: {tn:,} commands in {tsecs:.2f} s "
            f"(commit p99 {pct(tlat, 0.99) * 1000:.1f} ms)"
        )
        sn, ssecs, slat, scpu = await apply_runner(
            base / "log", base / "small.db", SMALL_BATCH, until_lsn=small_records, live=True
        )
        progress(
            f"runner, batches of {SMALL_BATCH}: {sn:,} commands in {ssecs:.2f} s "
            f"({scpu:.2f} s CPU: {sn / scpu:,.0f} commands per CPU-second; "
            f"{scpu / sn * 1e6:.0f} us CPU per command)"
        )
        frontier = []
        for size in FRONTIER_BATCHES:
            fn, fsecs, flat, _ = await apply_runner(
                base / "log", base / f"frontier-{size}.db", size
            )
            fp50, fp99 = pct(flat, 0.5) * 1000, pct(flat, 0.99) * 1000
            frontier.append((size, fn / fsecs, fp99))
            progress(
                f"runner, batches of {size}: {fn / fsecs:,.0f} commands/s, "
                f"commit p50 {fp50:.1f} ms, p99 {fp99:.1f} ms"
            )
            fparams: dict[str, Any] = {**params, "batch_size": size, "commands": fn}
            fparams.update(commit_p50_ms=round(fp50, 2), commit_p99_ms=round(fp99, 2))
            results.append(
                Result(SUITE, f"frontier_b{size}_commands_per_s", fn / fsecs, "1/s", fparams)
            )
        bn, bsecs = await apply_naive(base / "log", base / "naive.db", baseline_records)
        brate = bn / bsecs
        progress(f"naive baseline: {bn:,} commands in {bsecs:.2f} s")
        results.append(
            Result(
                SUITE,
                "commands_per_s",
                rate,
                "1/s",
                {
                    **params,
                    "commands": n,
                    "baseline_commands": bn,
                    "per_cpu_s": round(n / cpu),
                    "writer_thread_per_s": round(tn / tsecs),
                    "writer_thread_commit_p99_ms": round(pct(tlat, 0.99) * 1000, 2),
                },
                baseline=brate,
            )
        )
        small_params: dict[str, Any] = {**params, "batch_size": SMALL_BATCH, "commands": sn}
        small_params["per_cpu_s"] = round(sn / scpu)
        small_params["commit_p99_ms"] = round(pct(slat, 0.99) * 1000, 2)
        results.append(Result(SUITE, "small_batch_commands_per_s", sn / ssecs, "1/s", small_params))
        p50, p99 = pct(lat, 0.5) * 1000, pct(lat, 0.99) * 1000
        results.append(Result(SUITE, "batch_commit_p50_ms", p50, "ms", params))
        results.append(Result(SUITE, "batch_commit_p99_ms", p99, "ms", params))
        rn, rsecs = await replay_speed(base / "log")
        results.append(Result(SUITE, "replay_records_per_s", rn / rsecs, "1/s", params))
        ref = await reference_speeds(base / "log", base / "reference.db")
        ref_rate, ref_lat, ref_python = ref
        ref_p99 = pct(ref_lat, 0.99) * 1000
        progress(
            f"reference two-table loop: {ref_rate:,.0f} records/s with SQLite "
            f"(batch p99 {ref_p99:.1f} ms), {ref_python:,.0f} in Python alone"
        )
        ref_params: dict[str, Any] = {**params, "python_only_per_s": round(ref_python)}
        ref_params["batch_p99_ms"] = round(ref_p99, 2)
        ref_params["runner_share"] = round(rate / ref_rate, 2)
        results.append(Result(SUITE, "reference_loop_records_per_s", ref_rate, "1/s", ref_params))

        sizes = {}
        for count in (rss_small, rss_large):
            d = base / f"simple-{count}"
            await write_log(d, simple(count, seed=3))
            sizes[count] = measure_rss(d)
            progress(f"rss: {count:,} invocations -> {sizes[count]}")
        small_mb, large_mb = sizes[rss_small]["peak_rss_mb"], sizes[rss_large]["peak_rss_mb"]
        results.append(
            Result(
                SUITE,
                "peak_rss_mb",
                large_mb,
                "MB",
                {"invocations": rss_large, "baseline_invocations": rss_small},
                baseline=small_mb,
            )
        )
    emit(results, as_json)
    targets = [
        (rate >= 50_000, f"commands/s {rate:,.0f} (target >= 50k)"),
        (rate / brate >= 20, f"ratio to naive baseline {rate / brate:.1f}x (target >= 20x)"),
        (p99 <= 5.0, f"batch commit p99 {p99:.2f} ms (target <= 5 ms)"),
        (rn / rsecs >= 50_000, f"replay {rn / rsecs:,.0f} records/s (target >= 50k)"),
        (large_mb <= 1.5 * small_mb, f"peak RSS x{large_mb / small_mb:.2f} (target <= 1.5x)"),
    ]
    for ok, text in targets:
        progress(("met:    " if ok else "MISSED: ") + text)
    frontier.append((BATCH_SIZE, rate, p99))
    frontier.sort()
    both = [size for size, r, fp99 in frontier if fp99 <= 5.0 and r >= 50_000]
    progress(
        "frontier: "
        + ", ".join(f"batch {size}: {r:,.0f}/s at p99 {fp99:.1f} ms" for size, r, fp99 in frontier)
        + (
            f"; both 50k/s and p99 5 ms at batch {', '.join(map(str, both))}"
            if both
            else "; no batch size met both 50k/s and p99 5 ms"
        )
    )
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rss-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child)
        return
    os.environ.setdefault("PYTHONHASHSEED", "0")
    tune_switch_interval()  # as the daemon and `processor replay` do
    sys.exit(asyncio.run(main_async(args.quick, args.json)))


if __name__ == "__main__":
    main()
