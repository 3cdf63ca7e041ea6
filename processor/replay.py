"""Rebuild, verify and trace a partition's state from its log (`processor replay`).

Replay runs the same `Runner` as a live partition over the log, into a fresh SQLite file, with
actions dropped. It never writes to the live store: `--verify` reads the live store inside one
read transaction (a consistent snapshot, also while a daemon is writing it), takes its
`applied_lsn` and digest, replays exactly up to that LSN and compares. The result is a value
(`ReplayResult`), so the CLI, tests and benchmarks read the same figures.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from log import FileLog, open_log
from processor.actions import Action, Reply
from processor.commands import AttemptEntry, AttemptFailed, Command, TimerFired, TimerKey
from processor.runner import LogReader, LogRecord, Runner
from processor.state_machine.types import Transition
from processor.status import InvocationView
from processor.storage.digest import (
    Difference,
    connect_readonly,
    digest_conn,
    first_difference_conn,
)
from processor.storage.store import Store

# Bigger than a live partition's batches: nobody waits on a replay's commits, and the bigger the
# batch, the more writes of one invocation fold into one row (commit cost per command, measured on
# the apply bench's workload: 21-23 us at 1000, 15-17 us at 4000; 10000 gains nothing more).
REPLAY_BATCH_SIZE = 4000


class ReplayError(RuntimeError):
    """Replay cannot run (bad paths, live store ahead of the log, ...)."""


@dataclass(frozen=True, slots=True)
class TraceLine:
    lsn: int
    timestamp_ms: int
    command: str
    before: str | None  # status before, None = not found
    after: str | None
    actions: list[str]
    reply: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "lsn": self.lsn,
            "time": _iso(self.timestamp_ms),
            "command": self.command,
            "before": self.before,
            "after": self.after,
            "actions": self.actions,
            "reply": self.reply,
        }

    def format(self) -> str:
        status = f"{self.before or 'not found'} → {self.after or 'not found'}"
        if self.before == self.after:
            status = f"{self.before or 'not found'} (unchanged)"
        parts = [f"LSN {self.lsn:>8}", _iso(self.timestamp_ms), self.command, status]
        if self.actions:
            parts.append("actions: " + ", ".join(self.actions))
        if self.reply:
            parts.append("reply: " + self.reply)
        return "  ".join(parts)


@dataclass
class ReplayResult:
    log: str
    out: str | None  # the rebuilt store (None when it was a temp file, now deleted)
    first_lsn: int
    last_lsn: int
    records: int
    seconds: float
    digest: str
    live_state: str | None = None
    live_applied_lsn: int | None = None
    live_digest: str | None = None
    divergence: Difference | None = None
    trace: list[TraceLine] = field(default_factory=list)

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    @property
    def verified(self) -> bool | None:
        return None if self.live_digest is None else self.live_digest == self.digest

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "log": self.log,
            "out": self.out,
            "first_lsn": self.first_lsn,
            "last_lsn": self.last_lsn,
            "records": self.records,
            "seconds": round(self.seconds, 6),
            "records_per_s": round(self.records_per_s, 1),
            "digest": self.digest,
        }
        if self.live_digest is not None:
            body["live"] = {
                "state": self.live_state,
                "applied_lsn": self.live_applied_lsn,
                "digest": self.live_digest,
                "match": self.verified,
            }
            body["divergence"] = (
                None
                if self.divergence is None
                else {
                    "table": self.divergence.table,
                    "key": list(self.divergence.key),
                    "replayed": _jsonable(self.divergence.row_a),
                    "live": _jsonable(self.divergence.row_b),
                }
            )
        if self.trace:
            body["trace"] = [t.to_json() for t in self.trace]
        return body


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return repr(value)


def _iso(ms: int) -> str:
    try:
        moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    except (OverflowError, ValueError, OSError):  # beyond year 9999: a deployment's sleep time
        return f"epoch+{ms}ms"
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def describe_command(cmd: Command) -> str:
    """A one-line summary of a command for the trace (payloads left out)."""
    name = type(cmd).__name__
    if isinstance(cmd, AttemptEntry):
        return f"{name}(attempt={cmd.attempt}, index={cmd.index}, kind={cmd.entry.get('kind')})"
    if isinstance(cmd, AttemptFailed):
        f = cmd.failure
        retry = "" if cmd.retryable else ", not retryable"
        return f"{name}(attempt={cmd.attempt}, {f.code} {f.message!r}{retry})"
    if isinstance(cmd, TimerFired):
        return f"{name}({cmd.timer.kind.value} {cmd.timer.key})"
    fields = []
    for attr in ("attempt", "deployment_id", "execute_at", "awaiting", "value", "failure"):
        value = getattr(cmd, attr, None)
        if value is not None:
            fields.append(f"{attr}={value!r}")
    return f"{name}({', '.join(fields)})"


def describe_action(action: Action) -> str:
    fields: list[str] = []
    for k in ("attempt", "timer", "fire_at", "deployment_id"):
        value = getattr(action, k, None)
        if value is None:
            continue
        if isinstance(value, TimerKey):
            fields.append(f"{value.kind.value} {value.key}")
        elif k == "fire_at":
            fields.append(f"at {_iso(value)}")
        else:
            fields.append(f"{k}={value!r}")
    return f"{type(action).__name__}({', '.join(fields)})"


class _Tracer:
    def __init__(self, invocation_id: str) -> None:
        self.invocation_id = invocation_id
        self.lines: list[TraceLine] = []

    def __call__(
        self, rec: LogRecord, cmd: Command, before: InvocationView | None, t: Transition
    ) -> None:
        if getattr(cmd, "invocation_id", None) != self.invocation_id:
            return
        after = None if t.deleted else (t.view if t.changed else before)
        replies = [a for a in t.actions if isinstance(a, Reply)]
        others = [describe_action(a) for a in t.actions if not isinstance(a, Reply)]
        reply = ", ".join(f"{r.code} {r.body}" if r.body else str(r.code) for r in replies)
        self.lines.append(
            TraceLine(
                rec.lsn,
                rec.timestamp_ms,
                describe_command(cmd),
                before.status.value if before else None,
                after.status.value if after else None,
                others,
                reply or None,
            )
        )


@contextlib.contextmanager
def _live_snapshot(path: str) -> Iterator[tuple[sqlite3.Connection, int, str]]:
    """A read transaction on the live store: its applied LSN and digest, consistent together."""
    try:
        conn = connect_readonly(path)
    except FileNotFoundError:
        raise ReplayError(f"live state store {path} does not exist") from None
    try:
        conn.execute("BEGIN")
        row = conn.execute("SELECT applied_lsn FROM partition WHERE id=0").fetchone()
        if row is None:
            raise ReplayError(f"{path} has no partition row: is it a partition state store?")
        yield conn, int(row[0]), digest_conn(conn)
    except sqlite3.DatabaseError as exc:
        raise ReplayError(f"cannot read live state store {path}: {exc}") from None
    finally:
        conn.close()


def open_log_readonly(path: str | Path) -> FileLog:
    """Open a log directory for reading only: it takes no writer lock, so this works while a
    daemon has the log open."""
    return open_log(Path(path), readonly=True)


def _check_paths(out: str | Path | None, live_state: str | Path | None) -> None:
    if out is None:
        return
    if live_state is not None and Path(out).resolve() == Path(live_state).resolve():
        raise ReplayError("--out must not be the live state store")
    if Path(out).exists():
        raise ReplayError(f"{out} already exists; replay writes a fresh store (remove it first)")


@contextlib.asynccontextmanager
async def _output(out: str | Path | None) -> AsyncIterator[tuple[Store, str | None]]:
    if out is not None:
        store = await Store.open(out, thread_name="sqlite-replay", writer_process=True)
        try:
            yield store, str(out)
        finally:
            store.close()
        return
    with tempfile.TemporaryDirectory(prefix="processor-replay-") as tmp:
        store = await Store.open(
            Path(tmp) / "state.db", thread_name="sqlite-replay", writer_process=True
        )
        try:
            yield store, None
        finally:
            store.close()


async def replay(
    log: LogReader,
    *,
    log_name: str = "log",
    out: str | Path | None = None,
    live_state: str | Path | None = None,
    until_lsn: int | None = None,
    trace: str | None = None,
    batch_size: int = REPLAY_BATCH_SIZE,
) -> ReplayResult:
    """Rebuild state from `log` into a fresh store (`out`, or a temp file deleted afterwards).

    With `live_state`, replay up to the live store's applied LSN (never beyond `until_lsn`) and
    compare digests; `divergence` holds the first differing row when they differ.
    """
    _check_paths(out, live_state)
    with contextlib.ExitStack() as stack:
        live: tuple[sqlite3.Connection, int, str] | None = None
        if live_state is not None:
            live = stack.enter_context(_live_snapshot(str(live_state)))
            if live[1] > log.tail():
                raise ReplayError(
                    f"the live store {live_state} has applied up to LSN {live[1]}, but {log_name} "
                    f"ends at LSN {log.tail()}: the log went backwards"
                )
            until_lsn = live[1] if until_lsn is None else min(until_lsn, live[1])
        tracer = _Tracer(trace) if trace else None
        async with _output(out) as (store, out_path):
            runner = Runner(
                log,
                store,
                sink=None,
                batch_size=batch_size,
                until_lsn=until_lsn,
                on_command=tracer,
                log_name=log_name,
            )
            began = time.perf_counter()
            await runner.catch_up()
            seconds = time.perf_counter() - began
            digest = await store.digest()
            result = ReplayResult(
                log=log_name,
                out=out_path,
                first_lsn=1 if runner.records_applied else 0,
                last_lsn=runner.applied_lsn,
                records=runner.records_applied,
                seconds=seconds,
                digest=digest,
                trace=tracer.lines if tracer else [],
            )
            if live is not None:
                conn, applied, live_digest = live
                result.live_state = str(live_state)
                result.live_applied_lsn = applied
                result.live_digest = live_digest
                if live_digest != digest:
                    # Both connections in this thread; the live one still holds its snapshot.
                    replayed = connect_readonly(store.path)
                    try:
                        result.divergence = first_difference_conn(replayed, conn)
                    finally:
                        replayed.close()
            return result
    raise AssertionError("unreachable")  # pragma: no cover
