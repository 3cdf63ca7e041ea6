"""The example deployments: the Checkout seed scenario (v1 fails at `ship`, v2 finishes without
re-running stored steps) with real processes, and the Greeter and Checkout handlers in-process."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import ModuleType

import aiohttp
import msgpack
import pytest

from processor.sdk.testing import (
    CANCEL_ENTRY,
    DeployFactory,
    completion_entry,
    extend,
    input_entry,
    invoke,
    split_frames,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
START_TIMEOUT_S = 20.0


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


StartExample = Callable[..., Awaitable[str]]


@pytest.fixture
async def start_example() -> AsyncIterator[StartExample]:
    """Starts `python examples/<name>.py --port 0 <args>` and returns its URL once it listens."""
    procs: list[asyncio.subprocess.Process] = []

    async def start(name: str, *args: str, env: dict[str, str] | None = None) -> str:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(EXAMPLES / f"{name}.py"),
            "--port",
            "0",
            *args,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        procs.append(proc)
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT_S)
        match = re.fullmatch(rb"listening on (http://127\.0\.0\.1:\d+)\n", line)
        assert match, f"unexpected first line from {name}: {line!r}"
        return match.group(1).decode()

    yield start
    for proc in procs:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), START_TIMEOUT_S)


def ledger_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.slow
async def test_checkout_process_answers_discovery_with_its_env_retry_policy(
    start_example: StartExample, tmp_path: Path
) -> None:
    env = {"CHECKOUT_MAX_ATTEMPTS": "4", "CHECKOUT_ON_MAX_ATTEMPTS": "kill"}
    url = await start_example("checkout", "--version", "v1", env=env)
    async with aiohttp.ClientSession() as session, session.get(f"{url}/discover") as resp:
        assert resp.status == 200
        doc = msgpack.unpackb(await resp.read(), raw=False)
    [service] = doc["services"]
    assert doc["protocol"] == 1 and service["name"] == "Checkout"
    assert service["retry_policy"] == {
        "initial-interval": "100ms",
        "max-interval": "1s",
        "max-attempts": 4,
        "on-max-attempts": "kill",
    }
    assert {h["name"] for h in service["handlers"]} == {"process", "slow", "delay"}


@pytest.mark.slow
async def test_checkout_v1_fails_at_ship_and_v2_finishes_without_rerunning_stored_steps(
    start_example: StartExample, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    v1 = await start_example("checkout", "--version", "v1", "--ledger", str(ledger))
    journal = [input_entry({"id": "o-1"})]
    async with aiohttp.ClientSession() as session:
        for attempt in (1, 2):
            frames = await invoke(
                session, v1, "Checkout/process", journal, invocation_id="inv_o1", attempt=attempt
            )
            entries, final = split_frames(frames)
            assert final["t"] == "error" and final["retryable"] is True
            assert final["related_index"] == 3
            assert "v1 bug: the ship step crashes" in final["message"]
            journal = extend(journal, frames)
        assert [e.get("name") for e in journal] == [None, "reserve", "charge"]

        v2 = await start_example(
            "checkout", "--ledger", str(ledger), env={"CHECKOUT_VERSION": "v2"}
        )
        frames = await invoke(
            session, v2, "Checkout/process", journal, invocation_id="inv_o1", attempt=3
        )
    entries, final = split_frames(frames)
    assert [(i, e["name"]) for i, e in entries] == [(3, "ship")]
    assert final["t"] == "output"
    assert final["value"] == (
        b'{"order": "o-1", "reservation": "res-o-1", "charge": "pay-o-1", "shipment": "ship-o-1"}'
    )
    assert ledger_lines(ledger) == [
        "inv_o1 reserve",
        "inv_o1 charge",
        "inv_o1 ship",
        "inv_o1 ship",
        "inv_o1 ship",
    ]


async def test_checkout_v3_renamed_step_is_a_journal_mismatch_for_a_v1_journal(
    deploy: DeployFactory, tmp_path: Path
) -> None:
    checkout = load_example("checkout")
    v1 = await deploy([checkout.build_service(checkout.CheckoutConfig(version="v1"))])
    first = [input_entry("o-2")]
    journal = extend(first, await v1.invoke("Checkout/process", first))
    v3 = await deploy([checkout.build_service(checkout.CheckoutConfig(version="v3"))])
    [final] = await v3.invoke("Checkout/process", journal, attempt=2)
    assert final["t"] == "error" and final["related_index"] == 2
    assert final["message"] == (
        "journal mismatch at index 2: the journal has run 'charge', but the code did run "
        "'charge-card'"
    )


async def test_checkout_canceled_at_ship_compensates_and_fails_with_409(
    deploy: DeployFactory, tmp_path: Path
) -> None:
    checkout = load_example("checkout")
    ledger = tmp_path / "ledger"
    config = checkout.CheckoutConfig(version="v1", ledger=str(ledger))
    d = await deploy([checkout.build_service(config)])
    frames = await d.invoke("Checkout/process", [input_entry("o-3")], invocation_id="inv_o3")
    journal = [*extend([input_entry("o-3")], frames), CANCEL_ENTRY]
    entries, final = split_frames(
        await d.invoke("Checkout/process", journal, invocation_id="inv_o3", attempt=2)
    )
    assert [(i, e["name"]) for i, e in entries] == [(4, "refund"), (5, "release")]
    assert final == {"t": "output", "failure": {"code": 409, "message": "canceled"}}
    assert ledger_lines(ledger) == [
        "inv_o3 reserve",
        "inv_o3 charge",
        "inv_o3 ship",
        "inv_o3 refund",
        "inv_o3 release",
    ]


async def test_checkout_delay_sleeps_durably_between_its_steps(
    deploy: DeployFactory, tmp_path: Path
) -> None:
    checkout = load_example("checkout")
    d = await deploy([checkout.build_service(checkout.CheckoutConfig())])
    frames = await d.invoke("Checkout/delay", [input_entry({"seconds": 30})])
    entries, final = split_frames(frames)
    assert [e["kind"] for _, e in entries] == ["run", "sleep"]
    assert final == {"t": "suspend", "awaiting": [0]}
    journal = [*extend([input_entry({"seconds": 30})], frames), completion_entry(0)]
    entries, final = split_frames(await d.invoke("Checkout/delay", journal, attempt=2))
    assert [(i, e["name"]) for i, e in entries] == [(4, "after")]
    assert final == {"t": "output", "value": b'"woke up"'}


async def test_checkout_slow_keeps_its_attempt_in_flight_for_the_given_seconds(
    deploy: DeployFactory,
) -> None:
    checkout = load_example("checkout")
    d = await deploy([checkout.build_service(checkout.CheckoutConfig(slow_seconds=60))])
    call = asyncio.create_task(d.invoke("Checkout/slow", [input_entry({"seconds": 0.05})]))
    entries, final = split_frames(await asyncio.wait_for(call, 10))
    assert [e["name"] for _, e in entries] == ["slow-step"]
    assert final == {"t": "output", "value": b'"done"'}
    pending = asyncio.create_task(d.invoke("Checkout/slow", [input_entry()]))
    done, _ = await asyncio.wait({pending}, timeout=0.3)
    assert not done  # the default of 60 s keeps it running
    pending.cancel()


async def test_greeter_handlers(deploy: DeployFactory) -> None:
    greeter = load_example("greeter")
    d = await deploy([greeter.greeter])
    assert split_frames(await d.invoke("Greeter/greet", [input_entry("Ada")]))[1] == {
        "t": "output",
        "value": b'"Hello Ada!"',
    }
    assert split_frames(await d.invoke("Greeter/noop", [input_entry([1, 2])]))[1]["value"] == (
        b"[1, 2]"
    )
    entries, final = split_frames(await d.invoke("Greeter/steps3", [input_entry(7)]))
    assert [e["name"] for _, e in entries] == ["one", "two", "three"]
    assert final["value"] == b"7"

    first = [input_entry("ada lovelace")]
    frames = await d.invoke("Greeter/greet_slowly", first)
    assert split_frames(frames)[1] == {"t": "suspend", "awaiting": [0]}
    journal = [*extend(first, frames), completion_entry(0)]
    final = split_frames(await d.invoke("Greeter/greet_slowly", journal, attempt=2))[1]
    assert final == {"t": "output", "value": b'"Hello Ada Lovelace!"'}
