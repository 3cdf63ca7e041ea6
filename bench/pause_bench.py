"""Pause/resume latency: N running invocations, paused and resumed one by one through the admin API.

    python bench/pause_bench.py [--quick] [--json] [--invocations N]  (also: processor bench pause)

Setup: the daemon (4 partitions, `fsync=always`) and a probe deployment (this file with
`--serve-deployment`: the Checkout and Greeter example services plus a middleware that notes, with
the system-wide monotonic clock, when each attempt request arrives; `GET /bench/starts` lists them).
N invocations of `Checkout/slow` (one `ctx.run` step that sleeps an hour) are sent and the bench
waits until the deployment has received attempt 1 of every one: N attempts are in flight.

Method, per round (idle, then under 50% load):
- pause: `PATCH /invocations/{id}/pause` for each invocation, one after the other. The admin API
  answers only once the Pause command is in the log (fsynced) and applied (the state machine's
  reply comes from the runner after COMMIT), so the request's round trip IS request → `paused`
  applied.
- resume: `PATCH /invocations/{id}/resume` for each, one after the other, paced to one every
  `PACE_S` so attempts do not queue behind each other. Resume latency = the time the probe
  deployment received the attempt named in the reply (`attempt` n) minus the time the request was
  sent (both `time.monotonic_ns()`, CLOCK_MONOTONIC, comparable across processes on one machine):
  request → log → apply → leader → journal read → HTTP call arriving at the deployment.
- 50% load: before the loaded round the load generator measures the 0-step throughput at c=128
  for a moment, then runs in the background at half that rate (`--rate`) during the round.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import msgpack
from _common import Result, emit
from aiohttp import web
from harness import (
    BENCH,
    EXAMPLES,
    PYTHON,
    daemon,
    finish_loadgen,
    listening_process,
    progress,
    run_loadgen,
    start_loadgen,
)

SUITE = "pause"
PACE_S = 0.01
SLOW_BODY = b'{"seconds": 3600}'
STARTS = web.AppKey("starts", dict[str, list[tuple[int, int]]])


# --- the probe deployment (its own process) ------------------------------------------------------


def _load_example(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def serve_probe_deployment(port: int) -> None:
    from processor.sdk.server import make_app

    checkout = _load_example("checkout")
    greeter = _load_example("greeter")
    service = checkout.build_service(checkout.CheckoutConfig(version="v2", slow_seconds=3600))
    app = make_app([service, greeter.greeter])
    starts: dict[str, list[tuple[int, int]]] = {}
    app[STARTS] = starts

    @web.middleware
    async def note_start(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.method == "POST" and request.path.startswith("/invoke/Checkout/"):
            arrived = time.monotonic_ns()
            body = msgpack.unpackb(await request.read(), raw=False)
            starts.setdefault(body["invocation_id"], []).append((body["attempt"], arrived))
        return await handler(request)

    async def list_starts(request: web.Request) -> web.Response:
        return web.json_response(starts)

    app.middlewares.append(note_start)
    app.router.add_get("/bench/starts", list_starts)

    async def run() -> None:
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        print(f"listening on http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


# --- the benchmark -------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


async def starts_of(session: aiohttp.ClientSession, probe: str) -> dict[str, list[list[int]]]:
    async with session.get(f"{probe}/bench/starts") as resp:
        data: dict[str, list[list[int]]] = await resp.json()
        return data


async def start_invocations(
    session: aiohttp.ClientSession, ingress: str, probe: str, n: int
) -> list[str]:
    sem = asyncio.Semaphore(32)

    async def send() -> str:
        async with sem, session.post(f"{ingress}/Checkout/slow/send", data=SLOW_BODY) as resp:
            body = await resp.json()
            if resp.status != 202:
                raise RuntimeError(f"send failed: {resp.status} {body}")
            return str(body["invocationId"])

    ids = await asyncio.gather(*(send() for _ in range(n)))
    deadline = time.monotonic() + 60
    while True:
        started = await starts_of(session, probe)
        if sum(1 for i in ids if i in started) == n:
            return ids
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(started)} of {n} attempts started within 60 s")
        await asyncio.sleep(0.1)


async def one_round(
    session: aiohttp.ClientSession, admin: str, probe: str, ids: list[str]
) -> tuple[list[float], list[float]]:
    """Pause every invocation, then resume every one; returns the latencies in ms."""
    pauses: list[float] = []
    for inv in ids:
        t0 = time.perf_counter()
        async with session.patch(f"{admin}/invocations/{inv}/pause") as resp:
            body = await resp.json()
        pauses.append((time.perf_counter() - t0) * 1000)
        if resp.status not in (200, 202) or body.get("status") != "paused":
            raise RuntimeError(f"pause of {inv} answered {resp.status} {body}")
    sent: dict[tuple[str, int], int] = {}
    for inv in ids:
        t0 = time.monotonic_ns()
        async with session.patch(f"{admin}/invocations/{inv}/resume") as resp:
            body = await resp.json()
        if resp.status != 200 or "attempt" not in body:
            raise RuntimeError(f"resume of {inv} answered {resp.status} {body}")
        sent[(inv, int(body["attempt"]))] = t0
        await asyncio.sleep(max(0.0, PACE_S - (time.monotonic_ns() - t0) / 1e9))
    deadline = time.monotonic() + 30
    while True:
        started = await starts_of(session, probe)
        arrived = {(inv, a): t for inv, rows in started.items() for a, t in rows}
        missing = [key for key in sent if key not in arrived]
        if not missing or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    if missing:
        raise RuntimeError(f"{len(missing)} resumed attempts never reached the deployment")
    resumes = [(arrived[key] - t0) / 1e6 for key, t0 in sent.items()]
    return pauses, resumes


def results_of(pauses: list[float], resumes: list[float], load: str, n: int) -> list[Result]:
    params = {"invocations": n, "load": load}
    progress(
        f"  {load}: pause p50 {pct(pauses, 0.5):.2f} ms p99 {pct(pauses, 0.99):.2f} ms; "
        f"resume p50 {pct(resumes, 0.5):.2f} ms p99 {pct(resumes, 0.99):.2f} ms"
    )
    return [
        Result(SUITE, "pause_latency_p50_ms", pct(pauses, 0.5), "ms", params),
        Result(SUITE, "pause_latency_p99_ms", pct(pauses, 0.99), "ms", params),
        Result(SUITE, "resume_latency_p50_ms", pct(resumes, 0.5), "ms", params),
        Result(SUITE, "resume_latency_p99_ms", pct(resumes, 0.99), "ms", params),
    ]


async def bench(ingress: str, admin: str, probe: str, n: int, quick: bool) -> list[Result]:
    results: list[Result] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        progress(f"pause: starting {n} invocations of Checkout/slow")
        ids = await start_invocations(session, ingress, probe, n)
        progress("pause: idle round")
        results += results_of(*await one_round(session, admin, probe, ids), "idle", n)
        peak = run_loadgen(
            ingress + "/Greeter/greet", concurrency=128, seconds=1.0 if quick else 2.0
        ).per_s
        rate = peak / 2
        progress(f"pause: round under 50% load ({rate:,.0f}/s of a measured {peak:,.0f}/s)")
        load = start_loadgen(ingress + "/Greeter/greet", concurrency=128, seconds=600, rate=rate)
        try:
            await asyncio.sleep(0.5)
            pauses, resumes = await one_round(session, admin, probe, ids)
        finally:
            load.terminate()
            achieved = finish_loadgen(load)
        progress(f"  background load achieved {achieved.per_s:,.0f}/s")
        results += results_of(pauses, resumes, "50%", n)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 invocations (under a minute)")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    parser.add_argument("--invocations", type=int, default=None)
    parser.add_argument("--serve-deployment", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_deployment:
        serve_probe_deployment(args.port)
        return 0
    n = args.invocations or (100 if args.quick else 1000)
    probe_args = [PYTHON, str(Path(BENCH / "pause_bench.py")), "--serve-deployment"]
    with listening_process(probe_args) as probe, daemon(partitions=4, deployments=[probe]) as d:
        results = asyncio.run(bench(d.ingress, d.admin, probe, n, args.quick))
    emit(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
