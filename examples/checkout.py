"""Example deployment: the `Checkout` service, the seed scenario of pause and resume.

`process(order)` takes three durable steps, `reserve`, `charge` and `ship`. Version `v1` has a bug:
its `ship` step raises every time, so the invocation retries and is paused when its attempts run
out. Version `v2` is the fix: deploy it, resume the invocation onto it, and it completes without
running `reserve` and `charge` again. `v3` renames the `charge` step to `charge-card`, which is a
journal mismatch for invocations whose `charge` step was recorded by v1 or v2.

Each step function appends `<invocation_id> <step>` to the ledger file (`--ledger` or
`CHECKOUT_LEDGER`) each time it really runs, fsynced, so tests can count executions. A v1 `ship`
writes its line before failing. When `process` is canceled it compensates what it did (`refund`,
`release`, also in the ledger) and ends with the 409 failure.

Other handlers: `slow({"seconds": s})` runs one step that takes `s` seconds (default
`CHECKOUT_SLOW_SECONDS`, 30) so an attempt stays in flight; `delay({"seconds": s})` runs `before`,
sleeps durably `s` seconds (default 1), then runs `after`.

Retry policy of the service (env): `CHECKOUT_INITIAL_INTERVAL` (100ms), `CHECKOUT_MAX_ATTEMPTS` (3),
`CHECKOUT_ON_MAX_ATTEMPTS` (pause), `CHECKOUT_MAX_INTERVAL` (1s).

    python examples/checkout.py --version v1 --ledger /tmp/ledger --port 0
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from processor.sdk import Context, Service, TerminalError, serve

VERSIONS = ("v1", "v2", "v3")


@dataclass(frozen=True)
class CheckoutConfig:
    version: str = "v2"
    ledger: str | None = None
    retry_policy: Mapping[str, Any] | None = None
    slow_seconds: float = 30.0


def policy_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    max_attempts: int | str = env.get("CHECKOUT_MAX_ATTEMPTS", "3")
    if max_attempts != "unlimited":
        max_attempts = int(max_attempts)
    return {
        "initial-interval": env.get("CHECKOUT_INITIAL_INTERVAL", "100ms"),
        "max-interval": env.get("CHECKOUT_MAX_INTERVAL", "1s"),
        "max-attempts": max_attempts,
        "on-max-attempts": env.get("CHECKOUT_ON_MAX_ATTEMPTS", "pause"),
    }


def _record(ledger: str | None, invocation_id: str, step: str) -> None:
    if ledger is None:
        return
    with open(ledger, "a", encoding="utf-8") as f:
        f.write(f"{invocation_id} {step}\n")
        f.flush()
        os.fsync(f.fileno())


def build_service(config: CheckoutConfig) -> Service:
    if config.version not in VERSIONS:
        raise ValueError(f"unknown checkout version {config.version!r}; one of {VERSIONS}")
    checkout = Service("Checkout", retry_policy=config.retry_policy)

    def step(ctx: Context, name: str, result: Any, fail: bool = False) -> Callable[[], Any]:
        def run() -> Any:
            _record(config.ledger, ctx.invocation_id, name)
            if fail:
                raise RuntimeError(f"{config.version} bug: the {name} step crashes")
            return result

        return run

    @checkout.handler()
    async def process(ctx: Context, order: Any) -> dict[str, Any]:
        order_id = str(order.get("id", "order") if isinstance(order, dict) else order)
        done: list[str] = []
        try:
            reservation = await ctx.run("reserve", step(ctx, "reserve", f"res-{order_id}"))
            done.append("reserve")
            charge_name = "charge-card" if config.version == "v3" else "charge"
            charge = await ctx.run(charge_name, step(ctx, charge_name, f"pay-{order_id}"))
            done.append("charge")
            shipment = await ctx.run(
                "ship", step(ctx, "ship", f"ship-{order_id}", fail=config.version == "v1")
            )
        except TerminalError:
            # Undo in reverse order what this invocation did, then end with the failure.
            for undo, after in (("refund", "charge"), ("release", "reserve")):
                if after in done:
                    await ctx.run(undo, step(ctx, undo, True))
            raise
        return {
            "order": order_id,
            "reservation": reservation,
            "charge": charge,
            "shipment": shipment,
        }

    @checkout.handler()
    async def slow(ctx: Context, arg: Any) -> str:
        seconds = arg.get("seconds") if isinstance(arg, dict) else None
        duration = config.slow_seconds if seconds is None else float(seconds)

        async def work() -> str:
            _record(config.ledger, ctx.invocation_id, "slow-start")
            await asyncio.sleep(duration)
            _record(config.ledger, ctx.invocation_id, "slow-done")
            return "done"

        result: str = await ctx.run("slow-step", work)
        return result

    @checkout.handler()
    async def delay(ctx: Context, arg: Any) -> str:
        seconds = float(arg.get("seconds", 1.0)) if isinstance(arg, dict) else 1.0
        await ctx.run("before", step(ctx, "before", True))
        await ctx.sleep(timedelta(seconds=seconds))
        await ctx.run("after", step(ctx, "after", True))
        return "woke up"

    return checkout


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The Checkout example deployment")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9081, help="0 picks a free port")
    parser.add_argument(
        "--version", choices=VERSIONS, default=os.environ.get("CHECKOUT_VERSION", "v1")
    )
    parser.add_argument("--ledger", default=os.environ.get("CHECKOUT_LEDGER"))
    args = parser.parse_args(argv)
    config = CheckoutConfig(
        version=args.version,
        ledger=args.ledger,
        retry_policy=policy_from_env(os.environ),
        slow_seconds=float(os.environ.get("CHECKOUT_SLOW_SECONDS", "30")),
    )
    serve([build_service(config)], host=args.host, port=args.port)


if __name__ == "__main__":
    main()
