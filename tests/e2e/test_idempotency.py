"""The `idempotency-key` header: the same key sent twice, or ten times at once, is one invocation
(one id, one row in the list, its steps run once), and a repeat after completion gets the stored
result."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.leader.e2e_support import CHECKOUT

from .conftest import StartDeployment
from .support import Daemon, ledger, list_invocations, register, wait_status

pytestmark = pytest.mark.slow

STEPS = ("reserve", "charge", "ship")


async def send_with_key(
    http: aiohttp.ClientSession, daemon: Daemon, key: str, order: str
) -> dict[str, Any]:
    async with http.post(
        f"{daemon.ingress_url}/Checkout/process/send",
        json={"id": order},
        headers={"idempotency-key": key},
    ) as response:
        body: dict[str, Any] = await response.json()
        assert response.status == 202, body
        assert response.headers["x-invocation-id"] == body["invocationId"]
        return body


async def call_with_key(
    http: aiohttp.ClientSession, daemon: Daemon, key: str, order: str
) -> tuple[str, Any]:
    async with http.post(
        f"{daemon.ingress_url}/Checkout/process",
        json={"id": order},
        headers={"idempotency-key": key},
    ) as response:
        assert response.status == 200, await response.text()
        return response.headers["x-invocation-id"], json.loads(await response.read())


def expected_output(order: str) -> dict[str, str]:
    return {
        "order": order,
        "reservation": f"res-{order}",
        "charge": f"pay-{order}",
        "shipment": f"ship-{order}",
    }


async def test_same_idempotency_key_yields_one_invocation_sequentially_and_concurrently(
    daemon: Daemon,
    http: aiohttp.ClientSession,
    start_deployment: StartDeployment,
    tmp_path: Path,
) -> None:
    ledger_file = tmp_path / "ledger"
    checkout = await start_deployment(CHECKOUT, "--version", "v2", "--ledger", str(ledger_file))
    await register(http, daemon, checkout.uri)

    # Twice, one after the other; then once more after it completed.
    first = await send_with_key(http, daemon, "order-1", "o-1")
    second = await send_with_key(http, daemon, "order-1", "o-1")
    assert first["status"] == "Accepted"
    assert second == {"invocationId": first["invocationId"], "status": "PreviouslyAccepted"}
    sequential = first["invocationId"]
    await wait_status(http, daemon, sequential, "completed")
    third = await send_with_key(http, daemon, "order-1", "o-1")
    assert third == {"invocationId": sequential, "status": "PreviouslyAccepted"}
    assert await call_with_key(http, daemon, "order-1", "o-1") == (
        sequential,
        expected_output("o-1"),
    )

    # Ten at once with /send, and ten at once with the waiting call.
    sends = await asyncio.gather(
        *(send_with_key(http, daemon, "order-2", "o-2") for _ in range(10))
    )
    assert len({s["invocationId"] for s in sends}) == 1
    assert sorted(s["status"] for s in sends) == ["Accepted"] + ["PreviouslyAccepted"] * 9
    concurrent_send = sends[0]["invocationId"]
    calls = await asyncio.gather(
        *(call_with_key(http, daemon, "order-3", "o-3") for _ in range(10))
    )
    assert len({inv for inv, _ in calls}) == 1
    assert all(output == expected_output("o-3") for _, output in calls), calls
    concurrent_call = calls[0][0]
    await wait_status(http, daemon, concurrent_send, "completed")

    ids = {sequential, concurrent_send, concurrent_call}
    assert len(ids) == 3  # different keys, different invocations
    rows = await list_invocations(http, daemon, service="Checkout")
    assert sorted(r["id"] for r in rows) == sorted(ids)
    by_id = {r["id"]: r for r in rows}
    assert [
        by_id[i]["idempotency_key"] for i in (sequential, concurrent_send, concurrent_call)
    ] == [
        "order-1",
        "order-2",
        "order-3",
    ]
    runs = ledger(ledger_file)
    assert runs == {(inv, step): 1 for inv in ids for step in STEPS}, runs
