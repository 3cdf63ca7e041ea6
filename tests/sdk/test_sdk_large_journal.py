"""A deployment accepts attempts as large as the ingress accepts inputs (10 MiB) and journals that
grew beyond that: aiohttp's default 1 MiB request limit made every attempt of such an invocation
fail with 413 until it was paused."""

from __future__ import annotations

from typing import Any

from processor.api.ingress import MAX_BODY_BYTES
from processor.sdk import Context, Service
from processor.sdk.testing import DeployFactory, input_entry, run_entry, split_frames


def _echo() -> list[Service]:
    svc = Service("Big")

    @svc.handler()
    async def size(ctx: Context, arg: Any) -> int:
        step = await ctx.run("step", lambda: "never runs: recorded")
        return len(arg) + len(step)

    return [svc]


async def test_attempt_with_an_input_as_large_as_the_ingress_accepts_runs(
    deploy: DeployFactory,
) -> None:
    d = await deploy(_echo())
    text = "x" * (MAX_BODY_BYTES - 16)  # JSON string: the input entry is ~10 MiB
    journal = [input_entry(text), run_entry("step", "y" * (2 << 20))]
    frames = await d.invoke("Big/size", journal)
    _, final = split_frames(frames)
    assert final == {"t": "output", "value": str(len(text) + (2 << 20)).encode()}
