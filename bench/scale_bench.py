"""Scaling with partitions: total throughput of one daemon with 1, 2, 4 and 8 partitions.

    python bench/scale_bench.py [--quick] [--json] [--seconds S]   (also: processor bench scale)

For each partition count a fresh daemon (`fsync=always`) is started with the Greeter deployment and
the load generator (its own process) calls `Greeter/greet` (0 steps) at concurrency 128; the
invocation ids are random, so the load spreads over the partitions. The figure for 1 partition is
the baseline of the others (ratio < 1 = throughput lost by adding partitions).

Workers: every partition runs in the daemon's one process and one event loop; the daemon has no
`--workers` option yet, so "1 vs 2 worker processes" is not measured (reported on stderr).
"""

from __future__ import annotations

import argparse
import sys

from _common import Result, emit
from harness import daemon, deployment, progress, run_loadgen

SUITE = "scale"
PARTITIONS = (1, 2, 4, 8)
CONCURRENCY = 128


def measure(seconds: float, warmup: float) -> list[Result]:
    results: list[Result] = []
    one: float | None = None
    with deployment("greeter.py") as dep:
        for partitions in PARTITIONS:
            with daemon(partitions=partitions, deployments=[dep]) as d:
                got = run_loadgen(
                    d.ingress + "/Greeter/greet",
                    concurrency=CONCURRENCY,
                    seconds=seconds,
                    warmup_s=warmup,
                )
            one = got.per_s if one is None else one
            progress(f"  {partitions} partition(s): {got.per_s:,.0f}/s, p99 {got.p99_ms:.1f} ms")
            params = {"partitions": partitions, "concurrency": CONCURRENCY, "steps": 0}
            baseline = one if partitions > 1 else None
            results.append(Result(SUITE, "invocations_per_s", got.per_s, "1/s", params, baseline))
            results.append(Result(SUITE, "latency_p99_ms", got.p99_ms, "ms", params))
    progress(
        "scale: the daemon runs all partitions in one process (no --workers option): "
        "1 vs 2 worker processes not measured"
    )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (under a minute)")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    parser.add_argument("--seconds", type=float, default=None, help="measured seconds per run")
    args = parser.parse_args(argv)
    seconds = args.seconds or (1.5 if args.quick else 6.0)
    warmup = 0.3 if args.quick else 1.0
    emit(measure(seconds, warmup), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
