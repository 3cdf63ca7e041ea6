"""Child process for the crash test: appends forever with fsync=always, printing each acked LSN.

    python -m tests.log.log_crash_child <log dir> [inline fsync threshold µs]   (from the repo root)

Payloads are derived from their LSN (LSNs are assigned in call order), so the parent can check
every record after it kills this process with SIGKILL.
"""

from __future__ import annotations

import asyncio
import sys

from log import open_log
from tests.log.log_helpers import payload_for


async def main(directory: str, inline_fsync_under_us: int) -> None:
    log = open_log(
        directory,
        fsync="always",
        segment_size=32 << 10,
        inline_fsync_under_us=inline_fsync_under_us,
    )
    next_lsn = log.tail() + 1
    out = sys.stdout
    out.write(f"ready {log.tail()}\n")
    out.flush()

    def reserve(count: int) -> list[bytes]:
        nonlocal next_lsn
        payloads = [payload_for(next_lsn + i, 100) for i in range(count)]
        next_lsn += count
        return payloads

    async def single() -> None:
        while True:
            lsn = await log.append(reserve(1)[0])
            out.write(f"ack {lsn}\n")
            out.flush()

    async def batches() -> None:
        while True:
            lsns = await log.append_batch(reserve(7))
            out.write("".join(f"ack {lsn}\n" for lsn in lsns))
            out.flush()

    await asyncio.gather(*(single() for _ in range(16)), batches())


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0))
