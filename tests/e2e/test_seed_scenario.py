"""The seed's scenario, end to end, driven through the CLI: a buggy deployment makes an invocation
back off and pause after its attempts run out; the fixed deployment is registered and the
invocation resumed onto it; it completes without re-running the steps stored before."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from tests.leader.e2e_support import CHECKOUT

from .conftest import StartDeployment
from .support import Cli, Daemon, ledger, request_json

pytestmark = pytest.mark.slow

# Long enough backoffs that a CLI poll (a fresh process each time) sees `backing-off`.
RETRY_ENV = {
    "CHECKOUT_INITIAL_INTERVAL": "2500ms",
    "CHECKOUT_MAX_INTERVAL": "2500ms",
    "CHECKOUT_MAX_ATTEMPTS": "3",
    "CHECKOUT_ON_MAX_ATTEMPTS": "pause",
}


async def cli_status_until(cli: Cli, inv: str, wanted: str, limit_s: float = 20) -> dict[str, Any]:
    """Poll `processor invocations describe -o json` until the invocation is `wanted`."""
    deadline = time.monotonic() + limit_s
    seen: list[str] = []
    while True:
        body: dict[str, Any] = await cli.json("invocations", "describe", inv)
        if not seen or seen[-1] != body["status"]:
            seen.append(body["status"])
        if body["status"] == wanted:
            return body
        assert time.monotonic() < deadline, f"{inv} never became {wanted}; seen {seen}"
        await anyio.sleep(0.1)


async def test_seed_scenario_pause_after_max_attempts_then_resume_on_fixed_deployment(
    daemon: Daemon,
    cli: Cli,
    http: aiohttp.ClientSession,
    start_deployment: StartDeployment,
    tmp_path: Path,
) -> None:
    ledger_file = tmp_path / "ledger"
    v1, v2 = await asyncio.gather(
        *(
            start_deployment(
                CHECKOUT, "--version", version, "--ledger", str(ledger_file), env=RETRY_ENV
            )
            for version in ("v1", "v2")  # v2, the fix, is registered only after the pause
        )
    )
    registered = await cli.ok("deployments", "register", v1.uri)
    assert "Registered deployment dp_" in registered.stdout, registered
    assert "Checkout" in registered.stdout

    status, body = await request_json(
        http, "POST", f"{daemon.ingress_url}/Checkout/process/send", json={"id": "o-1"}
    )
    assert status == 202, body
    inv = body["invocationId"]

    backing_off = await cli_status_until(cli, inv, "backing-off")
    assert backing_off["last_failure"]["message"].startswith("v1 bug: the ship step crashes")
    assert backing_off["next_retry_at"] is not None

    paused = await cli_status_until(cli, inv, "paused")
    assert paused["attempt"] == 3
    v1_id = paused["pinned_deployment"]
    assert v1_id is not None and v1_id.startswith("dp_")
    listed = await cli.json("invocations", "list", "--status", "paused")
    assert [row["id"] for row in listed["invocations"]] == [inv]

    # `describe` (human) shows the failure with its stack trace and the stored journal.
    shown = (await cli.ok("invocations", "describe", inv)).stdout
    assert "paused" in shown
    assert "Last failure (attempt 3" in shown
    assert "v1 bug: the ship step crashes" in shown
    assert "Traceback" in shown or "RuntimeError" in shown
    for step in ("reserve", "charge"):
        assert re.search(rf"\b{step}\b", shown), shown
    assert v1_id in shown

    registered = await cli.ok("deployments", "register", v2.uri, "--output", "json")
    v2_id = json.loads(registered.stdout)["id"]
    assert v2_id != v1_id

    resumed = await cli.ok("invocations", "resume", inv, "--deployment", "latest")
    assert "resumed" in resumed.stdout, resumed

    done = await cli_status_until(cli, inv, "completed")
    assert done["pinned_deployment"] == v2_id
    assert done["result"]["value"] == {
        "order": "o-1",
        "reservation": "res-o-1",
        "charge": "pay-o-1",
        "shipment": "ship-o-1",
    }
    runs = ledger(ledger_file)
    # Steps stored before the pause never ran again; v1's ship ran once per attempt, v2's once.
    assert runs[(inv, "reserve")] == 1
    assert runs[(inv, "charge")] == 1
    assert runs[(inv, "ship")] == 4
    assert daemon.errors_logged() == []
