"""A small HTTP/1.1 client for the one call the invoker makes: POST a body, stream the answer.

Why not aiohttp's client (which the daemon used before): it is general (cookies, redirects,
proxies, auth, tracing, multipart, a timer context per request) and costs about 450 µs of the
event loop's CPU per call here, which made it the largest single cost of an invocation. This
client does what PROTOCOL.md §2 needs and nothing else, on an asyncio `Protocol`:

- `http://` and `https://` URLs (TLS with host name checks against the system's CA store, which
  OpenSSL's `SSL_CERT_FILE` / `SSL_CERT_DIR` variables replace, e.g. for a private CA; or
  against the `ssl_context` given);
- one request per connection at a time, keep-alive connections pooled per host and reused;
  a pooled connection that the server had already closed is retried once on a fresh one, but only
  when not a byte of the answer arrived (the same rule browsers and aiohttp follow);
- answers with `content-length`, `transfer-encoding: chunked`, or delimited by the connection's
  close (204 and 304 never have a body); `connection: close` and HTTP/1.0 answers are not pooled,
  and a pooled connection that receives bytes while idle is retired;
- a connect timeout and an inactivity timeout (no byte for N seconds, re-armed on every read);
- `Response.close()` closes the connection: that is how an attempt is aborted or ended early (the
  SDK sees the connection close); `Response.release_when_done()` is for an answer whose final
  frame was read: the connection returns to the pool once the stream's end marker arrives.

Errors are `HttpError` subclasses naming what went wrong: `ConnectFailed` (with the OS reason),
`ConnectionCut` (closed before the answer's end), `BadResponse` (not HTTP/1.x).
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections import deque
from collections.abc import Callable
from typing import cast
from urllib.parse import urlsplit

MAX_HEAD_BYTES = 64 * 1024  # status line + headers
_Key = tuple[str, int, bool]  # (host, port, tls): one pool of connections each
_CRLF = b"\r\n"


class HttpError(Exception):
    """The HTTP call failed; the message says how."""


class ConnectFailed(HttpError):
    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason  # the OS's words, e.g. "Connection refused"


class ConnectionCut(HttpError):
    """The connection closed before the answer was complete."""


class BadResponse(HttpError):
    """The server's bytes are not a valid HTTP/1.x answer."""


class _Connection(asyncio.Protocol):
    """One TCP connection: writes a request, parses the answer as bytes arrive."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.lost: BaseException | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[None] | None = None
        self.active = False  # an exchange is using it (False while it sits in the pool)
        # Called once the answer's body is complete (see Response.release_when_done).
        self.on_complete: Callable[[], None] | None = None
        self.reset()

    def reset(self) -> None:
        """Ready for the next answer on this connection."""
        self.status = 0
        self.reason = ""
        self.content_type: str | None = None
        self.head_done = False
        self.keep_alive = True
        self.bytes_seen = 0
        self.body: deque[bytes] = deque()
        self.body_done = False
        self._mode = "close"  # "length" | "chunked" | "close"
        self._remaining = 0  # body bytes left ("length"), or of the current chunk ("chunked")
        self._chunk_phase = "size"  # "size" | "data" | "crlf" | "trailers"
        self.error: HttpError | None = None

    # --- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self.active:  # bytes on a pooled, idle connection: it cannot be trusted any more
            self._close()
            return
        self.bytes_seen += len(data)
        self._buffer += data
        try:
            self._parse()
        except HttpError as exc:
            self.error = exc
            self._close()
        if self.on_complete is not None and (self.body_done or self.closed):
            done, self.on_complete = self.on_complete, None
            done()
        self._wake()

    def eof_received(self) -> bool | None:
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.lost = exc
        if self.head_done and self._mode == "close" and self.error is None:
            self.body_done = True  # a close-delimited body ends with the connection
        if self.on_complete is not None:  # released early: let it stop its grace timer
            done, self.on_complete = self.on_complete, None
            done()
        self._wake()

    # --- parsing ------------------------------------------------------------------------------

    def _parse(self) -> None:
        if not self.head_done:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD_BYTES:
                    raise BadResponse(f"the answer's head is larger than {MAX_HEAD_BYTES} bytes")
                return
            head = bytes(self._buffer[:end])
            del self._buffer[: end + 4]
            self._parse_head(head)
            if self.status < 200:  # an interim 1xx answer: the real one follows
                self.head_done = False
                self._parse()
                return
        if self._mode == "length":
            self._take_length()
        elif self._mode == "chunked":
            self._take_chunks()
        else:
            if self._buffer:
                self.body.append(bytes(self._buffer))
                self._buffer.clear()

    def _parse_head(self, head: bytes) -> None:
        lines = head.split(_CRLF)
        status_line = lines[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise BadResponse(f"not an HTTP/1.x status line: {status_line[:200]!r}")
        self.status = int(parts[1])
        self.reason = parts[2] if len(parts) > 2 else ""
        self.keep_alive = parts[0] != "HTTP/1.0"
        self.content_type = None  # (not the one of an interim 1xx answer)
        length: int | None = None
        chunked = False
        for raw in lines[1:]:
            name, sep, value = raw.partition(b":")
            if not sep:
                raise BadResponse(f"malformed header line: {raw[:200]!r}")
            key = name.strip().lower()
            if key == b"content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    raise BadResponse(f"bad content-length: {value[:100]!r}") from None
                if length < 0:
                    raise BadResponse(f"negative content-length: {length}")
            elif key == b"content-type":
                self.content_type = value.strip().decode("latin-1")
            elif key == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif key == b"connection":
                token = value.strip().lower()
                if token == b"close":
                    self.keep_alive = False
                elif token == b"keep-alive":
                    self.keep_alive = True
        self.head_done = True
        if self.status < 200:
            return
        if self.status in (204, 304):  # never a body, whatever the headers say
            self._mode = "length"
            self._remaining = 0
            self.body_done = True
        elif chunked:
            self._mode = "chunked"
        elif length is not None:
            self._mode = "length"
            self._remaining = length
            if length == 0:
                self.body_done = True
        else:
            self._mode = "close"
            self.keep_alive = False

    def _take_length(self) -> None:
        if not self._buffer:
            return
        take = min(self._remaining, len(self._buffer))
        if take:
            self.body.append(bytes(self._buffer[:take]))
            del self._buffer[:take]
            self._remaining -= take
        if self._remaining == 0:
            self.body_done = True

    def _take_chunks(self) -> None:
        buf = self._buffer
        while buf and not self.body_done:
            phase = self._chunk_phase
            if phase == "size":
                end = buf.find(_CRLF)
                if end < 0:
                    if len(buf) > 1024:
                        raise BadResponse("a chunk size line longer than 1024 bytes")
                    return
                size_text = bytes(buf[:end]).split(b";", 1)[0].strip()
                del buf[: end + 2]
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise BadResponse(f"bad chunk size: {size_text[:40]!r}") from None
                if size == 0:
                    self._chunk_phase = "trailers"
                else:
                    self._remaining = size
                    self._chunk_phase = "data"
            elif phase == "data":
                take = min(self._remaining, len(buf))
                self.body.append(bytes(buf[:take]))
                del buf[:take]
                self._remaining -= take
                if self._remaining == 0:
                    self._chunk_phase = "crlf"
            elif phase == "crlf":
                if len(buf) < 2:
                    return
                if buf[:2] != _CRLF:
                    raise BadResponse("a chunk is not followed by CRLF")
                del buf[:2]
                self._chunk_phase = "size"
            else:  # trailers: header lines until an empty one
                end = buf.find(_CRLF)
                if end < 0:
                    return
                del buf[: end + 2]
                if end == 0:
                    self.body_done = True

    # --- waiting ------------------------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, timeout_s: float) -> None:
        """Wait until more arrives or the connection ends; TimeoutError after `timeout_s` idle."""
        waiter = self._waiter = self._loop.create_future()
        timer = self._loop.call_later(timeout_s, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.closed = True


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class Response:
    """An answer being read. `read_chunk()` until it returns b""; `close()` aborts it."""

    def __init__(self, client: HttpClient, key: _Key, conn: _Connection) -> None:
        self._client = client
        self._key = key
        self._conn = conn
        self._finished = False
        self.status = conn.status
        self.reason = conn.reason
        self.content_type = conn.content_type  # None when the answer has no such header

    async def read_chunk(self) -> bytes:
        """The next bytes of the body as they arrived; b"" at its end. Raises `ConnectionCut`,
        `BadResponse`, or `TimeoutError` after the client's inactivity timeout."""
        conn = self._conn
        while True:
            if conn.body:
                if len(conn.body) == 1:
                    return conn.body.popleft()
                data = b"".join(conn.body)
                conn.body.clear()
                return data
            if conn.error is not None:
                raise conn.error
            if conn.body_done:
                self._release()
                return b""
            if conn.closed:
                raise ConnectionCut(_cut_message(conn, "in the middle of the answer's body"))
            await conn.wait(self._client.inactivity_timeout_s)

    async def read(self, limit: int) -> bytes:
        """Up to `limit` bytes of the body (for error excerpts)."""
        out = bytearray()
        while len(out) < limit:
            chunk = await self.read_chunk()
            if not chunk:
                break
            out += chunk
        return bytes(out[:limit])

    def _release(self) -> None:
        if not self._finished:
            self._finished = True
            self._client._release(self._key, self._conn)

    def release_when_done(self, grace_s: float = 5.0) -> None:
        """The caller has read all it needs: give the connection back to the pool as soon as
        the rest of the answer (typically the chunked stream's end marker, a few bytes behind
        the last frame) has arrived; close it if that takes longer than `grace_s`."""
        if self._finished:
            return
        conn = self._conn
        if conn.body_done or conn.closed or conn.error is not None:
            conn.body.clear()
            self._release()
            return
        self._finished = True
        timer = asyncio.get_running_loop().call_later(grace_s, conn._close)

        def complete() -> None:
            timer.cancel()
            conn.body.clear()
            self._client._release(self._key, conn)

        conn.on_complete = complete

    def close(self) -> None:
        """Done with the answer: the connection goes back to the pool if the answer was read to
        its end, and is closed otherwise (which is how an attempt is aborted)."""
        if self._finished:
            return
        self._finished = True
        self._conn._close()

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


def _cut_message(conn: _Connection, where: str) -> str:
    why = f": {type(conn.lost).__name__}: {conn.lost}" if conn.lost is not None else ""
    return f"the server closed the connection {where}{why}"


class HttpClient:
    """Pooled keep-alive connections per host; `close()` closes them all."""

    def __init__(
        self,
        *,
        connect_timeout_s: float = 10.0,
        inactivity_timeout_s: float = 60.0,
        max_idle_per_host: int = 256,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.connect_timeout_s = connect_timeout_s
        self.inactivity_timeout_s = inactivity_timeout_s
        self.max_idle_per_host = max_idle_per_host
        self._idle: dict[_Key, list[_Connection]] = {}
        self._targets: dict[tuple[str, str], tuple[_Key, bytes]] = {}
        self._closed = False
        self._ssl_context = ssl_context

    async def post(self, url: str, body: bytes, content_type: str) -> Response:
        """Send `POST url` with `body`; return once the answer's status and headers are in."""
        if self._closed:
            raise HttpError("the HTTP client is closed")
        target = self._targets.get((url, content_type))
        if target is None:
            target = self._target(url, content_type)
        key, head = target
        request = b"%s%d\r\n\r\n%s" % (head, len(body), body)
        while True:
            conn, reused = self._idle_connection(key)
            if conn is None:
                conn = await self._connect(*key)
            try:
                return await self._exchange(key, conn, request)
            except ConnectionCut:
                # A kept-alive connection the server closed while it sat in the pool: try once
                # more on a fresh one, but only if not a byte of the answer arrived.
                if reused and conn.bytes_seen == 0:
                    continue
                raise
            except BaseException:
                conn._close()
                raise

    def _target(self, url: str, content_type: str) -> tuple[_Key, bytes]:
        """(host, port, tls) and the request head up to the content length's value, for `url`
        (parsed once per URL: the invoker calls the same few URLs over and over)."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise HttpError(f"only http:// and https:// URLs are supported, not {url!r}")
        tls = scheme == "https"
        host, port = parts.hostname, parts.port or (443 if tls else 80)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        host_header = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host_header}\r\nContent-Type: {content_type}\r\n"
            "Accept: */*\r\nContent-Length: "
        ).encode("latin-1")
        if len(self._targets) >= 1024:  # bounded: URLs name deployments and handlers
            self._targets.clear()
        target = self._targets[(url, content_type)] = ((host, port, tls), head)
        return target

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    def _idle_connection(self, key: _Key) -> tuple[_Connection | None, bool]:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn, True
        return None, False

    async def _connect(self, host: str, port: int, tls: bool) -> _Connection:
        loop = asyncio.get_running_loop()
        context = self._tls() if tls else None
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop),
                    host,
                    port,
                    ssl=context,
                    server_hostname=host if tls else None,
                )
        except TimeoutError:
            raise ConnectFailed(
                f"no connection to {host}:{port} within {self.connect_timeout_s:g}s",
                "connect timeout",
            ) from None
        except ssl.SSLError as exc:  # before OSError: its errno is OpenSSL's, not the OS's
            reason = f"TLS handshake failed: {exc.reason or exc}"
            if isinstance(exc, ssl.SSLCertVerificationError):
                reason = f"TLS certificate not trusted: {exc.verify_message or exc}"
            raise ConnectFailed(f"cannot connect to {host}:{port}: {reason}", reason) from None
        except OSError as exc:
            if isinstance(exc, socket.gaierror):  # name resolution: its own words
                reason = exc.strerror or str(exc)
            elif exc.errno and exc.errno > 0:
                # The stdlib loop words it "Connect call failed (...)"; the errno says what.
                reason = os.strerror(exc.errno)
            else:
                reason = str(exc) or type(exc).__name__
            raise ConnectFailed(f"cannot connect to {host}:{port}: {reason}", reason) from None
        return conn

    async def _exchange(self, key: _Key, conn: _Connection, request: bytes) -> Response:
        assert conn.transport is not None
        conn.reset()
        conn.active = True
        conn.transport.write(request)
        while not conn.head_done or conn.status < 200:
            if conn.error is not None:
                raise conn.error
            if conn.closed:
                raise ConnectionCut(_cut_message(conn, "before answering"))
            await conn.wait(self.inactivity_timeout_s)
        if conn.error is not None:
            raise conn.error
        return Response(self, key, conn)

    def _release(self, key: _Key, conn: _Connection) -> None:
        conn.on_complete = None
        conn.active = False
        if self._closed or conn.closed or conn.error or not conn.keep_alive or conn._buffer:
            conn._close()
            return
        idle = self._idle.setdefault(key, [])
        if len(idle) >= self.max_idle_per_host:
            conn._close()
            return
        idle.append(conn)

    async def close(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn._close()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports finish closing


__all__ = [
    "BadResponse",
    "ConnectFailed",
    "ConnectionCut",
    "HttpClient",
    "HttpError",
    "Response",
]
