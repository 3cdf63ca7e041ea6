"""A test deployment: `Stepper/work` takes three durable steps; step 3 blocks while a file exists.

Each step appends `<invocation_id> step-<i>` to the ledger (fsynced) when it really runs, so a test
can kill this process in the middle of step 3 and prove that steps 1 and 2 never run again.

    python stepper.py --port 0 --ledger LEDGER --block BLOCKFILE
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from processor.sdk import Context, Service, serve


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--block", required=True)
    args = parser.parse_args()
    stepper = Service("Stepper")

    def record(ctx: Context, name: str) -> None:
        with open(args.ledger, "a", encoding="utf-8") as f:
            f.write(f"{ctx.invocation_id} {name}\n")
            f.flush()
            os.fsync(f.fileno())

    @stepper.handler()
    async def work(ctx: Context, arg: Any) -> str:
        for i in (1, 2, 3):

            async def step(i: int = i) -> int:
                record(ctx, f"step-{i}")
                if i == 3:
                    # Polls a file another process removes: there is no event to wait on.
                    while os.path.exists(args.block):  # noqa: ASYNC110, ASYNC240
                        await asyncio.sleep(0.01)
                return i

            await ctx.run(f"step-{i}", step)
        return "all steps done"

    serve([stepper], port=args.port)


if __name__ == "__main__":
    main()
