"""Memory: RSS of the daemon as completed invocations accumulate (they are retained, not purged).

    python bench/memory_bench.py [--quick] [--json] [--step N]   (also: processor bench memory)

The daemon (4 partitions, `fsync=always`, `completion-retention = 0`: completed invocations are
kept until purged) serves the Greeter deployment. After a warm-up of 2,000 invocations (connection
pools, caches and code paths exist) its RSS (`/proc/<pid>/status` VmRSS) is the 0 point; then the
load generator (c=128, `Greeter/greet`) completes `step` more invocations (100k; `--quick` 10k)
twice, and the RSS is read after each. Each step is also bounded in time; the figures use the
numbers of invocations actually completed.

- `rss_growth_mb_per_100k`: the slope of the second step, (RSS₂ − RSS₁) ÷ (n₂ − n₁) × 100k. By
  then the bounded structures (SQLite page caches, the live-view cache, connection pools, the
  allocator's arenas) have filled during the first step, so this is what retaining more completed
  invocations costs.
- `rss_growth_total_mb_per_100k`: (RSS₂ − RSS₀) ÷ n₂ × 100k, warm-up of those caches included
  (with `--quick`'s small steps it is dominated by them).
"""

from __future__ import annotations

import argparse
import sys
import time

from _common import Result, emit
from harness import daemon, deployment, progress, run_loadgen

SUITE = "memory"
WARMUP_INVOCATIONS = 2_000


def measure(step: int, step_seconds: float) -> list[Result]:
    results: list[Result] = []
    env = {"PROCESSOR_INVOCATION__COMPLETION_RETENTION": "0"}
    with deployment("greeter.py") as dep, daemon(partitions=4, deployments=[dep], env=env) as d:
        url = d.ingress + "/Greeter/greet"
        run_loadgen(url, concurrency=128, seconds=60, warmup_s=0, max_requests=WARMUP_INVOCATIONS)
        time.sleep(0.5)
        rss0 = d.rss_mb()
        completed = 0
        points = [(0, rss0)]
        results.append(Result(SUITE, "rss_mb", rss0, "MB", {"completed": 0}))
        progress(f"memory: RSS {rss0:.1f} MB after the warm-up")
        for _ in range(2):
            got = run_loadgen(
                url, concurrency=128, seconds=step_seconds, warmup_s=0, max_requests=step
            )
            completed += got.count
            time.sleep(0.5)
            rss = d.rss_mb()
            points.append((completed, rss))
            progress(f"  {completed:,} completed: RSS {rss:.1f} MB ({got.per_s:,.0f}/s)")
            results.append(Result(SUITE, "rss_mb", rss, "MB", {"completed": completed}))
    growth = (rss - rss0) / completed * 100_000 if completed else 0.0
    results.append(Result(SUITE, "rss_growth_mb_per_100k", growth, "MB", {"completed": completed}))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k per step (under a minute)")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    parser.add_argument("--step", type=int, default=None, help="invocations per step")
    args = parser.parse_args(argv)
    step = args.step or (10_000 if args.quick else 100_000)
    step_seconds = 15.0 if args.quick else 300.0
    emit(measure(step, step_seconds), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
