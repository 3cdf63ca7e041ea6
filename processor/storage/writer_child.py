"""The state store's writer process: runs planned batch transactions on its own connection.

Started by `storage.writer_process` as `python -I -S writer_child.py DB REQ_FD REPLY_FD LIFE_FD`.
It is deliberately self-contained (the standard library only, nothing of the package), so it starts
in a few tens of milliseconds and cannot drift from what the parent planned: the parent sends the
connection's PRAGMAs and every statement's SQL text; this process only executes.

Why a process: in the parent, a writer thread needs the GIL back after every statement and to
bind every parameter, and gets it only when the event loop (applying the next batch) lets go.
Measured on the apply benchmark, those waits made a 1000-command transaction take about twice its
own CPU time and capped the pipeline. Here the transaction has an interpreter to itself.

Protocol (each message: 4-byte little-endian length, then a pickle; replies in request order):
- ("open", [setup statements], [rewind statements])    -> ("ok", None)
- ("write", [(id, sql), ...] new texts, [(id, params, many), ...], pause_before_commit_s,
   wal_limit_bytes)                      -> ("ok", (seconds, checkpointed, wal_bytes))
  One transaction: BEGIN IMMEDIATE, the statements, COMMIT; `seconds` is BEGIN to COMMIT. When
  the WAL file is bigger than `wal_limit_bytes` after COMMIT, it is checkpointed here right after
  the reply is sent (see `storage.store`), and when that copied every frame the rewind statements
  run as a transaction of their own, so the WAL starts over here and not in the next batch (see
  `storage.writer.REWIND_WAL`). The checkpoint's two fsyncs take ~40 ms here: after the reply,
  the parent keeps applying batches meanwhile. The next write's reply says that a checkpoint ran
  (`checkpointed`) and the WAL's size after it; otherwise `wal_bytes` is the size after COMMIT.
  `pause_before_commit_s` is a test hook (a crash "between apply and commit").
- ("ping",)                                            -> ("ok", None)
  Answered after everything sent before it, checkpoints included (tests wait on it).
- any failure                                          -> ("error", (type name, message))
  After a failed write every later write is refused: batches are queued ahead, and one behind a
  failed batch must not commit (the store would skip the failed batch's records).

It exits when the request pipe closes (the store closed), and at once, without committing what is in
progress, when the lifeline pipe closes: the parent died, and a restarted parent must not find a
transaction of its dead predecessor committing under it. It also looks at the lifeline right before
each COMMIT. It ignores SIGINT and SIGTERM (and starts in a session of its own): Ctrl-C in a
terminal, or a service manager stopping the daemon, signals the whole process group, and the
parent's orderly shutdown still needs its writer for the batch in flight.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import sqlite3
import struct
import sys
import threading
import time
from typing import Any, BinaryIO

_HEADER = struct.Struct("<I")


def _watch_lifeline(fd: int) -> None:
    """Exit the moment the parent's end of the lifeline closes (the parent is gone)."""
    try:
        while os.read(fd, 1):
            pass
    except OSError:
        pass
    os._exit(70)


def _read_exactly(stream: BinaryIO, n: int) -> bytes | None:
    data = stream.read(n)
    if data is None or len(data) < n:
        return None
    return data


def _send(stream: BinaryIO, reply: tuple[str, Any]) -> None:
    body = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(body)) + body)
    stream.flush()


def _wal_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _parent_gone(lifeline: int) -> bool:
    """The lifeline reads as ready only at EOF (the parent never writes to it)."""
    return bool(select.select([lifeline], [], [], 0)[0])


class _Writer:
    def __init__(self, path: str, lifeline: int) -> None:
        self.path = path
        self.lifeline = lifeline
        self.wal_path = f"{os.path.realpath(path)}-wal"
        self.conn: sqlite3.Connection | None = None
        self.sql: dict[int, str] = {}
        self.failure: str | None = None
        self.rewind: list[str] = []
        self.checkpoint_due = False
        # The WAL's size after a checkpoint not yet reported (the next write's reply says it).
        self.checkpointed_wal: int | None = None

    def open(self, setup: list[str], rewind: list[str]) -> None:
        # Room for every multi-row statement variant a batch write uses (see `write_plan`).
        self.conn = sqlite3.connect(self.path, isolation_level=None, cached_statements=512)
        for statement in setup:
            self.conn.execute(statement)
        self.rewind = rewind

    def write(
        self,
        texts: list[tuple[int, str]],
        statements: list[tuple[int, Any, bool]],
        pause_before_commit_s: float,
        wal_limit: int,
    ) -> tuple[float, bool, int]:
        if self.failure is not None:
            raise RuntimeError(f"an earlier batch write failed ({self.failure}); reopen the store")
        conn = self.conn
        if conn is None:
            raise RuntimeError("the writer process has no connection (no 'open' yet)")
        self.sql.update(texts)
        sql = self.sql
        began = time.perf_counter()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for sql_id, params, many in statements:
                    if many:
                        conn.executemany(sql[sql_id], params)
                    else:
                        conn.execute(sql[sql_id], params)
                if pause_before_commit_s:
                    time.sleep(pause_before_commit_s)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            if _parent_gone(self.lifeline):
                # The watcher thread may not have had the GIL yet: do not commit for a dead
                # parent (its successor may already be reading applied_lsn).
                os._exit(70)
            conn.execute("COMMIT")
        except BaseException as exc:
            self.failure = f"{type(exc).__name__}: {exc}"
            raise
        seconds = time.perf_counter() - began
        wal = _wal_size(self.wal_path)
        self.checkpoint_due = wal > wal_limit
        checkpointed, self.checkpointed_wal = self.checkpointed_wal, None
        if checkpointed is not None:
            return seconds, True, checkpointed
        return seconds, False, wal

    def checkpoint(self) -> None:
        """The WAL passed its limit at the last COMMIT: checkpoint it and start it over. Runs
        after that write's reply is sent (its batch is committed), so the parent applies and
        sends the next batches meanwhile instead of waiting on the checkpoint's fsyncs."""
        self.checkpoint_due = False
        conn = self.conn
        if conn is None:
            return
        # A checkpoint or a rewind that fails only delays the rewind.
        try:
            busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if busy == 0 and frames == copied:
                for statement in self.rewind:
                    conn.execute(statement)
        except sqlite3.Error:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
        self.checkpointed_wal = _wal_size(self.wal_path)


def main(argv: list[str]) -> int:
    path, req_fd, reply_fd, life_fd = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_watch_lifeline, args=(life_fd,), daemon=True).start()
    requests = os.fdopen(req_fd, "rb")
    replies = os.fdopen(reply_fd, "wb")
    writer = _Writer(path, life_fd)
    while (header := _read_exactly(requests, _HEADER.size)) is not None:
        body = _read_exactly(requests, _HEADER.unpack(header)[0])
        if body is None:
            break
        reply: tuple[str, Any]
        try:
            message = pickle.loads(body)
            if message[0] == "open":
                writer.open(message[1], message[2])
                reply = ("ok", None)
            elif message[0] == "write":
                reply = ("ok", writer.write(*message[1:]))
            elif message[0] == "ping":
                reply = ("ok", None)
            else:
                reply = ("error", ("ValueError", f"unknown request {message[0]!r}"))
        except Exception as exc:
            reply = ("error", (type(exc).__name__, str(exc)))
        try:
            _send(replies, reply)
        except OSError:
            break  # the parent stopped listening
        if writer.checkpoint_due:
            writer.checkpoint()
    if writer.conn is not None:
        writer.conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
