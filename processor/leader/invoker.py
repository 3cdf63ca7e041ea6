"""The invoker: runs one attempt against a deployment over HTTP (PROTOCOL.md §2), reports effects.

`run_attempt` POSTs the whole journal, feeds the streamed answer to a `msgpack.Unpacker` chunk by
chunk and turns the frames into effect commands. All frames decoded from one chunk are handed to
`emit` together (so the log's group commit writes them as one batch), and `emit` is awaited before
the next chunk is read: entries are in the log as soon as they arrive, so progress survives a crash
in the middle of an attempt.

Every way an attempt can go wrong ends in exactly one retryable `AttemptFailed` whose message says
which it was: connection refused (naming the URI), a non-200 status (with a body excerpt), a 200
answer that is not the protocol's (another content type, or bytes that are not msgpack maps: a web
page or a proxy answering at the deployment's URI), the inactivity timeout, a stream that ended
without a final frame, an undecodable frame (whatever msgpack raises for it), or an entry whose
index is not the next one. Aborting an attempt is cancelling the task that runs it; leaving
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
# Media types an answer's frames may come with (PROTOCOL.md §2 names the first).
_MSGPACK_TYPES = frozenset({_CONTENT_TYPE, "application/msgpack", "application/vnd.msgpack"})
MAX_FRAME_BYTES = 100 * 1024 * 1024  # msgpack.Unpacker's default buffer limit, named


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
                    excerpt = await _body_excerpt(response, timeout)
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
                if response.content_type and not _is_msgpack(response.content_type):
                    # A web page, a JSON API, a proxy's error page...: not the protocol's stream.
                    excerpt = await _body_excerpt(response, timeout)
                    message = _not_the_protocol(url, response.content_type, excerpt)
                    await emit([state.failed(CODE_PROTOCOL, message)])
                    return
                phase = "reading the stream"
                await self._read_stream(url, response, state, emit)
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

    async def _read_stream(
        self, url: str, response: Response, state: AttemptFrames, emit: Emit
    ) -> None:
        unpacker = msgpack.Unpacker(
            raw=False, strict_map_key=False, max_buffer_size=MAX_FRAME_BYTES
        )
        head = b""  # the body's first bytes, to show when they are not the protocol's frames
        accepted = 0  # frames that were the protocol's
        while True:
            chunk = await response.read_chunk()
            if not chunk:
                return
            if len(head) < EXCERPT:
                head += chunk[: EXCERPT - len(head)]
            out: list[Command] = []
            failure: AttemptFailed | None = None
            garbage = False  # bytes that are not msgpack maps at all
            try:
                unpacker.feed(chunk)
            except Exception as exc:  # BufferFull: a frame larger than MAX_FRAME_BYTES
                failure = state.failed(CODE_PROTOCOL, _undecodable(state, exc))
                garbage = True
            while failure is None and not state.finished:
                try:
                    frame = next(unpacker)
                except StopIteration:  # the rest of the frame has not arrived yet
                    break
                except Exception as exc:
                    # Whatever msgpack raises for bytes a deployment sent (FormatError,
                    # StackError, ValueError for bad UTF-8 or timestamps, TypeError for a list
                    # or map used as a map key, ...) is a protocol violation, never a crash.
                    failure = state.failed(CODE_PROTOCOL, _undecodable(state, exc))
                    garbage = True
                    break
                try:
                    state.frame(frame, out)
                except ProtocolViolation as exc:
                    failure = state.failed(
                        CODE_PROTOCOL, exc.message, related_index=exc.related_index
                    )
                    garbage = not isinstance(frame, dict)
                else:
                    accepted += 1
            if failure is not None:
                response.close()  # the attempt ends here: the deployment must see it end
                if garbage and not accepted and not response.content_type:
                    # Nothing valid came first: say what answered rather than which byte failed.
                    text = head.decode("utf-8", "replace")
                    message = _not_the_protocol(url, response.content_type, text)
                    failure = state.failed(CODE_PROTOCOL, message)
                out.append(failure)
            if out:
                await emit(out)
            if state.finished:
                return


async def _body_excerpt(response: Response, limit_s: float) -> str:
    """The start of an answer's body as text ("" when it does not come quickly)."""
    excerpt = ""
    with contextlib.suppress(TimeoutError, HttpError):
        async with asyncio.timeout(min(limit_s, 5.0)):
            excerpt = (await response.read(EXCERPT)).decode("utf-8", "replace")
    return excerpt


def _is_msgpack(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type in _MSGPACK_TYPES


def _not_the_protocol(url: str, content_type: str | None, excerpt: str) -> str:
    """The failure of a 200 answer that is not the deployment protocol's stream of frames."""
    what = (
        f"with content-type {content_type!r} instead of {_CONTENT_TYPE!r}"
        if content_type
        else "without a content-type and with a body that is not msgpack frames"
    )
    return (
        f"deployment {url} answered HTTP 200 {what}: the endpoint is not speaking the deployment "
        f"protocol (PROTOCOL.md §2: {_CONTENT_TYPE}, a stream of msgpack maps). Check that the "
        "deployment's registered URI is the base URL of a service served with processor.sdk, not "
        f"a web page, a proxy or another server. The answer starts: {excerpt!r}"
    )


def _undecodable(state: AttemptFrames, exc: Exception) -> str:
    """The failure message of bytes that msgpack cannot decode into a frame."""
    if isinstance(exc, msgpack.BufferFull):
        why = f"a frame larger than {MAX_FRAME_BYTES} bytes"
    elif isinstance(exc, msgpack.StackError):
        why = "a frame nested deeper than msgpack allows"
    elif isinstance(exc, UnicodeDecodeError):
        why = "a string that is not valid UTF-8"
    elif isinstance(exc, TypeError):
        why = "a map whose key is a list or a map (keys must be strings, numbers, ...)"
    else:
        why = "bytes that are not msgpack"
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return (
        f"undecodable frame after entry index {state.next_index - 1}: {why} ({detail}); a "
        "deployment answers a stream of msgpack maps (PROTOCOL.md §2)"
    )


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
