"""Child process of the crash-atomicity test: apply a FileLog into a store, optionally SIGKILLing
itself inside batch K's transaction, after all its writes and right before COMMIT.

    python crash_child.py LOG_DIR STATE_DB BATCH_SIZE [CRASH_AT_BATCH]

Prints `first-read <lsn>` (where it resumed) and, when it finishes, `applied <lsn> <digest>`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from log import Record, open_log
from processor.runner import Runner
from processor.storage import Store


async def main(log_dir: str, db: str, batch_size: int, crash_at: int | None) -> None:
    log = open_log(log_dir, readonly=True)
    store = await Store.open(db)
    commits = [0]

    def before_commit() -> None:
        commits[0] += 1
        if commits[0] == crash_at:
            os.kill(os.getpid(), signal.SIGKILL)

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
    crash = int(sys.argv[4]) if len(sys.argv) > 4 else None
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), crash))
