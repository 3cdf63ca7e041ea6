"""End-to-end benchmark: invocations/s and latency through the daemon, against the raw HTTP ceiling.

    python bench/e2e_bench.py [--quick] [--json] [--seconds S]   (also: processor bench e2e)

Processes (all on loopback, all on this machine): the daemon (`processor serve`, durable log with
`fsync=always`, 4 partitions), the Greeter example deployment, the baseline server
(bench/baseline_server.py: a trivial aiohttp server making one HTTP call to the same deployment
per request) and the load generator (bench/loadgen.py, its own process, closed loop).

For each handler (`Greeter/greet`: 0 steps; `Greeter/steps3`: 3 `ctx.run` steps) and concurrency
(1, 32, 128) the load generator runs against the baseline server and then against the daemon's
ingress, for the same duration; the daemon's invocations/s is reported with the baseline's as
`baseline` and their `ratio`. Latencies are client-side (request sent → answer read).
`daemon_cpu_us_per_invocation` is the daemon's user + system CPU time (/proc/<pid>/stat, its
partitions' writer processes included) over the run divided by the requests answered: the figure
least sensitive to other load on the machine.
"""

from __future__ import annotations

import argparse
import sys

from _common import Result, emit
from harness import (
    BENCH,
    PYTHON,
    cpu_seconds,
    daemon,
    deployment,
    listening_process,
    progress,
    run_loadgen,
)

SUITE = "e2e"
HANDLERS = ((0, "greet"), (3, "steps3"))
CONCURRENCY = (1, 32, 128)


def measure(seconds: float, warmup: float, partitions: int) -> list[Result]:
    results: list[Result] = []
    with deployment("greeter.py") as dep:
        baseline_args = [PYTHON, str(BENCH / "baseline_server.py"), "--deployment", dep]
        with (
            listening_process(baseline_args) as base,
            daemon(partitions=partitions, deployments=[dep]) as d,
        ):
            for steps, handler in HANDLERS:
                for c in CONCURRENCY:
                    path = f"/Greeter/{handler}"
                    ceiling = run_loadgen(
                        base + path, concurrency=c, seconds=seconds, warmup_s=warmup
                    )
                    cpu_before = cpu_seconds(d.pid)
                    got = run_loadgen(
                        d.ingress + path, concurrency=c, seconds=seconds, warmup_s=warmup
                    )
                    # The daemon's CPU per answered request (warm-up included on both sides):
                    # the figure that depends least on what else the machine is running.
                    cpu_us = (cpu_seconds(d.pid) - cpu_before) / max(got.total, 1) * 1e6
                    if got.errors or ceiling.errors:
                        progress(
                            f"  errors: daemon {got.errors} ({got.first_error or '-'}), "
                            f"baseline {ceiling.errors} ({ceiling.first_error or '-'})"
                        )
                    progress(
                        f"  steps={steps} c={c}: {got.per_s:,.0f}/s "
                        f"(ceiling {ceiling.per_s:,.0f}/s), p50 {got.p50_ms:.2f} ms, "
                        f"p99 {got.p99_ms:.2f} ms, daemon CPU {cpu_us:,.0f} µs/invocation"
                    )
                    params = {"concurrency": c, "steps": steps}
                    results += [
                        Result(SUITE, "invocations_per_s", got.per_s, "1/s", params, ceiling.per_s),
                        Result(SUITE, "latency_p50_ms", got.p50_ms, "ms", params, ceiling.p50_ms),
                        Result(SUITE, "latency_p90_ms", got.p90_ms, "ms", params, ceiling.p90_ms),
                        Result(SUITE, "latency_p99_ms", got.p99_ms, "ms", params, ceiling.p99_ms),
                        Result(SUITE, "daemon_cpu_us_per_invocation", cpu_us, "us", params),
                    ]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (under a minute)")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    parser.add_argument("--seconds", type=float, default=None, help="measured seconds per run")
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args(argv)
    seconds = args.seconds or (1.0 if args.quick else 5.0)
    warmup = 0.3 if args.quick else 1.0
    progress(f"e2e: {seconds:g} s per run after {warmup:g} s warm-up, {args.partitions} partitions")
    emit(measure(seconds, warmup, args.partitions), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
