"""Config value types and parsers (SPEC §6.4): listen addresses, fsync policy, durations, sizes,
and `SCHEMA`, the parser and accepted-values text for every dotted config key.

Parsers raise ValueError with the reason only; processor.config adds the key and the source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

from processor.retry import parse_duration_ms


class ListenAddress(NamedTuple):
    host: str
    port: int  # 0 = an ephemeral port (tests)

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class FsyncPolicy:
    """When the log fsyncs: after every append batch, at most every `interval_ms`, or never."""

    mode: Literal["always", "interval", "never"]
    interval_ms: int | None = None

    def __str__(self) -> str:
        return (
            f"interval:{format_duration_ms(self.interval_ms or 0)}"
            if self.mode == "interval"
            else self.mode
        )


# --- value parsing: each raises ValueError with the reason; the caller adds key and source --------

_DURATION_UNITS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000))
_SIZE_UNITS = {
    "b": 1,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "kb": 1000,
    "mb": 10**6,
    "gb": 10**9,
}
MIN_SEGMENT_SIZE = 4096


def format_duration_ms(ms: int) -> str:
    if ms == 0:
        return "0"
    for unit, size in _DURATION_UNITS:
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def format_size(size: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def parse_size(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str):
        raw = value.strip().lower().replace(" ", "")
        digits = raw.rstrip("abcdefghijklmnopqrstuvwxyz")
        unit = raw[len(digits) :] or "b"
        if not digits.isdigit() or unit not in _SIZE_UNITS:
            raise ValueError("not a size")
        size = int(digits) * _SIZE_UNITS[unit]
    else:
        raise ValueError("not a size")
    if size < MIN_SEGMENT_SIZE:
        raise ValueError(f"must be at least {MIN_SEGMENT_SIZE} bytes")
    return size


def _duration(value: object, *, positive: bool) -> int:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("not a duration")
    ms = parse_duration_ms(value)
    if positive and ms <= 0:
        raise ValueError("must be greater than 0")
    return ms


def parse_listen(value: object) -> ListenAddress:
    if not isinstance(value, str):
        raise ValueError("not a host:port string")
    host, sep, port_text = value.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or (":" in host and not value.strip().startswith("[")):
        raise ValueError("not host:port")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"port {port_text!r} is not a number in 0..65535")
    return ListenAddress(host, int(port_text))


def parse_fsync(value: object) -> FsyncPolicy:
    if value in ("always", "never"):
        return FsyncPolicy(value)
    if isinstance(value, str) and value.startswith("interval:"):
        return FsyncPolicy("interval", _duration(value.removeprefix("interval:"), positive=True))
    raise ValueError("not an fsync policy")


def _int_in(low: int, high: int) -> Callable[[object], int]:
    def parse(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("not an integer")
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return parse


def _choice(*choices: str) -> Callable[[object], str]:
    def parse(value: object) -> str:
        if not isinstance(value, str) or value.strip().lower() not in choices:
            raise ValueError("not one of the choices")
        return value.strip().lower()

    return parse


def _path(value: object) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("not a path")
    return Path(value)


class ValueSpec(NamedTuple):
    kind: Literal["path", "int", "float", "attempts", "text"]  # how env/flag strings are coerced
    parse: Callable[[object], Any]
    accepted: str
    retry_key: bool = False  # parsed by processor.retry.policy_from_mapping instead of `parse`


def _retry_spec(
    kind: Literal["float", "attempts", "text"],
    accepted: str,
    parse: Callable[[object], Any] = lambda v: v,
) -> ValueSpec:
    # `parse` pre-checks the value's type; processor.retry.policy_from_mapping validates the rest.
    return ValueSpec(kind, parse, accepted, retry_key=True)


def _retry_duration(value: object) -> int:
    return _duration(value, positive=False)


_DURATION = 'a duration like "500ms", "60s", "5m", "24h", "1d" or an integer of milliseconds'
_RETRY = "invocation.default-retry-policy."
SCHEMA: dict[str, ValueSpec] = {
    "data-dir": ValueSpec("path", _path, 'a directory path, e.g. "./data"'),
    "partitions": ValueSpec("int", _int_in(1, 1024), "an integer from 1 to 1024"),
    "ingress.listen": ValueSpec("text", parse_listen, '"host:port", e.g. "127.0.0.1:8080"'),
    "admin.listen": ValueSpec("text", parse_listen, '"host:port", e.g. "127.0.0.1:9070"'),
    "invocation.completion-retention": ValueSpec(
        "text", lambda v: _duration(v, positive=False), f'{_DURATION}; "0" keeps until purged'
    ),
    "invocation.attempt-inactivity-timeout": ValueSpec(
        "text", lambda v: _duration(v, positive=True), f"{_DURATION}, greater than 0"
    ),
    "invocation.max-concurrent-attempts": ValueSpec(
        "int", _int_in(1, 1_000_000), "an integer from 1 to 1000000"
    ),
    _RETRY + "initial-interval": _retry_spec("text", _DURATION, _retry_duration),
    _RETRY + "exponentiation-factor": _retry_spec("float", "a finite number >= 1, e.g. 2.0"),
    _RETRY + "max-interval": _retry_spec("text", _DURATION, _retry_duration),
    _RETRY + "max-attempts": _retry_spec(
        "attempts", 'an integer from 1 to 2147483647 or "unlimited"'
    ),
    _RETRY + "on-max-attempts": _retry_spec("text", '"pause" or "kill"'),
    "log.fsync": ValueSpec(
        "text", parse_fsync, '"always", "interval:<duration>" (e.g. "interval:10ms") or "never"'
    ),
    "log.segment-size": ValueSpec(
        "text",
        parse_size,
        f'a size like "512KiB", "64MiB", "1GiB" or an integer of bytes, '
        f"at least {MIN_SEGMENT_SIZE}",
    ),
    "logging.level": ValueSpec(
        "text",
        _choice("debug", "info", "warning", "error", "critical"),
        '"debug", "info", "warning", "error" or "critical"',
    ),
    "logging.format": ValueSpec(
        "text", _choice("auto", "json", "console"), '"auto", "json" or "console"'
    ),
}
