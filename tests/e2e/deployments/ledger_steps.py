"""A test deployment: `Ledger/steps({"id": …, "step_ms": n})` takes three durable steps, `one`,
`two` and `three`; each appends `<invocation_id> <step>` to the ledger (fsynced) when it really
runs, then takes `step_ms` milliseconds, so a few hundred invocations stay in flight at once.

    python ledger_steps.py --port 0 --ledger LEDGER
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from processor.sdk import Context, Service, serve

STEPS = ("one", "two", "three")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ledger", required=True)
    args = parser.parse_args()
    service = Service("Ledger")

    def record(ctx: Context, name: str) -> None:
        with open(args.ledger, "a", encoding="utf-8") as f:
            f.write(f"{ctx.invocation_id} {name}\n")
            f.flush()
            os.fsync(f.fileno())

    @service.handler()
    async def steps(ctx: Context, arg: Any) -> dict[str, Any]:
        seconds = float(arg.get("step_ms", 0)) / 1000
        done: list[str] = []
        for name in STEPS:

            async def step(name: str = name) -> str:
                record(ctx, name)
                await asyncio.sleep(seconds)
                return f"{name}-{arg['id']}"

            done.append(await ctx.run(name, step))
        return {"id": arg["id"], "steps": done}

    serve([service], port=args.port)


if __name__ == "__main__":
    main()
