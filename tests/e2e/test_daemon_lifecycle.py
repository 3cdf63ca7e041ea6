"""The daemon as an operator sees it: graceful SIGTERM, the data-directory lock, recovery after
SIGKILL without help, `/health` and `/metrics`."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import aiohttp
import anyio
import pytest

from processor.ids import make_invocation_id
from tests.leader.e2e_support import CHECKOUT

from .conftest import StartDeployment
from .support import (
    Daemon,
    describe,
    get_json,
    ledger,
    register,
    request_json,
    send,
    wait_status,
)

pytestmark = pytest.mark.slow

METRICS = {  # family: Prometheus type
    "processor_invocations": "gauge",
    "processor_attempts_total": "counter",
    "processor_pauses_total": "counter",
    "processor_log_append_seconds": "histogram",  # samples: test_log_append_latency_is_observed
    "processor_apply_batch_seconds": "histogram",
    "processor_applied_lsn": "gauge",
    "processor_ingress_requests_total": "counter",
}


async def test_sigterm_with_an_attempt_in_flight_exits_cleanly_within_seconds(
    daemon: Daemon,
    http: aiohttp.ClientSession,
    start_deployment: StartDeployment,
    tmp_path: Path,
) -> None:
    ledger_file = tmp_path / "ledger"
    checkout = await start_deployment(CHECKOUT, "--version", "v2", "--ledger", str(ledger_file))
    await register(http, daemon, checkout.uri)
    inv = await send(http, daemon, "Checkout/slow", {"seconds": 60})
    with anyio.fail_after(20):
        while not ledger(ledger_file)[(inv, "slow-start")]:  # noqa: ASYNC110 - a file, no event
            await anyio.sleep(0.05)

    took = await daemon.stop(timeout_s=5)  # asserts exit code 0 and "daemon stopped"
    assert took < 5
    assert daemon.errors_logged() == []

    # Restarted, it picks the running invocation up again from its stored state.
    await daemon.start()
    view = await wait_status(http, daemon, inv, "running")
    assert view["attempt"] >= 1
    await daemon.stop(timeout_s=5)


async def test_second_daemon_on_the_same_data_dir_exits_with_a_clear_error(
    daemon: Daemon, make_daemon: Callable[..., Daemon], http: aiohttp.ClientSession
) -> None:
    second = make_daemon(name="second")

    def run_second() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            second.command(), capture_output=True, text=True, env=second.env, timeout=30
        )

    done = await anyio.to_thread.run_sync(run_second)
    assert done.returncode != 0
    assert "another daemon" in done.stderr, done.stderr
    assert str(daemon.data_dir) in done.stderr, done.stderr
    assert "--data-dir" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    # The first daemon is unharmed.
    assert daemon.running
    assert await get_json(http, f"{daemon.admin_url}/health") == (
        200,
        {"status": "ok", "partitions": 4},
    )
    await daemon.stop()


async def test_daemon_restarted_after_sigkill_recovers_without_help(
    daemon: Daemon,
    http: aiohttp.ClientSession,
    start_deployment: StartDeployment,
    tmp_path: Path,
) -> None:
    ledger_file = tmp_path / "ledger"
    checkout = await start_deployment(CHECKOUT, "--version", "v2", "--ledger", str(ledger_file))
    await register(http, daemon, checkout.uri)
    done = await send(http, daemon, "Checkout/process", {"id": "o-1"})
    held = await send(http, daemon, "Checkout/slow", {"seconds": 60})
    await wait_status(http, daemon, done, "completed")
    await wait_status(http, daemon, held, "running")
    status, _ = await request_json(http, "PATCH", f"{daemon.admin_url}/invocations/{held}/pause")
    assert status == 202
    before = await describe(http, daemon, done)

    daemon.kill()
    await daemon.start()  # the LOCK of the dead process does not stop it

    assert await describe(http, daemon, done) == before
    paused = await describe(http, daemon, held)
    assert paused["status"] == "paused"  # a paused invocation does not start on restart
    # The registry survived, and the recovered daemon takes new work.
    status, body = await get_json(http, f"{daemon.admin_url}/deployments")
    assert status == 200 and [d["uri"] for d in body["deployments"]] == [checkout.uri]
    fresh = await send(http, daemon, "Checkout/process", {"id": "o-2"})
    view = await wait_status(http, daemon, fresh, "completed")
    assert view["result"]["value"]["order"] == "o-2"
    runs = ledger(ledger_file)
    assert [runs[(done, s)] for s in ("reserve", "charge", "ship")] == [1, 1, 1]
    assert runs[(held, "slow-start")] == 1
    await daemon.stop()


async def test_health_and_metrics_expose_the_named_series_without_invocation_labels(
    daemon: Daemon,
    http: aiohttp.ClientSession,
    start_deployment: StartDeployment,
    tmp_path: Path,
) -> None:
    assert await get_json(http, f"{daemon.admin_url}/health") == (
        200,
        {"status": "ok", "partitions": 4},
    )
    checkout = await start_deployment(
        CHECKOUT, "--version", "v2", "--ledger", str(tmp_path / "ledger")
    )
    await register(http, daemon, checkout.uri)
    done = await send(http, daemon, "Checkout/process", {"id": "o-1"})
    held = await send(http, daemon, "Checkout/slow", {"seconds": 60})
    await wait_status(http, daemon, done, "completed")
    await wait_status(http, daemon, held, "running")
    status, _ = await request_json(http, "PATCH", f"{daemon.admin_url}/invocations/{held}/pause")
    assert status == 202
    status, _ = await request_json(http, "POST", f"{daemon.ingress_url}/Nowhere/x", json={})
    assert status == 404
    status, _ = await get_json(http, f"{daemon.ingress_url}/invocations/{held}/output")
    assert status == 470

    async with http.get(f"{daemon.admin_url}/metrics") as response:
        assert response.status == 200
        assert response.headers["content-type"].startswith("text/plain")
        text = await response.text()
    for name, kind in METRICS.items():
        assert f"\n# TYPE {name} {kind}\n" in text, f"{name} missing:\n{text}"

    def value(series: str) -> float:
        found = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
        assert found, f"{series} missing:\n{text}"
        return float(found.group(1))

    assert value('processor_ingress_requests_total{code="202",route="send"}') == 2
    assert value('processor_ingress_requests_total{code="404",route="call"}') == 1
    assert value('processor_ingress_requests_total{code="470",route="output"}') == 1
    assert value('processor_pauses_total{reason="manual"}') == 1
    assert value('processor_pauses_total{reason="max-attempts"}') == 0
    assert value('processor_attempts_total{outcome="completed"}') >= 1
    assert value('processor_attempts_total{outcome="aborted"}') >= 1
    assert sum(
        map(float, re.findall(r"^processor_apply_batch_seconds_count\S* (\S+)$", text, re.M))
    )
    by_status = re.findall(
        r'^processor_invocations\{partition="\d+",status="(\S+)"\} (\S+)$', text, re.M
    )
    totals: dict[str, float] = {}
    for name, count in by_status:
        totals[name] = totals.get(name, 0) + float(count)
    assert totals.get("completed") == 1 and totals.get("paused") == 1, totals
    lsns = re.findall(r'^processor_applied_lsn\{partition="(\d+)"\} (\S+)$', text, re.M)
    assert sorted(p for p, _ in lsns) == ["0", "1", "2", "3"]
    assert "inv_" not in text  # no per-invocation labels


async def test_log_append_latency_is_observed(
    daemon: Daemon,
    http: aiohttp.ClientSession,
    start_deployment: StartDeployment,
    tmp_path: Path,
) -> None:
    checkout = await start_deployment(CHECKOUT, "--version", "v2")
    await register(http, daemon, checkout.uri)
    await wait_status(
        http, daemon, await send(http, daemon, "Checkout/process", {"id": "o"}), "completed"
    )
    async with http.get(f"{daemon.admin_url}/metrics") as response:
        text = await response.text()
    counts = re.findall(r"^processor_log_append_seconds_count\{[^}]*\} (\S+)$", text, re.M)
    assert sum(float(c) for c in counts) >= 4, text


async def test_a_second_signal_during_graceful_shutdown_exits_at_once(
    daemon: Daemon,
    http: aiohttp.ClientSession,
    start_deployment: StartDeployment,
) -> None:
    checkout = await start_deployment(CHECKOUT, "--version", "v2")
    await register(http, daemon, checkout.uri)
    # A caller waiting on a long invocation keeps the ingress busy, so the graceful shutdown
    # waits for it (up to its grace period) after the first signal.
    waiting = asyncio.ensure_future(
        http.post(f"{daemon.ingress_url}/Checkout/slow", json={"seconds": 60})
    )
    try:
        running_url = f"{daemon.admin_url}/invocations?status=running"
        with anyio.fail_after(20):
            while not (await get_json(http, running_url))[1]["invocations"]:  # noqa: ASYNC110 - polls an HTTP API
                await anyio.sleep(0.05)
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGTERM)
        with anyio.fail_after(10):
            while "signal received" not in daemon.log_text():  # noqa: ASYNC110 - a log file
                await anyio.sleep(0.02)
        daemon.proc.send_signal(signal.SIGTERM)
        code = await daemon.wait_exit(timeout_s=1.5)
        assert code == 128 + signal.SIGTERM  # exited at once, not after the graceful path
        assert "daemon stopped" not in daemon.log_text()
    finally:
        waiting.cancel()


async def test_a_partition_with_a_corrupt_log_stops_alone_and_the_others_keep_serving(
    make_daemon: Callable[..., Daemon], http: aiohttp.ClientSession
) -> None:
    daemon = make_daemon(partitions=2)
    for _ in range(2):  # two takeovers: two records in every partition's log
        await daemon.start()
        await daemon.stop(timeout_s=10)
    segment = daemon.data_dir / "partitions" / "1" / "log" / "00000000000000000001.seg"
    raw = bytearray(segment.read_bytes())
    raw[24] ^= 0xFF  # the first record's payload: corruption that is not at the tail
    segment.write_bytes(bytes(raw))

    await daemon.start()
    status, health = await get_json(http, f"{daemon.admin_url}/health")
    assert status == 200 and health["status"] == "degraded"
    assert "1" in health["failed_partitions"] and "0" not in health["failed_partitions"]
    assert "00000000000000000001.seg" in health["failed_partitions"]["1"]

    on_p0 = make_invocation_id(0, 1)  # key ranges split evenly: key 0 is partition 0
    on_p1 = make_invocation_id(1 << 63, 1)  # the upper half is partition 1
    status, body = await get_json(http, f"{daemon.admin_url}/invocations/{on_p0}")
    assert status == 404  # partition 0 answers
    status, body = await get_json(http, f"{daemon.admin_url}/invocations/{on_p1}")
    assert status == 503 and "partition 1 stopped" in body["message"]
    assert "stays stopped until the cause is fixed" in body["message"]  # retrying will not help
    async with http.get(f"{daemon.admin_url}/metrics") as metrics:
        assert metrics.status == 200
    await daemon.stop(timeout_s=10)


async def test_a_garbage_state_store_stops_its_partition_with_the_file_and_the_fix(
    make_daemon: Callable[..., Daemon], http: aiohttp.ClientSession
) -> None:
    daemon = make_daemon(partitions=2)
    state = daemon.data_dir / "partitions" / "1" / "state.db"
    state.parent.mkdir(parents=True)
    state.write_bytes(b"not a database " * 500)

    await daemon.start()
    status, health = await get_json(http, f"{daemon.admin_url}/health")
    assert status == 200 and health["status"] == "degraded"
    problem = health["failed_partitions"]["1"]
    assert str(state) in problem and "cannot be read" in problem
    assert "rebuild it from the log" in problem
    await daemon.stop(timeout_s=10)

    # The advice works: without the file the partition rebuilds from its log and serves.
    state.unlink()
    await daemon.start()
    assert await get_json(http, f"{daemon.admin_url}/health") == (
        200,
        {"status": "ok", "partitions": 2},
    )
    await daemon.stop(timeout_s=10)
