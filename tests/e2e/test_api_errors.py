"""Every error code of the admin API and the ingress for a representative case, with the message
that names the object and the reason; rejected (malformed) requests append nothing to any log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from processor.api.admin import VERBS
from processor.ids import make_invocation_id
from tests.leader.e2e_support import CHECKOUT, GREETER

from .conftest import StartDeployment
from .support import (
    Cli,
    Daemon,
    describe,
    log_tails,
    register,
    request_json,
    send,
    wait_status,
)

pytestmark = pytest.mark.slow

MALFORMED_ID = "inv_not-an-id"
UNKNOWN_ID = make_invocation_id(12345, 678)
UNKNOWN_DP = "dp_" + "7" * 22


async def answer(
    http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, str]:
    status, body = await request_json(http, method, url, **kwargs)
    assert isinstance(body, dict) and set(body) >= {"message"}, (status, body)
    return status, str(body["message"])


async def test_every_error_code_names_the_object_and_reason_and_rejections_append_nothing(
    daemon: Daemon,
    http: aiohttp.ClientSession,
    start_deployment: StartDeployment,
    tmp_path: Path,
) -> None:
    checkout = await start_deployment(
        CHECKOUT, "--version", "v2", "--ledger", str(tmp_path / "ledger")
    )
    await register(http, daemon, checkout.uri)
    greeter_dp = await register(http, daemon, (await start_deployment(GREETER)).uri)
    admin, ingress = daemon.admin_url, daemon.ingress_url

    completed = await send(http, daemon, "Checkout/process", {"id": "o-1"})
    paused = await send(http, daemon, "Checkout/slow", {"seconds": 60})
    scheduled = await send(http, daemon, "Checkout/process", {"id": "o-2"}, delay="1h")
    await wait_status(http, daemon, completed, "completed")
    await wait_status(http, daemon, scheduled, "scheduled")
    await wait_status(http, daemon, paused, "running")
    assert (await request_json(http, "PATCH", f"{admin}/invocations/{paused}/pause"))[0] == 202
    assert (await request_json(http, "PATCH", f"{admin}/invocations/{paused}/pause"))[0] == 200
    await wait_status(http, daemon, paused, "paused")

    # Nothing runs now (paused, completed, a timer an hour away): the logs' tails are stable.
    before = await log_tails(daemon.data_dir, daemon.partitions)
    assert all(tail >= 1 and last is not None for tail, last in before), before

    # 400: malformed ids, on the admin API and the ingress; the message shows the expected form.
    for method, url in (
        ("PATCH", f"{admin}/invocations/{MALFORMED_ID}/pause"),
        ("PATCH", f"{admin}/invocations/{MALFORMED_ID}/resume"),
        ("GET", f"{admin}/invocations/{MALFORMED_ID}"),
        ("GET", f"{ingress}/invocations/{MALFORMED_ID}/output"),
    ):
        status, message = await answer(http, method, url)
        assert status == 400, (url, status, message)
        assert MALFORMED_ID in message and "'inv_' followed by" in message, message

    # 400: resume onto a deployment that cannot take the invocation; nothing is appended.
    resume = f"{admin}/invocations/{paused}/resume"
    status, message = await answer(http, "PATCH", resume, params={"deployment": greeter_dp})
    assert status == 400
    assert greeter_dp in message and paused in message, message
    assert "does not serve service 'Checkout'" in message, message
    status, message = await answer(http, "PATCH", resume, params={"deployment": UNKNOWN_DP})
    assert status == 400 and f"deployment {UNKNOWN_DP} is not registered;" in message, message
    status, message = await answer(http, "PATCH", resume, params={"deployment": "newest"})
    assert status == 400 and "'newest'" in message and "'keep', 'latest'" in message, message
    status, message = await answer(http, "PATCH", resume, params={"deployment": ""})
    assert status == 400 and "empty" in message and "'keep', 'latest'" in message, message

    # 400: malformed bodies and parameters.
    status, message = await answer(
        http, "POST", f"{admin}/deployments", data=b"{not json", headers={"content-type": "x"}
    )
    assert status == 400 and '"uri"' in message, message
    status, message = await answer(http, "POST", f"{admin}/deployments", json={"uri": "ftp://x"})
    assert status == 400 and "ftp://x" in message, message
    status, message = await answer(
        http, "GET", f"{admin}/invocations", params={"status": "sleeping"}
    )
    assert status == 400 and "'sleeping'" in message and "paused" in message, message
    status, message = await answer(
        http, "POST", f"{ingress}/Checkout/process/send", params={"delay": "soon"}, json={}
    )
    assert status == 400 and "delay" in message and "soon" in message, message

    # Ingress 404: no registered deployment serves the target; the message says what to do.
    for path, why in (
        ("Nowhere/process", "no registered deployment serves Nowhere/process"),
        ("Nowhere/process/send", "no registered deployment serves Nowhere/process"),
        ("Checkout/missing", "of service 'Checkout'"),
    ):
        status, message = await answer(http, "POST", f"{ingress}/{path}", json={})
        assert status == 404, (path, status, message)
        assert why in message, message
        assert "processor deployments register" in message, message
    assert "has no handler 'missing'" in message, message

    assert await log_tails(daemon.data_dir, daemon.partitions) == before

    # 404 unknown id: describe, a verb, the ingress output.
    # Every one says what to do (check the id), the same words wherever it is asked.
    unknown = f"invocation {UNKNOWN_ID} not found"
    for method, url, params in (
        ("GET", f"{admin}/invocations/{UNKNOWN_ID}", {}),
        ("GET", f"{ingress}/invocations/{UNKNOWN_ID}/output", {}),
        ("PATCH", f"{admin}/invocations/{UNKNOWN_ID}/resume", {"deployment": "latest"}),
        *(("PATCH", f"{admin}/invocations/{UNKNOWN_ID}/{verb}", {}) for verb in VERBS),
    ):
        status, message = await answer(http, method, url, params=params)
        assert status == 404 and message.startswith(unknown), (url, message)
        assert "processor invocations list" in message, (url, message)
    status, message = await answer(http, "GET", f"{admin}/deployments/{UNKNOWN_DP}")
    assert status == 404 and UNKNOWN_DP in message, message
    assert "processor deployments list" in message, message

    # 409: verbs that do not apply to the status; the message names the invocation and why.
    status, message = await answer(http, "PATCH", f"{admin}/invocations/{completed}/pause")
    assert status == 409 and completed in message and "completed" in message, message
    assert "running or backing-off" in message, message
    for verb in ("resume", "cancel", "kill"):
        status, message = await answer(http, "PATCH", f"{admin}/invocations/{completed}/{verb}")
        assert status == 409 and completed in message and "completed" in message, (verb, message)
    status, message = await answer(http, "PATCH", f"{admin}/invocations/{scheduled}/pause")
    assert status == 409 and scheduled in message and "scheduled" in message, message
    status, message = await answer(http, "PATCH", f"{admin}/invocations/{paused}/purge")
    assert status == 409 and paused in message and "paused" in message, message

    # 425: resume before the invocation started.
    status, message = await answer(http, "PATCH", f"{admin}/invocations/{scheduled}/resume")
    assert status == 425 and scheduled in message, message
    assert "scheduled" in message or "not started" in message, message

    # The status comes first, with a deployment option too, even one that could not be used.
    for option in ("latest", greeter_dp, UNKNOWN_DP):
        url = f"{admin}/invocations/{scheduled}/resume"
        status, message = await answer(http, "PATCH", url, params={"deployment": option})
        assert status == 425 and "has not started yet" in message, (option, message)
        url = f"{admin}/invocations/{completed}/resume"
        status, message = await answer(http, "PATCH", url, params={"deployment": option})
        assert status == 409 and "completed" in message, (option, message)

    # Ingress 470: the output is not ready; a paused one waits for an operator, and says so.
    async with http.get(f"{ingress}/invocations/{paused}/output") as response:
        assert (response.status, response.reason) == (470, "Not Ready")
        message = (await response.json())["message"]
    assert paused in message and "paused" in message, message
    assert f"processor invocations resume {paused}" in message, message
    assert f"/invocations/{paused}/attach" in message, message

    # Those went through the state machine (answered by its Reply), so they were logged: the
    # comparison above would have seen an append.
    assert await log_tails(daemon.data_dir, daemon.partitions) != before

    # None of the negative answers changed anything.
    assert (await describe(http, daemon, completed))["status"] == "completed"
    assert (await describe(http, daemon, scheduled))["status"] == "scheduled"
    assert (await describe(http, daemon, paused))["status"] == "paused"
    assert daemon.errors_logged() == []


async def test_cli_pointed_at_the_ingress_says_it_is_not_the_admin_api(daemon: Daemon) -> None:
    cli = Cli(daemon.ingress_url)
    inv = make_invocation_id(1, 1)
    for args in (["invocations", "list"], ["invocations", "describe", inv]):
        result = await cli.run(*args)
        assert result.code == 1, result
        assert f"{daemon.ingress_url} does not look like the admin API" in result.stderr, result
        assert "--admin-url" in result.stderr, result
