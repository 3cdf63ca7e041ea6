"""How attempts end badly: handler exceptions (retryable, with stack trace and related index),
terminal errors (stored and replayed), and cancellation delivered as TerminalError(409)."""

from __future__ import annotations

from typing import Any

from processor.sdk import Context, Service, TerminalError
from processor.sdk.testing import (
    CANCEL_ENTRY,
    DeployFactory,
    completion_entry,
    extend,
    input_entry,
    run_entry,
    split_frames,
)


def failing() -> tuple[Service, list[str]]:
    svc = Service("Fail")
    calls: list[str] = []

    @svc.handler()
    async def boom(ctx: Context) -> None:
        raise ValueError("the handler broke")

    @svc.handler()
    async def boom_in_step(ctx: Context) -> None:
        await ctx.run("ok", lambda: 1)

        def broken() -> None:
            calls.append("broken")
            raise RuntimeError("step broke")

        await ctx.run("broken", broken)

    @svc.handler()
    async def terminal(ctx: Context) -> None:
        raise TerminalError(422, "order is invalid")

    @svc.handler()
    async def terminal_in_step(ctx: Context) -> str:
        def refuse() -> None:
            calls.append("refuse")
            raise TerminalError(402, "card declined")

        try:
            await ctx.run("charge", refuse)
        except TerminalError as exc:
            return f"caught {exc.code} {exc.message}"
        return "charged"

    @svc.handler()
    async def terminal_uncaught(ctx: Context) -> None:
        await ctx.run("charge", lambda: (_ for _ in ()).throw(TerminalError(402, "declined")))

    @svc.handler()
    async def not_json(ctx: Context) -> Any:
        return {1, 2}

    return svc, calls


async def test_handler_exception_is_a_retryable_error_with_its_stack_trace(
    deploy: DeployFactory,
) -> None:
    svc, _ = failing()
    d = await deploy([svc])
    [final] = await d.invoke("Fail/boom", [input_entry()])
    assert final["t"] == "error"
    assert final["code"] == 500
    assert final["message"] == "the handler broke"
    assert final["retryable"] is True
    assert final["related_index"] is None
    assert "ValueError: the handler broke" in final["stacktrace"]
    assert "in boom" in final["stacktrace"]


async def test_exception_in_a_run_function_names_the_index_of_that_step(
    deploy: DeployFactory,
) -> None:
    svc, calls = failing()
    d = await deploy([svc])
    entries, final = split_frames(await d.invoke("Fail/boom_in_step", [input_entry()]))
    assert entries == [(1, {"kind": "run", "name": "ok", "value": b"1"})]
    assert final["t"] == "error" and final["retryable"] is True
    assert final["related_index"] == 2
    assert final["message"] == "step broke"
    assert calls == ["broken"]


async def test_terminal_error_from_the_handler_ends_the_invocation_with_its_failure(
    deploy: DeployFactory,
) -> None:
    svc, _ = failing()
    d = await deploy([svc])
    frames = await d.invoke("Fail/terminal", [input_entry()])
    assert frames == [{"t": "output", "failure": {"code": 422, "message": "order is invalid"}}]


async def test_terminal_error_in_a_run_is_stored_and_replayed_without_running_again(
    deploy: DeployFactory,
) -> None:
    svc, calls = failing()
    d = await deploy([svc])
    frames = await d.invoke("Fail/terminal_in_step", [input_entry()])
    entries, final = split_frames(frames)
    failure = {"code": 402, "message": "card declined"}
    assert entries == [(1, {"kind": "run", "name": "charge", "failure": failure})]
    assert final == {"t": "output", "value": b'"caught 402 card declined"'}

    replayed = await d.invoke("Fail/terminal_in_step", extend([input_entry()], frames), attempt=2)
    assert replayed == [final]
    assert calls == ["refuse"]


async def test_uncaught_terminal_error_of_a_run_becomes_the_output_failure(
    deploy: DeployFactory,
) -> None:
    svc, _ = failing()
    d = await deploy([svc])
    entries, final = split_frames(await d.invoke("Fail/terminal_uncaught", [input_entry()]))
    assert entries[0][1]["failure"] == {"code": 402, "message": "declined"}
    assert final == {"t": "output", "failure": {"code": 402, "message": "declined"}}


async def test_output_that_is_not_json_serializable_is_a_retryable_error(
    deploy: DeployFactory,
) -> None:
    svc, _ = failing()
    d = await deploy([svc])
    [final] = await d.invoke("Fail/not_json", [input_entry()])
    assert final["t"] == "error" and final["retryable"] is True
    assert "not JSON serializable" in final["message"]


def saga(calls: list[str]) -> Service:
    svc = Service("Saga")

    def step(name: str) -> Any:
        def fn() -> str:
            calls.append(name)
            return name

        return fn

    @svc.handler()
    async def book(ctx: Context) -> str:
        await ctx.run("flight", step("flight"))
        try:
            await ctx.run("hotel", step("hotel"))
        except TerminalError:
            await ctx.run("cancel-flight", step("cancel-flight"))
            raise
        return "booked"

    @svc.handler()
    async def plain(ctx: Context) -> str:
        await ctx.run("one", step("one"))
        await ctx.run("two", step("two"))
        return "done"

    @svc.handler()
    async def nap(ctx: Context) -> str:
        await ctx.sleep(60)
        return "rested"

    return svc


async def test_cancel_raises_409_canceled_at_the_next_step_not_in_the_journal(
    deploy: DeployFactory,
) -> None:
    calls: list[str] = []
    d = await deploy([saga(calls)])
    journal = [input_entry(), run_entry("one", "one"), CANCEL_ENTRY]
    frames = await d.invoke("Saga/plain", journal, attempt=2)
    assert frames == [{"t": "output", "failure": {"code": 409, "message": "canceled"}}]
    assert calls == []


async def test_handler_can_compensate_a_cancel_and_the_compensation_replays(
    deploy: DeployFactory,
) -> None:
    calls: list[str] = []
    d = await deploy([saga(calls)])
    journal = [input_entry(), run_entry("flight", "flight"), CANCEL_ENTRY]
    frames = await d.invoke("Saga/book", journal, attempt=2)
    entries, final = split_frames(frames)
    assert entries == [(3, {"kind": "run", "name": "cancel-flight", "value": b'"cancel-flight"'})]
    assert final == {"t": "output", "failure": {"code": 409, "message": "canceled"}}
    assert calls == ["cancel-flight"]

    # A later attempt (e.g. the answer was lost) replays the same decision at the same step.
    replayed = await d.invoke("Saga/book", extend(journal, frames), attempt=3)
    assert replayed == [final]
    assert calls == ["cancel-flight"]


async def test_cancel_interrupts_a_recorded_sleep_whose_timer_has_not_fired(
    deploy: DeployFactory,
) -> None:
    calls: list[str] = []
    d = await deploy([saga(calls)])
    sleep = {"kind": "sleep", "completion_id": 0, "wake_up_at": 1}
    frames = await d.invoke("Saga/nap", [input_entry(), sleep, CANCEL_ENTRY])
    assert frames == [{"t": "output", "failure": {"code": 409, "message": "canceled"}}]
    # Deterministic: the timer firing after the cancel does not change the outcome.
    later = [input_entry(), sleep, CANCEL_ENTRY, completion_entry(0)]
    assert await d.invoke("Saga/nap", later) == frames
    # A timer that fired before the cancel lets the sleep finish.
    earlier = [input_entry(), sleep, completion_entry(0), CANCEL_ENTRY]
    assert await d.invoke("Saga/nap", earlier) == [{"t": "output", "value": b'"rested"'}]
