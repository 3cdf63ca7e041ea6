"""Property: whatever the program of steps and wherever attempts are cut short, replaying the
journal never re-runs a stored step, indexes stay contiguous, completion ids stay unique, and the
invocation ends with the same output as an uninterrupted run."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from processor.sdk import Context, Service
from processor.sdk.attempt import AttemptRequest, run_attempt
from processor.sdk.testing import completion_entry, input_entry

Op = tuple[str, int]  # ("run", value) or ("sleep", 0)

programs = st.lists(
    st.one_of(st.tuples(st.just("run"), st.integers(0, 99)), st.just(("sleep", 0))),
    max_size=8,
)
# For each attempt: how many of its new entries reach the journal before the connection drops
# (None: all of them, and the final object too).
cuts = st.lists(st.one_of(st.none(), st.integers(0, 3)), max_size=12)


def program_service(program: list[Op], ran: list[int], stored: set[int]) -> Service:
    svc = Service("Prog")

    @svc.handler()
    async def go(ctx: Context, start: int) -> list[Any]:
        seen: list[Any] = [start]
        for position, (kind, value) in enumerate(program):
            if kind == "sleep":
                await ctx.sleep(0)
                continue

            def fn(position: int = position, value: int = value) -> int:
                assert position not in stored, f"step {position} ran again after being stored"
                ran.append(position)
                return value * 2

            seen.append(await ctx.run(f"step-{position}", fn))
        seen.append(ctx.random())
        return seen

    return svc


async def drive(program: list[Op], cut_plan: list[int | None]) -> tuple[Any, list[dict[str, Any]]]:
    ran: list[int] = []
    stored: set[int] = set()
    handler = program_service(program, ran, stored).handlers["go"]
    journal: list[dict[str, Any]] = [input_entry(5)]
    for attempt in range(1, 100):
        cut = cut_plan[attempt - 1] if attempt <= len(cut_plan) else None
        delivered: list[tuple[int, dict[str, Any]]] = []

        async def emit(index: int, entry: dict[str, Any]) -> None:
            delivered.append((index, entry))  # noqa: B023 - consumed within this iteration

        request = AttemptRequest("inv_prop", attempt, list(journal), seed=11)
        final = await run_attempt(handler, request, emit)
        if cut is not None:
            delivered = delivered[:cut]
        for index, entry in delivered:
            assert index == len(journal)
            journal.append(entry)
            if entry["kind"] == "run":
                stored.add(int(entry["name"].split("-")[1]))
        if cut is not None:
            continue  # the answer was lost mid-stream: retry
        assert final["t"] != "error", final
        if final["t"] == "suspend":
            journal.extend(completion_entry(c) for c in final["awaiting"])
            continue
        assert final["t"] == "output"
        return json.loads(final["value"]), journal
    raise AssertionError("the invocation did not finish")


@settings(max_examples=60, deadline=None)
@given(program=programs, cut_plan=cuts)
def test_replay_never_reruns_stored_steps_and_ends_like_an_uninterrupted_run(
    program: list[Op], cut_plan: list[int | None]
) -> None:
    output, journal = asyncio.run(drive(program, cut_plan))
    expected, _ = asyncio.run(drive(program, []))
    assert output == expected
    assert output[1:-1] == [value * 2 for kind, value in program if kind == "run"]
    sleeps = [e["completion_id"] for e in journal if e["kind"] == "sleep"]
    assert sleeps == list(range(len(sleeps)))
    names = [e["name"] for e in journal if e["kind"] == "run"]
    assert names == [f"step-{i}" for i, (kind, _) in enumerate(program) if kind == "run"]
