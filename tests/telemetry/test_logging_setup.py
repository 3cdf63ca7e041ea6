"""Logging setup: JSON lines off a terminal, bound context on every line, level filtering."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from processor.telemetry import bound, configure_logging, get_logger, wants_console


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    structlog_config = structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**structlog_config)
    structlog.contextvars.clear_contextvars()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_auto_format_writes_json_lines_when_not_a_terminal() -> None:
    stream = io.StringIO()
    configure_logging("info", "auto", stream)
    get_logger("processor.test").info("partition started", lsn=42)
    [record] = lines(stream)
    assert record["event"] == "partition started"
    assert record["lsn"] == 42
    assert record["level"] == "info"
    assert record["logger"] == "processor.test"
    assert record["timestamp"].endswith("Z") and "T" in record["timestamp"]


def test_auto_format_is_console_on_a_terminal() -> None:
    assert wants_console("auto", FakeTty())
    assert not wants_console("auto", io.StringIO())
    assert wants_console("console", io.StringIO())
    assert not wants_console("json", FakeTty())
    stream = FakeTty()
    configure_logging("info", "auto", stream)
    get_logger("t").info("hello console", partition=1)
    output = stream.getvalue()
    assert "hello console" in output
    assert "partition" in output
    with pytest.raises(json.JSONDecodeError):
        json.loads(output.splitlines()[0])


def test_bound_context_appears_on_structlog_and_stdlib_lines() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    with bound(partition=2, invocation_id="inv_abc", deployment=None):
        get_logger("processor.leader").info("attempt started")
        logging.getLogger("aiohttp.access").info("POST %s %d", "/Svc/h", 200)
    get_logger("processor.leader").info("outside")
    inside_a, inside_b, outside = lines(stream)
    for record in (inside_a, inside_b):
        assert record["partition"] == 2
        assert record["invocation_id"] == "inv_abc"
        assert "deployment" not in record
    assert inside_b["event"] == "POST /Svc/h 200"
    assert inside_b["logger"] == "aiohttp.access"
    assert "partition" not in outside


def test_level_filtering_applies_to_structlog_and_stdlib() -> None:
    stream = io.StringIO()
    configure_logging("warning", "json", stream)
    log = get_logger("x")
    log.info("dropped")
    log.debug("dropped too")
    logging.getLogger("lib").info("dropped as well")
    log.warning("kept")
    logging.getLogger("lib").error("kept too")
    assert [r["event"] for r in lines(stream)] == ["kept", "kept too"]


def test_exceptions_are_rendered_into_the_json_line() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    try:
        raise RuntimeError("disk on fire")
    except RuntimeError:
        get_logger("x").exception("append failed")
    [record] = lines(stream)
    assert record["level"] == "error"
    assert "RuntimeError: disk on fire" in record["exception"]


def test_reconfiguring_replaces_the_handler_instead_of_duplicating_lines() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("info", "json", first)
    configure_logging("debug", "json", second)
    get_logger("x").debug("only once")
    assert first.getvalue() == ""
    assert [r["event"] for r in lines(second)] == ["only once"]


@pytest.mark.parametrize(("level", "fmt"), [("loud", "json"), ("info", "xml")])
def test_bad_level_or_format_is_rejected(level: str, fmt: Any) -> None:
    with pytest.raises(ValueError, match="accepted"):
        configure_logging(level, fmt, io.StringIO())
