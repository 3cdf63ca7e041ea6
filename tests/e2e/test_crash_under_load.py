"""Crash under load: SIGKILL the daemon with a few hundred invocations in flight and restart it.

Every invocation the ingress acknowledged (202) completes; every step stored in a journal before the
crash ran exactly once (a step that ran but was not stored yet may run again after the restart, so
steps stored after the restart ran once or twice); `processor replay --verify` passes on every
partition once the daemon is stopped cleanly.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from pathlib import Path

import aiohttp
import anyio
import pytest

from .conftest import StartDeployment
from .support import (
    Cli,
    CliResult,
    Daemon,
    describe,
    ledger,
    list_invocations,
    register,
    send,
    wait_count,
)

pytestmark = pytest.mark.slow

LEDGER_STEPS = Path(__file__).resolve().parent / "deployments" / "ledger_steps.py"
INVOCATIONS = 300
STEPS = ("one", "two", "three")


def ms(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


async def test_sigkill_under_load_loses_no_acknowledged_invocation_and_reruns_no_stored_step(
    daemon: Daemon,
    http: aiohttp.ClientSession,
    start_deployment: StartDeployment,
    tmp_path: Path,
) -> None:
    ledger_file = tmp_path / "ledger"
    deployment = await start_deployment(LEDGER_STEPS, "--ledger", str(ledger_file))
    await register(http, daemon, deployment.uri)

    gate = asyncio.Semaphore(32)

    async def one(i: int) -> str:
        async with gate:
            arg = {"id": f"o-{i}", "step_ms": 300 + 5 * i}
            return await send(http, daemon, "Ledger/steps", arg)

    acknowledged = await asyncio.gather(*(one(i) for i in range(INVOCATIONS)))
    assert len(set(acknowledged)) == INVOCATIONS

    # Kill once some steps are stored and most of the work is pending. Not right after the last
    # acknowledgement: a fast ingress acknowledges all 300 before the first 300 ms step ends, and
    # then nothing at all would be stored before the crash. Invocation 40's step takes 500 ms;
    # once its first step is stored, so are (nearly) all of the 40 shorter ones' first steps.
    probe = acknowledged[INVOCATIONS // 7]
    with anyio.fail_after(30):
        while True:  # polling the daemon's state: nothing in this process to wait on
            journal = (await describe(http, daemon, probe))["journal"]
            if any(e["kind"] == "run" for e in journal):
                break
            await anyio.sleep(0.02)
    rows = await list_invocations(http, daemon)
    kill_ms = int(time.time() * 1000)
    daemon.kill()
    in_flight = sum(r["status"] != "completed" for r in rows)
    assert ledger(ledger_file), "no step ran before the crash"
    assert in_flight >= 100, f"only {in_flight} invocations were in flight at the crash"

    await daemon.start()
    await wait_count(http, daemon, INVOCATIONS, limit_s=60, status="completed")

    runs = ledger(ledger_file)
    stored_before_crash = 0
    for inv in acknowledged:
        view = await describe(http, daemon, inv)
        assert view["status"] == "completed", view
        order = view["result"]["value"]["id"]
        assert view["result"]["value"]["steps"] == [f"{step}-{order}" for step in STEPS]
        stored = [e for e in view["journal"] if e["kind"] == "run"]
        assert [e["name"] for e in stored] == list(STEPS), view["journal"]
        for entry in stored:
            count = runs[(inv, entry["name"])]
            if ms(entry["appended_at"]) <= kill_ms:
                assert count == 1, f"{inv} {entry['name']} stored before the crash ran {count}x"
                stored_before_crash += 1
            else:
                assert count in (1, 2), f"{inv} {entry['name']} ran {count}x"
                # The SDK streams entries without waiting for them to be stored, so an invocation
                # may have had several steps run but not stored yet when the daemon died.
    assert {inv for inv, _ in runs} == set(acknowledged)
    assert {step for _, step in runs} == set(STEPS)
    assert stored_before_crash >= INVOCATIONS // 10, stored_before_crash

    await daemon.stop()
    cli = Cli(daemon.admin_url)
    reports: dict[int, CliResult] = {}

    async def verify(partition: int) -> None:
        reports[partition] = await cli.run(
            "replay",
            "--verify",
            "--json",
            "--data-dir",
            str(daemon.data_dir),
            "--partition",
            str(partition),
        )

    async with anyio.create_task_group() as tg:
        for partition in range(daemon.partitions):
            tg.start_soon(verify, partition)
    for partition in range(daemon.partitions):
        result = reports[partition]
        assert result.code == 0, result
        report = json.loads(result.stdout)
        assert report["live"]["match"] is True and report["divergence"] is None, report
        assert report["live"]["applied_lsn"] == report["last_lsn"] > 0, report
