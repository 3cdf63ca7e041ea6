"""The event loop's side of the state store's writer process (the process itself: `writer_child`).

`WriterProcess.start` spawns the child with three pipes: requests, replies, and a lifeline the
child watches (when this process dies, however abruptly, the lifeline closes and the child exits
without committing what it was writing, exactly as a writer thread dies with its process). Both
data pipes are asyncio pipe transports, so sending a batch never blocks the loop (the transport
buffers what the pipe does not take yet) and a reply is read by the loop itself: no thread in this
process takes part in a write, and nothing here competes with the loop for the GIL.

The request pipe is grown to hold a whole batch (see `_grow_pipe`). A statement's SQL text crosses
the pipe once; afterwards it is referred to by a small integer.

If the child dies, every write in flight fails with `WriterProcessFailed` saying how it ended; the
store then refuses further writes, as after any failed write (a restart resumes at
`applied_lsn + 1`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pickle
import signal
import struct
import subprocess
import sys
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_HEADER = struct.Struct("<I")
_CHILD = str(Path(__file__).with_name("writer_child.py"))
_START_TIMEOUT_S = 30.0
_PIPE_BYTES = 1 << 20

# (SQL, parameters, many): `write_plan.Statement`
Statement = tuple[str, Sequence[Any], bool]


def _grow_pipe(fd: int) -> None:
    """Let the request pipe hold a whole batch (a 1,000-command batch is ~200 KB; Linux pipes
    hold 64 KiB by default, and 1 MiB is the most an unprivileged process may ask for).

    What the pipe does not take stays in the transport until the loop next waits for I/O, and
    while the runner applies the next batch it does not: the writer would get the first 64 KiB
    of a batch, then wait for the rest until the runner awaits the commit, and the two would run
    one after the other instead of side by side (measured: the loop waited 2.1 s for commits
    that took 1.75 s in all, instead of ~0.3 s)."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux only
    if set_size is None:
        return
    for size in (_PIPE_BYTES, _PIPE_BYTES // 4):
        try:
            fcntl.fcntl(fd, set_size, size)
            return
        except OSError:  # above /proc/sys/fs/pipe-max-size, or the user's pipe quota
            continue


def _closes_fds_itself(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether `loop`'s pipe transports close the pipe's fd themselves.

    uvloop hands the fd to libuv, which closes it, and then also closes the file object it was
    given (MagicStack/uvloop#763): with a file object that owns the fd, that second close could
    hit whatever another thread opened under the same number meanwhile (a log segment). So under
    uvloop the file objects do not own their fds; the stdlib loop closes them through the file
    object only."""
    return type(loop).__module__.partition(".")[0] == "uvloop"


class WriterProcessFailed(RuntimeError):
    """The writer process reported an error, or exited, while writes were in flight."""


class _Replies(asyncio.Protocol):
    """Reads length-prefixed replies and settles the oldest pending future with each."""

    def __init__(self, owner: WriterProcess) -> None:
        self.owner = owner
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        while len(buf) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(buf)
            end = _HEADER.size + size
            if len(buf) < end:
                return
            try:
                reply = pickle.loads(buf[_HEADER.size : end])
            except Exception as exc:  # not from our child: nothing more it says can be trusted
                self.owner._broken(f"the writer process sent an unreadable reply ({exc!r})")
                return
            del buf[:end]
            self.owner._settle(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._lost()


class WriterProcess:
    def __init__(self, path: str, proc: subprocess.Popen[bytes], lifeline: int) -> None:
        self.path = path
        self.proc = proc
        self._lifeline = lifeline
        self._pending: deque[asyncio.Future[Any]] = deque()
        self._sql_ids: dict[str, int] = {}
        self._requests: asyncio.WriteTransport | None = None
        self._replies: asyncio.ReadTransport | None = None
        self._dead: str | None = None  # why the child can no longer write

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    async def start(
        cls, path: str, setup: Sequence[str], rewind: Sequence[str] = ()
    ) -> WriterProcess:
        """Spawn the writer for the store at `path`; `setup` are its connection's PRAGMAs,
        `rewind` the transaction that starts the WAL over after a complete checkpoint (none: the
        next write does; see `writer.REWIND_WAL`)."""
        loop = asyncio.get_running_loop()
        req_r, req_w = os.pipe()
        reply_r, reply_w = os.pipe()
        life_r, life_w = os.pipe()
        try:
            # Blocking, but a fork and exec (a few ms) once per store; `close` is synchronous and
            # reaps the child itself, which an asyncio subprocess's watcher would race.
            proc = subprocess.Popen(  # noqa: ASYNC220
                [sys.executable, "-I", "-S", _CHILD, path, str(req_r), str(reply_w), str(life_r)],
                pass_fds=(req_r, reply_w, life_r),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # it prints nothing; a crash's traceback goes to stderr
                # Out of the terminal's process group: a Ctrl-C must not reach it before it has
                # set its signals aside (it stops with its parent, through the lifeline).
                start_new_session=True,
            )
        except BaseException:
            for fd in (req_r, req_w, reply_r, reply_w, life_r, life_w):
                os.close(fd)
            raise
        for fd in (req_r, reply_w, life_r):
            os.close(fd)
        _grow_pipe(req_w)
        writer = cls(path, proc, life_w)
        # Who closes each pipe end: us until a connect call takes it, its transport after (even
        # when the call fails, the transport it made closes it).
        unowned = [req_w, reply_r]
        closefd = not _closes_fds_itself(loop)
        try:
            unowned.remove(req_w)
            writer._requests, _ = await loop.connect_write_pipe(
                asyncio.BaseProtocol, os.fdopen(req_w, "wb", buffering=0, closefd=closefd)
            )
            unowned.remove(reply_r)
            writer._replies, _ = await loop.connect_read_pipe(
                lambda: _Replies(writer),
                os.fdopen(reply_r, "rb", buffering=0, closefd=closefd),
            )
            opened = writer.submit(("open", list(setup), list(rewind)))
            await asyncio.wait_for(opened, _START_TIMEOUT_S)
        except BaseException:
            for fd in unowned:
                os.close(fd)
            writer.close()
            raise
        return writer

    @property
    def idle(self) -> bool:
        """No write is queued or running (call on the loop's thread)."""
        return not self._pending

    def submit(self, message: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Send `message`; the future settles with the child's reply. Never raises: a message
        that cannot be sent fails its future, and the writer is dead from then on."""
        out: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        requests = self._requests
        if self._dead is None and (requests is None or requests.is_closing()):
            self._dead = "the writer process's request pipe is closed"
        if self._dead is not None or requests is None:
            out.set_exception(WriterProcessFailed(self._dead or "the writer process is closed"))
            return out
        try:
            body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
            # uvloop raises here once the pipe is closed; the stdlib loop drops the bytes (and
            # the reply pipe's end then fails every pending write)
            requests.write(_HEADER.pack(len(body)) + body)
        except Exception as exc:
            self._dead = f"a batch could not be sent to the writer process: {exc!r}"
            out.set_exception(WriterProcessFailed(self._dead))
            return out
        self._pending.append(out)
        return out

    def write(
        self, statements: Sequence[Statement], pause_before_commit_s: float, wal_limit: int
    ) -> asyncio.Future[tuple[float, bool, int]]:
        """Queue one batch transaction; resolves to (BEGIN-to-COMMIT seconds, whether the writer
        checkpointed the WAL since its previous reply, the WAL's size in bytes after that
        checkpoint, or else after this COMMIT). A COMMIT that leaves the WAL over `wal_limit` is
        followed by a checkpoint, which the next write's reply reports."""
        ids = self._sql_ids
        texts: list[tuple[int, str]] = []
        refs: list[tuple[int, Sequence[Any], bool]] = []
        for sql, params, many in statements:
            sql_id = ids.get(sql)
            if sql_id is None:
                sql_id = ids[sql] = len(ids)
                texts.append((sql_id, sql))
            refs.append((sql_id, params, many))
        return self.submit(("write", texts, refs, pause_before_commit_s, wal_limit))

    async def ping(self) -> None:
        """Return once the child has done everything sent before (checkpoints included)."""
        await self.submit(("ping",))

    def _settle(self, reply: tuple[str, Any]) -> None:
        if not self._pending:
            return  # a reply nobody waits for: the writer was closed meanwhile
        out = self._pending.popleft()
        if out.done():
            return
        status, value = reply
        if status == "ok":
            out.set_result(value)
        else:
            kind, message = value
            out.set_exception(WriterProcessFailed(f"{kind}: {message}"))

    def _exit_description(self) -> str:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=1.0)
        code = self.proc.returncode
        if code is None:
            how = "closed its reply pipe"
        elif code < 0:
            try:
                how = f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
        else:
            how = f"exited with status {code}"
        return (
            f"the state store's writer process (pid {self.proc.pid}) {how}; the batch it was "
            "writing did not commit unless the store's applied_lsn says so. Restart the daemon "
            "(the partition resumes at applied_lsn + 1; nothing acknowledged is lost) and look "
            "for why it ended (the kernel's OOM killer: `dmesg`)"
        )

    def _broken(self, why: str) -> None:
        self._dead = why
        self.close()

    def _lost(self) -> None:
        if self._dead is None:
            self._dead = self._exit_description()
        while self._pending:
            out = self._pending.popleft()
            if not out.done():
                out.set_exception(WriterProcessFailed(self._dead))

    def close(self) -> None:
        """Stop the child now (idempotent). A write still in flight is rolled back, as in a
        crash, and its future fails; the runner never closes its store with one in flight."""
        if self._dead is None:
            self._dead = "the writer process is closed"
        for transport in (self._requests, self._replies):
            if transport is not None:
                # RuntimeError: the loop is already closed; the pipes close with the process.
                with contextlib.suppress(RuntimeError):
                    transport.close()
        self._requests = self._replies = None
        if self._lifeline >= 0:
            # The transports close their pipes on the loop's next turn; the lifeline stops the
            # child right away, wherever it is.
            os.close(self._lifeline)
            self._lifeline = -1
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:  # stuck in the kernel (a slow disk's fsync)?
                self.proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=2)  # else a zombie until this process exits
        while self._pending:
            out = self._pending.popleft()
            if not out.done():
                out.set_exception(WriterProcessFailed(self._dead))
