"""Pause and resume every running invocation of `Service/handler` by query through the CLI, and the
confirmation rule: without `--yes`, an answer other than yes (or no answer at all, even with
CI=true in the environment) changes nothing."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp
import anyio
import pytest

from tests.leader.e2e_support import CHECKOUT

from .conftest import StartDeployment
from .support import (
    Cli,
    Daemon,
    describe,
    ledger,
    list_invocations,
    log_tails,
    register,
    send,
    wait_status,
)

pytestmark = pytest.mark.slow

SLOW = 5


async def wait_ledger(path: Path, step: str, per_invocation: int, ids: list[str]) -> None:
    deadline = time.monotonic() + 20
    while any(ledger(path)[(inv, step)] < per_invocation for inv in ids):
        assert time.monotonic() < deadline, f"{step} did not run {per_invocation}x: {ledger(path)}"
        await anyio.sleep(0.05)


async def statuses(http: aiohttp.ClientSession, daemon: Daemon, ids: list[str]) -> set[str]:
    return {(await describe(http, daemon, inv))["status"] for inv in ids}


async def test_pause_then_resume_running_invocations_of_a_handler_by_query(
    daemon: Daemon,
    cli: Cli,
    http: aiohttp.ClientSession,
    start_deployment: StartDeployment,
    tmp_path: Path,
) -> None:
    ledger_file = tmp_path / "ledger"
    checkout = await start_deployment(CHECKOUT, "--version", "v2", "--ledger", str(ledger_file))
    await register(http, daemon, checkout.uri)
    # Bystanders the query must not touch: another handler's suspended and completed invocations.
    sleeper = await send(http, daemon, "Checkout/delay", {"seconds": 600})
    finished = await send(http, daemon, "Checkout/process", {"id": "done"})
    await wait_status(http, daemon, sleeper, "suspended")
    await wait_status(http, daemon, finished, "completed")

    slow = [await send(http, daemon, "Checkout/slow", {"seconds": 60}) for _ in range(SLOW)]
    await wait_ledger(ledger_file, "slow-start", 1, slow)  # every attempt is in flight
    assert await statuses(http, daemon, slow) == {"running"}
    before = await log_tails(daemon.data_dir, daemon.partitions)

    # No --yes: "n" on stdin, then no answer at all (EOF). CI=true must not confirm either.
    for answer in ("n\n", ""):
        refused = await cli.run("invocations", "pause", "Checkout/slow", stdin=answer)
        assert refused.code == 1, refused
        assert f"Pause {SLOW} invocations" in refused.stderr, refused
        assert "Nothing was changed." in refused.stderr, refused
        for inv in slow:
            assert inv in refused.stdout, refused  # the selection was shown
        assert sleeper not in refused.stdout and finished not in refused.stdout
    assert await statuses(http, daemon, slow) == {"running"}
    assert await log_tails(daemon.data_dir, daemon.partitions) == before

    paused = await cli.run("invocations", "pause", "Checkout/slow", "--yes")
    assert paused.code == 0, paused
    assert f"{SLOW} paused, 0 failed." in paused.stdout, paused
    views = [await describe(http, daemon, inv) for inv in slow]
    assert {v["status"] for v in views} == {"paused"}
    assert all(v["last_failure"] is None for v in views)  # a manual pause carries no failure
    assert (await describe(http, daemon, sleeper))["status"] == "suspended"
    assert (await describe(http, daemon, finished))["status"] == "completed"
    listed = await list_invocations(http, daemon, service="Checkout", status="paused")
    assert sorted(r["id"] for r in listed) == sorted(slow)

    resumed = await cli.run("invocations", "resume", "Checkout/slow", "--yes")
    assert resumed.code == 0, resumed
    assert f"{SLOW} resumed, 0 failed." in resumed.stdout, resumed
    # The step was never stored, so each resumed invocation runs it again in a new attempt.
    await wait_ledger(ledger_file, "slow-start", 2, slow)
    views = [await describe(http, daemon, inv) for inv in slow]
    assert {v["status"] for v in views} == {"running"}
    assert all(v["attempt"] == 2 and v["retry_count"] == 0 for v in views), views
    assert (await describe(http, daemon, sleeper))["status"] == "suspended"

    # Nothing left to resume: the query selects nothing and says so.
    again = await cli.run("invocations", "resume", "Checkout/slow", "--yes")
    assert again.code == 0, again
    assert "nothing to resume" in again.stdout, again
