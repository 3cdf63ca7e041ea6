"""Helpers to drive a deployment by hand, the way the invoker does: build journals and attempt
bodies, post an attempt and decode the streamed msgpack answer. Used by the SDK's tests."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import msgpack

from processor.sdk.server import RunningServer
from processor.sdk.service import Service

Frame = dict[str, Any]
Entry = dict[str, Any]


def input_entry(value: Any = None, *, raw: bytes | None = None) -> Entry:
    """The journal's first entry: `value` JSON-encoded (None → empty body), or `raw` as is."""
    if raw is None:
        raw = b"" if value is None else json.dumps(value).encode()
    return {"kind": "input", "value": raw, "headers": {}}


def run_entry(name: str, value: Any) -> Entry:
    return {"kind": "run", "name": name, "value": json.dumps(value).encode()}


def completion_entry(completion_id: int) -> Entry:
    return {"kind": "completion", "completion_id": completion_id}


CANCEL_ENTRY: Entry = {"kind": "cancel"}


def attempt_body(
    journal: list[Entry],
    *,
    invocation_id: str = "inv_test",
    attempt: int = 1,
    seed: int | None = 7,
) -> bytes:
    body: dict[str, Any] = {"invocation_id": invocation_id, "attempt": attempt, "journal": journal}
    if seed is not None:
        body["seed"] = seed
    return msgpack.packb(body, use_bin_type=True)


async def invoke(
    session: aiohttp.ClientSession,
    url: str,
    target: str,
    journal: list[Entry],
    **kw: Any,
) -> list[Frame]:
    """Post one attempt to `{url}/invoke/{target}` and return every frame of the answer."""
    async with session.post(f"{url}/invoke/{target}", data=attempt_body(journal, **kw)) as resp:
        if resp.status != 200:
            raise AssertionError(f"invoke {target}: HTTP {resp.status}: {await resp.text()}")
        unpacker = msgpack.Unpacker(raw=False)
        unpacker.feed(await resp.read())
        return list(unpacker)


def split_frames(frames: list[Frame]) -> tuple[list[tuple[int, Entry]], Frame]:
    """(the `(index, entry)` pairs, the final object); checks the stream's shape on the way."""
    if not frames:
        raise AssertionError("empty answer: no final object")
    *body, final = frames
    for frame in body:
        if frame.get("t") != "entry":
            raise AssertionError(f"non-entry frame before the final object: {frame}")
    if final.get("t") not in ("output", "suspend", "error"):
        raise AssertionError(f"the stream does not end with a final object: {final}")
    return [(f["index"], f["entry"]) for f in body], final


def extend(journal: list[Entry], frames: list[Frame]) -> list[Entry]:
    """The journal after storing the attempt's entries (checking their indexes are contiguous)."""
    new = list(journal)
    for index, entry in split_frames(frames)[0]:
        if index != len(new):
            raise AssertionError(f"entry index {index} but the journal has {len(new)} entries")
        new.append(entry)
    return new


class Deployment:
    """A running deployment plus a client session to send it attempts."""

    def __init__(self, server: RunningServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session
        self.url = server.url

    async def invoke(self, target: str, journal: list[Entry], **kw: Any) -> list[Frame]:
        return await invoke(self.session, self.url, target, journal, **kw)


DeployFactory = Callable[[list[Service]], Awaitable[Deployment]]
