"""Replay of handlers against the journal: stored runs are not run again, sleeps suspend and
resume, new entries get the next indexes, mismatches are reported, randomness is deterministic."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

from processor.sdk import Context, Service
from processor.sdk.testing import (
    CANCEL_ENTRY,
    DeployFactory,
    completion_entry,
    extend,
    input_entry,
    run_entry,
    split_frames,
)


class Counter:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def step(self, name: str, value: Any) -> Any:
        def fn() -> Any:
            self.calls.append(name)
            return value

        return fn


def three_steps(counter: Counter) -> Service:
    svc = Service("Steps")

    @svc.handler()
    async def go(ctx: Context, n: int) -> int:
        a: int = await ctx.run("a", counter.step("a", n + 1))
        b: int = await ctx.run("b", counter.step("b", a * 10))

        async def async_c() -> dict[str, int]:
            counter.calls.append("c")
            return {"sum": a + b}

        c: dict[str, int] = await ctx.run("c", async_c)
        return c["sum"]

    return svc


async def test_run_entries_are_streamed_in_order_with_their_journal_indexes(
    deploy: DeployFactory,
) -> None:
    counter = Counter()
    d = await deploy([three_steps(counter)])
    entries, final = split_frames(await d.invoke("Steps/go", [input_entry(1)]))
    assert entries == [
        (1, {"kind": "run", "name": "a", "value": b"2"}),
        (2, {"kind": "run", "name": "b", "value": b"20"}),
        (3, {"kind": "run", "name": "c", "value": b'{"sum": 22}'}),
    ]
    assert final == {"t": "output", "value": b"22"}
    assert counter.calls == ["a", "b", "c"]


async def test_replay_returns_stored_results_without_running_the_steps_again(
    deploy: DeployFactory,
) -> None:
    counter = Counter()
    d = await deploy([three_steps(counter)])
    # Stored values differ from what the functions would compute: replay must use the journal.
    journal = [input_entry(1), run_entry("a", 5), run_entry("b", 7)]
    entries, final = split_frames(await d.invoke("Steps/go", journal, attempt=2))
    assert counter.calls == ["c"]
    assert entries == [(3, {"kind": "run", "name": "c", "value": b'{"sum": 12}'})]
    assert final == {"t": "output", "value": b"12"}

    counter.calls.clear()
    full = [*journal, run_entry("c", {"sum": 99})]
    entries, final = split_frames(await d.invoke("Steps/go", full, attempt=3))
    assert (entries, final, counter.calls) == ([], {"t": "output", "value": b"99"}, [])


def sleeper(counter: Counter) -> Service:
    svc = Service("Sleeper")

    @svc.handler()
    async def nap(ctx: Context) -> str:
        await ctx.run("before", counter.step("before", "x"))
        await ctx.sleep(timedelta(seconds=5))
        await ctx.sleep(0.25)
        await ctx.run("after", counter.step("after", "y"))
        return "rested"

    return svc


async def test_sleep_emits_a_timer_entry_and_suspends_awaiting_its_completion(
    deploy: DeployFactory,
) -> None:
    counter = Counter()
    d = await deploy([sleeper(counter)])
    before = int(time.time() * 1000)
    entries, final = split_frames(await d.invoke("Sleeper/nap", [input_entry()]))
    after = int(time.time() * 1000)
    assert [i for i, _ in entries] == [1, 2]
    sleep = entries[1][1]
    assert sleep["kind"] == "sleep" and sleep["completion_id"] == 0
    assert before + 5000 <= sleep["wake_up_at"] <= after + 5000
    assert final == {"t": "suspend", "awaiting": [0]}
    assert counter.calls == ["before"]


async def test_recorded_sleep_without_completion_suspends_again_without_a_new_entry(
    deploy: DeployFactory,
) -> None:
    counter = Counter()
    d = await deploy([sleeper(counter)])
    first = await d.invoke("Sleeper/nap", [input_entry()])
    journal = extend([input_entry()], first)
    again = await d.invoke("Sleeper/nap", journal, attempt=2)
    assert again == [{"t": "suspend", "awaiting": [0]}]
    assert counter.calls == ["before"]


async def test_completions_interleaved_in_the_journal_resume_the_handler(
    deploy: DeployFactory,
) -> None:
    counter = Counter()
    d = await deploy([sleeper(counter)])
    journal = extend([input_entry()], await d.invoke("Sleeper/nap", [input_entry()]))
    journal.append(completion_entry(0))  # index 3, written by the state machine
    frames = await d.invoke("Sleeper/nap", journal, attempt=2)
    entries, final = split_frames(frames)
    assert entries[0][0] == 4 and entries[0][1]["completion_id"] == 1
    assert final == {"t": "suspend", "awaiting": [1]}

    journal = [*extend(journal, frames), completion_entry(1)]
    entries, final = split_frames(await d.invoke("Sleeper/nap", journal, attempt=3))
    assert entries == [(6, {"kind": "run", "name": "after", "value": b'"y"'})]
    assert final == {"t": "output", "value": b'"rested"'}
    assert counter.calls == ["before", "after"]


async def test_run_named_differently_is_a_journal_mismatch_naming_index_and_both_steps(
    deploy: DeployFactory,
) -> None:
    counter = Counter()
    d = await deploy([three_steps(counter)])
    journal = [input_entry(1), run_entry("a", 2), run_entry("charge", 3)]
    [final] = await d.invoke("Steps/go", journal, attempt=2)
    assert final["t"] == "error"
    assert final["retryable"] is True
    assert final["related_index"] == 2
    assert final["message"] == (
        "journal mismatch at index 2: the journal has run 'charge', but the code did run 'b'"
    )
    assert counter.calls == []


async def test_sleep_where_a_run_was_recorded_and_run_where_a_sleep_was_are_mismatches(
    deploy: DeployFactory,
) -> None:
    counter = Counter()
    d = await deploy([sleeper(counter), three_steps(counter)])
    journal = [input_entry(), run_entry("before", "x"), run_entry("later", 1)]
    [final] = await d.invoke("Sleeper/nap", journal)
    assert final["t"] == "error" and final["related_index"] == 2
    assert "index 2" in final["message"]
    assert "run 'later'" in final["message"] and "did sleep" in final["message"]

    sleep = {"kind": "sleep", "completion_id": 0, "wake_up_at": 1}
    [final] = await d.invoke("Steps/go", [input_entry(1), sleep, completion_entry(0)])
    assert final["t"] == "error" and final["related_index"] == 1
    assert (
        "index 1: the journal has sleep (completion 0), but the code did run 'a'"
        in (final["message"])
    )
    assert counter.calls == []


async def test_mismatch_cannot_be_swallowed_by_the_handler(deploy: DeployFactory) -> None:
    svc = Service("Greedy")

    @svc.handler()
    async def go(ctx: Context) -> str:
        try:
            await ctx.run("b", lambda: 1)
        except Exception:
            return "swallowed"
        return "ran"

    d = await deploy([svc])
    [final] = await d.invoke("Greedy/go", [input_entry(), run_entry("a", 1)])
    assert final["t"] == "error" and "mismatch" in final["message"]


def randoms() -> Service:
    svc = Service("Dice")

    @svc.handler()
    async def roll(ctx: Context) -> list[float]:
        first = ctx.random()
        await ctx.sleep(0.01)
        return [first, ctx.random(), ctx.rand.randint(1, 6)]

    return svc


async def test_ctx_random_is_the_same_on_every_attempt_of_an_invocation(
    deploy: DeployFactory,
) -> None:
    d = await deploy([randoms()])
    journal = extend([input_entry()], await d.invoke("Dice/roll", [input_entry()], seed=42))
    journal.append(completion_entry(0))
    outputs = [
        split_frames(await d.invoke("Dice/roll", journal, seed=42, attempt=a))[1]["value"]
        for a in (2, 3)
    ]
    assert outputs[0] == outputs[1]
    other = split_frames(await d.invoke("Dice/roll", journal, seed=43, attempt=4))[1]["value"]
    assert other != outputs[0]
    values = json.loads(outputs[0])
    assert 0 <= values[0] < 1 and values[0] != values[1]


async def test_cancel_after_every_recorded_step_lets_a_handler_with_no_new_step_finish(
    deploy: DeployFactory,
) -> None:
    svc = Service("Idx")

    @svc.handler()
    async def go(ctx: Context) -> str:
        await ctx.sleep(1)
        await ctx.run("x", lambda: 1)
        return "ok"

    d = await deploy([svc])
    sleep = {"kind": "sleep", "completion_id": 0, "wake_up_at": 1, "appended_at": 5}
    journal = [input_entry(), sleep, completion_entry(0), run_entry("x", 1)]
    # The cancel comes after every recorded step, so it is only delivered at a new step.
    journal.append(CANCEL_ENTRY)
    entries, final = split_frames(await d.invoke("Idx/go", journal))
    assert entries == [] and final == {"t": "output", "value": b'"ok"'}
