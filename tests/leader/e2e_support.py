"""End-to-end helpers: deployments as real processes, and a partition run in-process on tmp dirs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from processor.actions import Reply
from processor.commands import Cancel, Invoke, Kill, Pause, Resume
from processor.ids import new_invocation_id
from processor.leader.clock import Clock, FakeClock
from processor.partition import Partition
from processor.registry import Registry, ResumeRejected, resolve_resume_deployment
from processor.retry import RetryPolicy
from processor.status import InvocationView, Status

from .leader_support import eventually, free_port

ROOT = Path(__file__).resolve().parents[2]
CHECKOUT = ROOT / "examples" / "checkout.py"
GREETER = ROOT / "examples" / "greeter.py"
STEPPER = Path(__file__).resolve().parent / "deployments" / "stepper.py"
FAST = RetryPolicy(initial_interval_ms=20, max_interval_ms=50, max_attempts=3)


class DeploymentProcess:
    """A deployment script run as a separate process on a fixed loopback port."""

    def __init__(
        self,
        script: Path,
        args: Sequence[str],
        workdir: Path,
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.script = script
        self.args = list(args)
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.port = port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.output = workdir / f"{script.stem}-{self.port}.out"
        self.proc: subprocess.Popen[bytes] | None = None

    def _launch(self) -> None:
        self._offset = self.output.stat().st_size if self.output.exists() else 0
        with self.output.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(self.script), "--port", str(self.port), *self.args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        self._deadline = time.monotonic() + 30

    def _listening(self) -> bool:
        """Whether the process printed its "listening on" line; raise if it died or hangs."""
        text = self.output.read_bytes()[self._offset :].decode(errors="replace")
        if f"listening on {self.uri}" in text:
            return True
        assert self.proc is not None
        if self.proc.poll() is not None or time.monotonic() > self._deadline:
            raise AssertionError(f"{self.script.name} did not start:\n{text}")
        return False

    async def start(self) -> str:
        self._launch()
        while not self._listening():  # noqa: ASYNC110 - polls another process's output
            await anyio.sleep(0.02)
        return self.uri

    def wait_listening(self) -> str:
        """Block until launched process listens (session fixtures run outside the event loop)."""
        while not self._listening():
            time.sleep(0.02)
        return self.uri

    def kill(self) -> None:
        """SIGKILL: the process dies without closing anything."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()


@asynccontextmanager
async def deployment(
    script: Path,
    *args: str,
    workdir: Path,
    env: dict[str, str] | None = None,
    port: int | None = None,
) -> AsyncIterator[DeploymentProcess]:
    process = DeploymentProcess(script, args, workdir, env, port)
    await process.start()
    try:
        yield process
    finally:
        process.stop()


def ledger_lines(path: Path, invocation_id: str | None = None) -> list[str]:
    """The steps that really ran, in order (of one invocation when given)."""
    if not path.exists():
        return []
    lines = [line.split(" ", 1) for line in path.read_text().splitlines() if " " in line]
    return [step for inv, step in lines if invocation_id in (None, inv)]


class Env:
    """A partition on `tmp` (FileLog + SQLite + leader), its registry, and request helpers."""

    def __init__(self, tmp: Path, clock: Clock | None = None) -> None:
        self.tmp = tmp
        self.registry = Registry(tmp / "data" / "deployments.db")
        self.clock = clock
        self.partition = Partition(0, tmp / "data", self.registry, clock=clock)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Partition]:
        async with self.partition.running() as p:
            yield p

    def reopen(self) -> Partition:
        """A fresh Partition object on the same directories (a restarted processor)."""
        self.partition = Partition(0, self.tmp / "data", self.registry, clock=self.clock)
        return self.partition

    async def invoke(
        self, service: str, handler: str, arg: Any, policy: RetryPolicy | None = None
    ) -> str:
        inv = new_invocation_id()
        effective = policy or self.registry.resolve_retry_policy(service, handler, RetryPolicy())
        body = json.dumps(arg).encode()
        reply = await self.partition.propose(
            lambda rid: Invoke(inv, service, handler, body, effective, request_id=rid)
        )
        assert reply.code == 200, reply
        return inv

    async def view(self, inv: str) -> InvocationView:
        view = await self.partition.get_view(inv)
        assert view is not None, f"{inv} not found"
        return view

    async def wait_status(self, inv: str, *statuses: Status, limit_s: float = 15) -> InvocationView:
        async def check() -> bool:
            return (await self.view(inv)).status in statuses

        try:
            await eventually(check, limit_s, f"{inv} to be {[s.value for s in statuses]}")
        except AssertionError as exc:
            view = await self.view(inv)
            raise AssertionError(f"{exc}; it is {view.status.value}: {view}") from None
        return await self.view(inv)

    async def wait_view(
        self, inv: str, predicate: Callable[[InvocationView], bool], what: str, limit_s: float = 15
    ) -> InvocationView:
        async def check() -> bool:
            return predicate(await self.view(inv))

        try:
            await eventually(check, limit_s, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the invocation is {await self.view(inv)}") from None
        return await self.view(inv)

    async def journal_kinds(self, inv: str) -> list[str]:
        rows = await self.partition.get_journal(inv)
        return [f"{e['kind']}:{e['name']}" if "name" in e else str(e["kind"]) for _, e, _ in rows]

    async def pause(self, inv: str) -> Reply:
        return await self.partition.propose(lambda rid: Pause(inv, rid))

    async def cancel(self, inv: str) -> Reply:
        return await self.partition.propose(lambda rid: Cancel(inv, rid))

    async def kill(self, inv: str) -> Reply:
        return await self.partition.propose(lambda rid: Kill(inv, rid))

    async def resume(self, inv: str, option: str | None = None) -> Reply:
        """Resume as the admin API does: resolve the deployment option before appending."""
        view = await self.view(inv)
        target = resolve_resume_deployment(view, option, self.registry, RetryPolicy())
        if isinstance(target, ResumeRejected):
            return Reply("rejected-before-append", target.code, {"message": target.message})
        return await self.partition.propose(
            lambda rid: Resume(inv, target.deployment_id, target.retry_policy, rid)
        )

    def advance(self, ms: int) -> None:
        assert isinstance(self.clock, FakeClock)
        self.clock.advance(ms)


def now_clock() -> FakeClock:
    """A FakeClock starting at the wall clock, so deployments' sleep times line up with it."""
    return FakeClock(int(time.time() * 1000))


def pattern(text: str) -> re.Pattern[str]:
    return re.compile(re.escape(text))
