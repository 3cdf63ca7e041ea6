"""The invoker: runs one attempt against a deployment over HTTP (PROTOCOL.md §2), reports effects.

`run_attempt` POSTs the whole journal, feeds the streamed answer to a `msgpack.Unpacker` chunk by
chunk and turns the frames into effect commands. All frames decoded from one chunk are handed to
`emit` together (so the log's group commit writes them as one batch), and `emit` is awaited before
the next chunk is read: entries are in the log as soon as they arrive, so progress survives a crash
in the middle of an attempt.

Every way an attempt can go wrong ends in exactly one retryable `AttemptFailed` whose message says
which it was: connection refused (naming the URI), a non-200 status (with a body excerpt), the
inactivity timeout, a stream that ended without a final frame, an undecodable frame, or an entry
whose index is not the next one. Aborting an attempt is cancelling the task that runs it; leaving
the `async with` closes the HTTP connection, which the SDK treats as the end of the attempt.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import anyio
import msgpack

from processor.commands import (
    AttemptCompleted,
    AttemptEntry,
    AttemptFailed,
    AttemptPinned,
    AttemptSuspended,
    Command,
)
from processor.status import Failure

Emit = Callable[[list[Command]], Awaitable[None]]

# Failure codes of attempts that failed outside the handler.
CODE_UNREACHABLE = 503  # connection refused / reset before an answer
CODE_BAD_STATUS = 502  # the deployment answered something else than 200
CODE_TIMEOUT = 504  # no byte for `inactivity_timeout_s`
CODE_STREAM_CUT = 502  # the stream ended without a final frame
CODE_PROTOCOL = 571  # undecodable frame, index gap, unknown frame kind
CODE_NO_DEPLOYMENT = 503  # no registered deployment serves the service

_EXCERPT = 300


@dataclass(frozen=True, slots=True)
class AttemptRequest:
    invocation_id: str
    attempt: int
    service: str
    handler: str
    deployment_id: str
    uri: str
    journal: list[dict[str, Any]]  # index 0 = the input entry
    seed: int


def seed_for(invocation_id: str) -> int:
    """The deterministic seed of `ctx.random()`: the same for every attempt of an invocation."""
    digest = hashlib.blake2b(invocation_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1  # fits a signed 64-bit msgpack int


class ProtocolViolation(Exception):
    """A frame that breaks PROTOCOL.md §2; the message says how."""

    def __init__(self, message: str, related_index: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.related_index = related_index


class _Attempt:
    """Turns decoded frames of one attempt into commands; remembers where the journal stands."""

    def __init__(self, request: AttemptRequest) -> None:
        self.req = request
        self.next_index = len(request.journal)
        self.pinned = False
        self.finished = False

    def failed(
        self,
        code: int,
        message: str,
        *,
        retryable: bool = True,
        stacktrace: str | None = None,
        related_index: int | None = None,
    ) -> AttemptFailed:
        self.finished = True
        failure = Failure(code, message, stacktrace, self.req.attempt, related_index)
        return AttemptFailed(
            self.req.invocation_id, self.req.attempt, failure, retryable, self.req.deployment_id
        )

    def _pin(self, out: list[Command]) -> None:
        # Pinned goes before the first frame that makes progress (an entry or a final result):
        # the state machine pins the deployment once the attempt has stored something.
        if not self.pinned:
            self.pinned = True
            out.append(
                AttemptPinned(self.req.invocation_id, self.req.attempt, self.req.deployment_id)
            )

    def frame(self, frame: Any, out: list[Command]) -> None:
        if not isinstance(frame, dict):
            raise ProtocolViolation(f"frame is not a map: {frame!r:.{_EXCERPT}}")
        kind = frame.get("t")
        inv, n = self.req.invocation_id, self.req.attempt
        if kind == "entry":
            index, entry = frame.get("index"), frame.get("entry")
            if not isinstance(index, int) or isinstance(index, bool):
                raise ProtocolViolation(f"entry frame without an integer index: {frame!r:.200}")
            if not isinstance(entry, dict) or not isinstance(entry.get("kind"), str):
                raise ProtocolViolation(
                    f"entry frame at index {index} has no entry map with a kind", index
                )
            if index != self.next_index:
                what = "duplicate" if index < self.next_index else "gap"
                raise ProtocolViolation(
                    f"journal index gap: expected entry index {self.next_index}, got {index} "
                    f"({what})",
                    index,
                )
            self._pin(out)
            out.append(AttemptEntry(inv, n, index, entry))
            self.next_index += 1
        elif kind == "suspend":
            awaiting = frame.get("awaiting")
            if not isinstance(awaiting, list) or not all(
                isinstance(c, int) and not isinstance(c, bool) for c in awaiting
            ):
                raise ProtocolViolation(f"suspend frame needs a list of completion ids: {frame!r}")
            self._pin(out)
            out.append(AttemptSuspended(inv, n, tuple(awaiting)))
            self.finished = True
        elif kind == "output":
            if "failure" in frame and frame["failure"] is not None:
                raw = frame["failure"]
                if not (
                    isinstance(raw, dict)
                    and isinstance(raw.get("code"), int)
                    and isinstance(raw.get("message"), str)
                ):
                    raise ProtocolViolation(f"output failure needs a code and a message: {raw!r}")
                self._pin(out)
                failure = Failure(raw["code"], raw["message"], attempt=n)
                out.append(AttemptCompleted(inv, n, failure=failure))
            elif isinstance(frame.get("value"), bytes):
                self._pin(out)
                out.append(AttemptCompleted(inv, n, value=frame["value"]))
            else:
                raise ProtocolViolation("output frame has neither a bytes value nor a failure")
            self.finished = True
        elif kind == "error":
            code, message = frame.get("code"), frame.get("message")
            related = frame.get("related_index")
            stack = frame.get("stacktrace")
            out.append(
                self.failed(
                    code if isinstance(code, int) and not isinstance(code, bool) else 500,
                    message if isinstance(message, str) else repr(message),
                    retryable=frame.get("retryable", True) is not False,
                    stacktrace=stack if isinstance(stack, str) else None,
                    related_index=related if isinstance(related, int) else None,
                )
            )
        else:
            raise ProtocolViolation(f"unknown frame kind {kind!r}")


class Invoker:
    """Runs attempts with one shared aiohttp session. Use as `async with Invoker() as invoker`."""

    def __init__(self, inactivity_timeout_s: float = 60.0, connect_timeout_s: float = 10.0) -> None:
        self.inactivity_timeout_s = inactivity_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Invoker:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout_s),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def run_attempt(self, request: AttemptRequest, emit: Emit) -> None:
        """Run one attempt to its end, emitting its effects; never raises for attempt failures."""
        if self._session is None:
            raise RuntimeError("Invoker is not started (use `async with Invoker()`)")
        state = _Attempt(request)
        url = f"{request.uri.rstrip('/')}/invoke/{request.service}/{request.handler}"
        body = msgpack.packb(
            {
                "invocation_id": request.invocation_id,
                "attempt": request.attempt,
                "journal": request.journal,
                "seed": request.seed,
            },
            use_bin_type=True,
        )
        timeout = self.inactivity_timeout_s
        phase = "waiting for the answer"
        try:
            with anyio.fail_after(timeout):
                response = await self._session.post(
                    url, data=body, headers={"content-type": "application/x-msgpack"}
                )
            async with response:
                if response.status != 200:
                    with anyio.move_on_after(min(timeout, 5.0)):
                        excerpt = (await response.content.read(_EXCERPT)).decode("utf-8", "replace")
                    await emit(
                        [
                            state.failed(
                                CODE_BAD_STATUS,
                                f"deployment {url} answered HTTP {response.status} "
                                f"{response.reason or ''}: {excerpt!r}",
                            )
                        ]
                    )
                    return
                phase = "reading the stream"
                await self._read_stream(response, state, emit)
                if state.finished:
                    return
                await emit(
                    [
                        state.failed(
                            CODE_STREAM_CUT,
                            f"stream from {url} ended without a final frame after "
                            f"{state.next_index - len(request.journal)} new entries",
                        )
                    ]
                )
        except TimeoutError:
            await emit(
                [
                    state.failed(
                        CODE_TIMEOUT,
                        f"inactivity timeout: no data from {url} for {timeout:g}s while {phase}",
                    )
                ]
            )
        except aiohttp.ClientConnectorError as exc:
            await emit(
                [
                    state.failed(
                        CODE_UNREACHABLE,
                        f"connection refused: cannot connect to deployment {request.uri} "
                        f"({exc.os_error.strerror or exc})",
                    )
                ]
            )
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
            await emit(
                [
                    state.failed(
                        CODE_STREAM_CUT,
                        f"stream from {url} was cut while {phase} "
                        f"(no final frame): {type(exc).__name__}: {exc}",
                    )
                ]
            )
        except aiohttp.ClientError as exc:
            await emit(
                [
                    state.failed(
                        CODE_UNREACHABLE,
                        f"HTTP error calling deployment {url}: {type(exc).__name__}: {exc}",
                    )
                ]
            )

    async def _read_stream(
        self, response: aiohttp.ClientResponse, state: _Attempt, emit: Emit
    ) -> None:
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        while True:
            with anyio.fail_after(self.inactivity_timeout_s):
                chunk = await response.content.readany()
            if not chunk:
                return
            unpacker.feed(chunk)
            out: list[Command] = []
            try:
                for frame in unpacker:
                    state.frame(frame, out)
                    if state.finished:
                        break
            except ProtocolViolation as exc:
                out.append(
                    state.failed(CODE_PROTOCOL, exc.message, related_index=exc.related_index)
                )
            except (msgpack.UnpackException, ValueError) as exc:
                out.append(
                    state.failed(
                        CODE_PROTOCOL,
                        f"undecodable frame after entry index {state.next_index - 1}: "
                        f"{type(exc).__name__}: {exc}",
                    )
                )
            if out:
                await emit(out)
            if state.finished:
                return


def no_deployment_failure(
    invocation_id: str, attempt: int, service: str, reason: str | None = None
) -> AttemptFailed:
    """The retryable failure of an attempt that found no deployment to call."""
    message = reason or (
        f"no registered deployment serves service {service!r}; register one and the "
        "invocation retries (or is paused when its retries run out)"
    )
    return AttemptFailed(
        invocation_id, attempt, Failure(CODE_NO_DEPLOYMENT, message, attempt=attempt), True, None
    )
