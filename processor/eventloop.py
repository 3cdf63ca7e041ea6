"""Which asyncio event loop the processes run on: uvloop by default, the stdlib loop on request.

uvloop (libuv under the asyncio API) runs the same code with a cheaper loop iteration, cheaper
transports and cheaper `call_soon_threadsafe` wake-ups. The daemon spends most of its CPU in
exactly those (two HTTP hops per attempt, thread hand-offs for fsync and SQLite), so it is the
default for `processor serve` and the SDK's deployment server. `--event-loop asyncio` (or
`EVENT_LOOPS`' other name) selects the stdlib loop, e.g. to compare the two in a benchmark.
Tests run in-process on pytest-asyncio's stdlib loop; the end-to-end tests run real daemons on
uvloop, so both loops are exercised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

import anyio

EventLoopName = Literal["uvloop", "asyncio"]
EVENT_LOOPS: tuple[EventLoopName, ...] = ("uvloop", "asyncio")
DEFAULT_EVENT_LOOP: EventLoopName = "uvloop"

T = TypeVar("T")


def loop_factory(name: EventLoopName) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run(
    main: Callable[..., Coroutine[Any, Any, T]],
    *args: Any,
    event_loop: EventLoopName = DEFAULT_EVENT_LOOP,
) -> T:
    """`anyio.run(main, *args)` on the chosen event loop."""
    return anyio.run(main, *args, backend_options={"loop_factory": loop_factory(event_loop)})


def run_asyncio(
    coro: Coroutine[Any, Any, T], *, event_loop: EventLoopName = DEFAULT_EVENT_LOOP
) -> T:
    """`asyncio.run(coro)` on the chosen event loop (for code that does not go through anyio)."""
    with asyncio.Runner(loop_factory=loop_factory(event_loop)) as runner:
        return runner.run(coro)
