"""Child process of the crash-atomicity test: apply a FileLog into a store, optionally SIGKILLing
itself inside batch K's transaction, after all its writes and right before COMMIT.

    python crash_child.py LOG_DIR STATE_DB BATCH_SIZE [CRASH_AT_BATCH [thread|process]]

With `process`, the store writes large batches in its writer process: the K-th batch sent there
pauses before COMMIT, and this process kills itself while the writer waits (the writer must then
exit without committing). It prints `writer <pid>` and `crashing-batch-ends <lsn>` first.

Prints `first-read <lsn>` (where it resumed) and, when it finishes, `applied <lsn> <digest>`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Sequence

from log import Record, open_log
from processor.runner import Runner
from processor.storage import Store
from processor.storage.writer_process import Statement


def crash_in_the_writer_process(store: Store, crash_at: int) -> None:
    process = store._process
    assert process is not None
    print(f"writer {process.pid}", flush=True)
    sent = [0]
    write = process.write

    def pausing(
        statements: Sequence[Statement], pause_before_commit_s: float, wal_limit: int
    ) -> asyncio.Future[tuple[float, bool, int]]:
        sent[0] += 1
        if sent[0] == crash_at:
            # the plan's last statement sets applied_lsn
            print(f"crashing-batch-ends {statements[-1][1][0]}", flush=True)
            asyncio.get_running_loop().call_later(0.5, os.kill, os.getpid(), signal.SIGKILL)
            pause_before_commit_s = 60.0
        return write(statements, pause_before_commit_s, wal_limit)

    process.write = pausing  # type: ignore[method-assign]


async def main(log_dir: str, db: str, batch_size: int, crash_at: int | None, writer: str) -> None:
    log = open_log(log_dir, readonly=True)
    store = await Store.open(db, writer_process=writer == "process")
    commits = [0]

    def before_commit() -> None:
        commits[0] += 1
        if commits[0] == crash_at:
            os.kill(os.getpid(), signal.SIGKILL)

    if writer == "process":
        if crash_at is not None:
            crash_in_the_writer_process(store, crash_at)
    else:
        store.before_commit = before_commit
    first: list[int] = []
    read_batch = log.read_batch

    async def spy(from_lsn: int, max_records: int) -> list[Record]:
        if not first:
            first.append(from_lsn)
            print(f"first-read {from_lsn}", flush=True)
        return await read_batch(from_lsn, max_records)

    log.read_batch = spy  # type: ignore[method-assign]
    runner = Runner(log, store, batch_size=batch_size)
    await runner.catch_up()
    print(f"applied {runner.applied_lsn} {await store.digest()}", flush=True)
    store.close()
    await log.close()


if __name__ == "__main__":
    crash = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[4] != "-" else None
    mode = sys.argv[5] if len(sys.argv) > 5 else "thread"
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), crash, mode))
