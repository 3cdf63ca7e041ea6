"""Logging setup: structlog and stdlib `logging` rendered by one handler, JSON or console.

`configure_logging` installs a single stdlib handler on the root logger whose formatter is
structlog's `ProcessorFormatter`, so structlog events and stdlib records (aiohttp, libraries) share
the same timestamp, level, context and renderer. Context bound with `bound(...)` or
`structlog.contextvars.bind_contextvars` appears on every line logged in that context, whichever
API logged it. The core (state machine, log) does not log; the daemon's edges do.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal, TextIO

import structlog
from aiohttp.http_exceptions import HttpProcessingError
from structlog.typing import Processor

LogFormat = Literal["auto", "json", "console"]
LEVELS = ("debug", "info", "warning", "error", "critical")

_HANDLER_MARK = "_processor_telemetry_handler"


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


def wants_console(fmt: LogFormat, stream: TextIO) -> bool:
    """`auto` means console output on a terminal, JSON lines otherwise."""
    if fmt == "auto":
        isatty = getattr(stream, "isatty", None)
        return bool(isatty and isatty())
    return fmt == "console"


def configure_logging(
    level: str = "info", fmt: LogFormat = "auto", stream: TextIO | None = None
) -> None:
    """Route structlog and stdlib logging to `stream` (default stderr) at `level` and above.

    Calling it again replaces the previous setup (tests and `--log-level` rely on that).
    """
    name = level.strip().lower()
    if name not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; accepted: {', '.join(LEVELS)}")
    if fmt not in ("auto", "json", "console"):
        raise ValueError(f"unknown log format {fmt!r}; accepted: auto, json, console")
    numeric = logging.getLevelNamesMapping()[name.upper()]
    out = stream if stream is not None else sys.stderr

    renderer: list[Processor]
    if wants_console(fmt, out):
        isatty = getattr(out, "isatty", None)
        renderer = [structlog.dev.ConsoleRenderer(colors=bool(isatty and isatty()))]
    else:
        renderer = [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]

    shared = _shared_processors()
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.UnicodeDecoder(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # Not cached: reconfiguring must reach loggers created at import time.
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    quiet_malformed_requests()


class MalformedRequestFilter(logging.Filter):
    """Turn aiohttp's "Error handling request" tracebacks for requests that are not valid HTTP
    (a header over the size limit, a bad chunk size, a non-ASCII request line...) into one
    debug line: aiohttp already answered 400, and a client's bad bytes are not the daemon's
    error. Anything else aiohttp logs passes unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            record.msg, record.args = "malformed HTTP request answered 400: %s", (exc,)
            record.exc_info, record.exc_text = None, None
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


def quiet_malformed_requests() -> None:
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequestFilter) for f in server.filters):
        server.addFilter(MalformedRequestFilter())


def get_logger(name: str | None = None, **initial: Any) -> Any:
    """A structlog logger (use after `configure_logging`); `initial` is bound on every event."""
    return structlog.get_logger(name, **initial)


@contextmanager
def bound(**context: Any) -> Iterator[None]:
    """Bind e.g. `partition=` and `invocation_id=` on every line logged inside the block.

    None values are skipped so callers can pass optional context unconditionally.
    """
    present = {k: v for k, v in context.items() if v is not None}
    with structlog.contextvars.bound_contextvars(**present):
        yield
