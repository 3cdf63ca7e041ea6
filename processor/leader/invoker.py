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

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable

import msgpack

from processor.commands import AttemptFailed, Command
from processor.leader.frames import (
    CODE_BAD_STATUS,
    CODE_NO_DEPLOYMENT,
    CODE_PROTOCOL,
    CODE_STREAM_CUT,
    CODE_TIMEOUT,
    CODE_UNREACHABLE,
    EXCERPT,
    AttemptFrames,
    AttemptRequest,
    ProtocolViolation,
)
from processor.leader.http_client import (
    BadResponse,
    ConnectFailed,
    ConnectionCut,
    HttpClient,
    HttpError,
    Response,
)
from processor.status import Failure

__all__ = ["CODE_NO_DEPLOYMENT", "AttemptRequest", "Invoker", "no_deployment_failure", "seed_for"]

Emit = Callable[[list[Command]], Awaitable[None]]
_CONTENT_TYPE = "application/x-msgpack"


def seed_for(invocation_id: str) -> int:
    """The deterministic seed of `ctx.random()`: the same for every attempt of an invocation."""
    digest = hashlib.blake2b(invocation_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1  # fits a signed 64-bit msgpack int


class Invoker:
    """Runs attempts with one shared HTTP client (pooled keep-alive connections per deployment).
    Use as `async with Invoker() as invoker`."""

    def __init__(self, inactivity_timeout_s: float = 60.0, connect_timeout_s: float = 10.0) -> None:
        self.inactivity_timeout_s = inactivity_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._client: HttpClient | None = None

    async def __aenter__(self) -> Invoker:
        self._client = HttpClient(
            connect_timeout_s=self.connect_timeout_s,
            inactivity_timeout_s=self.inactivity_timeout_s,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def run_attempt(self, request: AttemptRequest, emit: Emit) -> None:
        """Run one attempt to its end, emitting its effects; never raises for attempt failures."""
        if self._client is None:
            raise RuntimeError("Invoker is not started (use `async with Invoker()`)")
        state = AttemptFrames(request)
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
            response = await self._client.post(url, body, _CONTENT_TYPE)
            async with response:
                if response.status != 200:
                    excerpt = ""
                    with contextlib.suppress(TimeoutError, HttpError):
                        async with asyncio.timeout(min(timeout, 5.0)):
                            excerpt = (await response.read(EXCERPT)).decode("utf-8", "replace")
                    await emit(
                        [
                            state.failed(
                                CODE_BAD_STATUS,
                                f"deployment {url} answered HTTP {response.status} "
                                f"{response.reason}: {excerpt!r}",
                            )
                        ]
                    )
                    return
                phase = "reading the stream"
                await self._read_stream(response, state, emit)
                if state.finished:
                    # Ended by the deployment's final frame: keep the connection for the next
                    # attempt once the stream's end arrives. (A protocol violation closed it.)
                    response.release_when_done()
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
        except ConnectFailed as exc:
            await emit(
                [
                    state.failed(
                        CODE_UNREACHABLE,
                        f"connection refused: cannot connect to deployment {request.uri} "
                        f"({exc.reason})",
                    )
                ]
            )
        except (ConnectionCut, BadResponse) as exc:
            await emit(
                [
                    state.failed(
                        CODE_STREAM_CUT,
                        f"stream from {url} was cut while {phase} (no final frame): "
                        f"{type(exc).__name__}: {exc}",
                    )
                ]
            )
        except HttpError as exc:
            await emit(
                [
                    state.failed(
                        CODE_UNREACHABLE,
                        f"HTTP error calling deployment {url}: {type(exc).__name__}: {exc}",
                    )
                ]
            )

    async def _read_stream(self, response: Response, state: AttemptFrames, emit: Emit) -> None:
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        while True:
            chunk = await response.read_chunk()
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
                response.close()  # the attempt ends here: the deployment must see it end
                out.append(
                    state.failed(CODE_PROTOCOL, exc.message, related_index=exc.related_index)
                )
            except (msgpack.UnpackException, ValueError) as exc:
                response.close()
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
