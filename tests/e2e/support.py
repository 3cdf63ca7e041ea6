"""End-to-end helpers: the daemon and the CLI as real processes, and admin/ingress HTTP helpers.

`Daemon` runs `python -m processor serve` on a data directory with both listeners on port 0 (the
"daemon ready" log line tells the ports, so there is no race for a free port) and waits for
`GET /health`. `Cli` runs `python -m processor …` as a subprocess with `PROCESSOR_ADMIN_URL` set and
`CI=true` in its environment, so a test proves the CLI never confirms a query on its own.
Deployments are the leader tests' `DeploymentProcess` (reused as is).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anyio

from log.protocol import Record
from processor.replay import open_log_readonly
from tests.leader.e2e_support import ROOT

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


class Daemon:
    """One `processor serve` process on `data_dir`; restartable: each start binds new ports and
    appends to the same output file."""

    def __init__(
        self,
        workdir: Path,
        *,
        partitions: int = 4,
        env: dict[str, str] | None = None,
        name: str = "daemon",
    ) -> None:
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.partitions = partitions
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.output = workdir / f"{name}.stderr"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ingress_url = ""
        self.admin_url = ""

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "processor",
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--partitions",
            str(self.partitions),
            "--ingress-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ]

    def log_text(self) -> str:
        return self.output.read_text(errors="replace") if self.output.exists() else ""

    async def start(self) -> Daemon:
        offset = self.output.stat().st_size if self.output.exists() else 0
        with self.output.open("ab") as out:
            self.proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once; no waiting here
                self.command(), stdout=out, stderr=out, env=self.env, cwd=self.workdir
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        ready: dict[str, Any] | None = None
        while ready is None:
            for line in self.output.read_bytes()[offset:].decode(errors="replace").splitlines():
                if '"daemon ready"' in line:
                    ready = json.loads(line)
            if ready is None:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the daemon did not start:\n{self.log_text()}")
                await anyio.sleep(0.02)
        self.ingress_url = f"http://{ready['ingress']}"
        self.admin_url = f"http://{ready['admin']}"
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.admin_url}/health") as response,
        ):
            assert response.status == 200, await response.text()
            health = await response.json()
        assert health["partitions"] == self.partitions, health
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def wait_exit(self, timeout_s: float) -> int:
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the daemon did not exit within {timeout_s}s:\n{self.log_text()[-3000:]}"
                )
            await anyio.sleep(0.02)
        return self.proc.returncode

    async def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> float:
        """SIGTERM; asserts a clean exit (code 0) within `timeout_s`; answers how long it took."""
        assert self.proc is not None and self.proc.poll() is None, "the daemon is not running"
        began = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = await self.wait_exit(timeout_s)
        assert code == 0, f"the daemon exited with {code}:\n{self.log_text()[-3000:]}"
        assert '"daemon stopped"' in self.log_text(), self.log_text()[-3000:]
        return time.monotonic() - began

    def kill(self) -> None:
        """SIGKILL: the daemon dies with nothing flushed or closed by itself."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def errors_logged(self) -> list[str]:
        return [line for line in self.log_text().splitlines() if '"level": "error"' in line]


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


class Cli:
    """`python -m processor …` against one admin URL; CI=true is set on purpose (see module doc)."""

    def __init__(self, admin_url: str) -> None:
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "PROCESSOR_ADMIN_URL": admin_url,
            "CI": "true",
            "COLUMNS": "200",
        }

    async def run(self, *args: str, stdin: str | None = None, timeout_s: float = 60) -> CliResult:
        def call() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "processor", *args],
                input=stdin if stdin is not None else "",
                capture_output=True,
                text=True,
                env=self.env,
                timeout=timeout_s,
            )

        done = await anyio.to_thread.run_sync(call)
        return CliResult(done.returncode, done.stdout, done.stderr)

    async def ok(self, *args: str, stdin: str | None = None) -> CliResult:
        result = await self.run(*args, stdin=stdin)
        assert result.code == 0, f"processor {' '.join(args)}: {result}"
        return result

    async def json(self, *args: str) -> Any:
        return json.loads((await self.ok(*args, "--output", "json")).stdout)


# -- HTTP helpers ---------------------------------------------------------------------------------


async def get_json(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url) as response:
        return response.status, await response.json(content_type=None)


async def request_json(
    http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, Any]:
    async with http.request(method, url, **kwargs) as response:
        return response.status, await response.json(content_type=None)


async def register(http: aiohttp.ClientSession, daemon: Daemon, uri: str) -> str:
    status, body = await request_json(
        http, "POST", f"{daemon.admin_url}/deployments", json={"uri": uri}
    )
    assert status in (200, 201), body
    return str(body["id"])


async def send(
    http: aiohttp.ClientSession,
    daemon: Daemon,
    target: str,
    arg: Any,
    *,
    key: str | None = None,
    delay: str | None = None,
) -> str:
    """POST /{target}/send; asserts 202 and answers the invocation id."""
    headers = {"idempotency-key": key} if key is not None else {}
    params = {"delay": delay} if delay is not None else {}
    status, body = await request_json(
        http,
        "POST",
        f"{daemon.ingress_url}/{target}/send",
        json=arg,
        headers=headers,
        params=params,
    )
    assert status == 202, (status, body)
    return str(body["invocationId"])


async def describe(http: aiohttp.ClientSession, daemon: Daemon, inv: str) -> dict[str, Any]:
    status, body = await get_json(http, f"{daemon.admin_url}/invocations/{inv}")
    assert status == 200, (status, body)
    assert isinstance(body, dict)
    return body


async def list_invocations(
    http: aiohttp.ClientSession, daemon: Daemon, **query: str
) -> list[dict[str, Any]]:
    params = {"limit": "10000", **query}
    async with http.get(f"{daemon.admin_url}/invocations", params=params) as response:
        body = await response.json()
        assert response.status == 200, body
    rows: list[dict[str, Any]] = body["invocations"]
    return rows


async def wait_status(
    http: aiohttp.ClientSession, daemon: Daemon, inv: str, *statuses: str, limit_s: float = 20
) -> dict[str, Any]:
    deadline = time.monotonic() + limit_s
    while True:
        body = await describe(http, daemon, inv)
        if body["status"] in statuses:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"{inv} is {body['status']}, not {statuses}: {body}")
        await anyio.sleep(0.05)


async def wait_count(
    http: aiohttp.ClientSession,
    daemon: Daemon,
    expected: int,
    limit_s: float = 20,
    **query: str,
) -> list[dict[str, Any]]:
    """Poll the list until exactly `expected` invocations match `query`."""
    deadline = time.monotonic() + limit_s
    while True:
        rows = await list_invocations(http, daemon, **query)
        if len(rows) == expected:
            return rows
        if time.monotonic() > deadline:
            seen = Counter(r["status"] for r in rows)
            raise AssertionError(f"{len(rows)} match {query}, not {expected}: {dict(seen)}")
        await anyio.sleep(0.1)


# -- logs and ledgers -----------------------------------------------------------------------------


async def log_tail(data_dir: Path, partition: int) -> tuple[int, Record | None]:
    """(tail LSN, last record) of a partition's log, read-only (works while the daemon runs)."""
    log = open_log_readonly(data_dir / "partitions" / str(partition) / "log")
    try:
        tail = log.tail()
        last = (await log.read_batch(tail, 1))[0] if tail >= log.first_lsn() and tail else None
        return tail, last
    finally:
        await log.close()


async def log_tails(data_dir: Path, partitions: int) -> list[tuple[int, Record | None]]:
    return [await log_tail(data_dir, p) for p in range(partitions)]


def ledger(path: Path) -> Counter[tuple[str, str]]:
    """How many times each (invocation id, step) really ran."""
    if not path.exists():
        return Counter()
    pairs = (line.split(" ", 1) for line in path.read_text().splitlines() if " " in line)
    return Counter((inv, step) for inv, step in pairs)
