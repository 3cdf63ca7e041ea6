"""The load generator: POSTs to one URL with bounded concurrency, in its own process.

    python bench/loadgen.py --url http://127.0.0.1:8080/Greeter/greet --concurrency 128 \
        --seconds 5 [--warmup 1] [--max-requests N] [--rate R] [--body '"Ada"']

`concurrency` workers share one aiohttp session (keep-alive, at most `concurrency` connections);
each sends its next request as soon as its previous answer arrived (closed loop). With `--rate`,
requests are paced to R per second in total (open loop, still capped at `concurrency` in flight),
which is how the pause benchmark applies "50% load". Requests completed during the first
`--warmup` seconds are not counted. The run stops after `--seconds` (measured after the warm-up) or
`--max-requests` counted requests, or at SIGTERM/SIGINT, whichever comes first.

Prints one JSON line: count, errors (non-2xx or transport errors), seconds, per_s and latency
p50/p90/p99 in milliseconds (of the counted, successful requests), and total (every answered
request, warm-up included).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time

import aiohttp

from processor.eventloop import run_asyncio


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


async def run(args: argparse.Namespace) -> dict[str, float | int | str]:
    body = args.body.encode()
    headers = {"content-type": "application/json"}
    latencies: list[float] = []
    errors = 0
    first_error: list[str] = []  # what the first failed request got, to say why in the summary
    done = 0  # every answered request, warm-up included (CPU-per-request figures divide by it)
    started = time.perf_counter()
    measure_from = started + args.warmup
    deadline = measure_from + args.seconds
    max_requests = args.max_requests
    interval = 1.0 / args.rate if args.rate else 0.0
    next_slot = started
    stop = False

    connector = aiohttp.TCPConnector(limit=args.concurrency, limit_per_host=args.concurrency)
    timeout = aiohttp.ClientTimeout(total=args.request_timeout)
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        nonlocal stop, deadline
        stop = True
        deadline = min(deadline, time.perf_counter())

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            nonlocal errors, next_slot, stop, done
            while not stop:
                if interval:
                    now = time.perf_counter()
                    slot = max(next_slot, now)
                    next_slot = slot + interval
                    if slot > now:
                        await asyncio.sleep(slot - now)
                t0 = time.perf_counter()
                if t0 >= deadline:
                    stop = True
                    return
                ok = False
                try:
                    async with session.post(args.url, data=body, headers=headers) as resp:
                        answer = await resp.read()
                        ok = 200 <= resp.status < 300
                        if not ok and not first_error:
                            first_error.append(f"HTTP {resp.status}: {answer[:200]!r}")
                except (aiohttp.ClientError, TimeoutError) as exc:
                    ok = False
                    if not first_error:
                        first_error.append(f"{type(exc).__name__}: {exc}")
                t1 = time.perf_counter()
                done += 1
                if t0 >= measure_from:
                    if ok:
                        latencies.append(t1 - t0)
                    else:
                        errors += 1
                    if max_requests is not None and len(latencies) + errors >= max_requests:
                        stop = True

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    elapsed = min(time.perf_counter(), deadline) - measure_from
    latencies.sort()
    return {
        "count": len(latencies),
        "total": done,
        "errors": errors,
        "seconds": round(elapsed, 3),
        "per_s": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p90_ms": percentile(latencies, 0.90) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "first_error": first_error[0] if first_error else "",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--max-requests", type=int, default=None)
    parser.add_argument("--rate", type=float, default=None, help="requests/s in total (paced)")
    parser.add_argument("--body", default='"Ada"', help="the JSON request body")
    parser.add_argument("--request-timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    result = run_asyncio(run(args))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
