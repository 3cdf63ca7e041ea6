"""Example deployment: the `Greeter` service.

Handlers: `greet(name)` answers at once (no steps); `greet_slowly(name)` fetches a profile in a
`ctx.run` step, sleeps durably, then greets; `steps3(x)` takes three `ctx.run` steps (benchmarks);
`noop(x)` returns its input.

    python examples/greeter.py --port 9080     # prints "listening on http://127.0.0.1:9080"

`greet_slowly` sleeps `GREETER_SLEEP_SECONDS` (default 1.0), or `sleep_seconds` when the input is a
map `{"name": ..., "sleep_seconds": ...}`.
"""

from __future__ import annotations

import argparse
import os
from datetime import timedelta
from typing import Any

from processor.sdk import Context, Service, serve

greeter = Service("Greeter")


@greeter.handler()
async def greet(ctx: Context, name: str) -> str:
    return f"Hello {name}!"


@greeter.handler()
async def greet_slowly(ctx: Context, arg: Any) -> str:
    if isinstance(arg, dict):
        name = str(arg.get("name", "stranger"))
        seconds = float(arg.get("sleep_seconds", 1.0))
    else:
        name = str(arg)
        seconds = float(os.environ.get("GREETER_SLEEP_SECONDS", "1.0"))
    profile = await ctx.run("fetch-profile", lambda: {"display_name": name.title()})
    await ctx.sleep(timedelta(seconds=seconds))
    return f"Hello {profile['display_name']}!"


@greeter.handler()
async def steps3(ctx: Context, arg: Any) -> Any:
    for step in ("one", "two", "three"):
        await ctx.run(step, lambda: arg)
    return arg


@greeter.handler()
async def noop(ctx: Context, arg: Any) -> Any:
    return arg


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The Greeter example deployment")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9080, help="0 picks a free port")
    args = parser.parse_args(argv)
    serve([greeter], host=args.host, port=args.port)


if __name__ == "__main__":
    main()
