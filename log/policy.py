"""The log's settings: the fsync policy (`always`, `interval:<ms>`, `never`) and sizes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from log.errors import InvalidLogConfig

FsyncKind = Literal["always", "interval", "never"]
_ACCEPTED = "'always', 'interval:<ms>' (e.g. 'interval:10ms' or 'interval:10') or 'never'"


@dataclass(frozen=True, slots=True)
class FsyncPolicy:
    """When written records are forced to disk.

    - `always`: an append returns after its batch was written and fsynced (group commit).
    - `interval`: an append returns once written to the OS; dirty data is fsynced within
      `interval_ms` (a process crash loses nothing, a machine crash up to `interval_ms`).
    - `never`: the OS decides; `close()` and segment rolls still fsync.
    """

    kind: FsyncKind
    interval_ms: int = 0

    def __str__(self) -> str:
        return f"interval:{self.interval_ms}ms" if self.kind == "interval" else self.kind


def parse_fsync_policy(value: str | FsyncPolicy) -> FsyncPolicy:
    if isinstance(value, FsyncPolicy):
        return value
    text = str(value).strip().lower()
    if text in ("always", "never"):
        return FsyncPolicy(text)  # type: ignore[arg-type]
    match = re.fullmatch(r"interval:\s*(\d+)\s*(ms)?", text)
    if match:
        interval = int(match.group(1))
        if interval <= 0:
            raise InvalidLogConfig(
                f"fsync interval must be positive, got {value!r}; use {_ACCEPTED}"
            )
        return FsyncPolicy("interval", interval)
    raise InvalidLogConfig(f"invalid fsync policy {value!r}; accepted values: {_ACCEPTED}")


_UNITS = {"": 1, "b": 1, "kib": 1 << 10, "kb": 1000, "mib": 1 << 20, "mb": 1000**2}
_UNITS |= {"gib": 1 << 30, "gb": 1000**3, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
MIN_SEGMENT_SIZE = 1024


def parse_size(value: str | int) -> int:
    """`'64MiB'`, `'512KiB'`, `'1000000'` or an int -> bytes."""
    if isinstance(value, int):
        size = value
    else:
        match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", value)
        unit = match.group(2).lower() if match else ""
        if not match or unit not in _UNITS:
            raise InvalidLogConfig(
                f"invalid size {value!r}; use a number of bytes with an optional unit "
                "(B, KiB, MiB, GiB, KB, MB, GB), e.g. '64MiB'"
            )
        size = int(match.group(1)) * _UNITS[unit]
    if size < MIN_SEGMENT_SIZE:
        raise InvalidLogConfig(
            f"segment size must be at least {MIN_SEGMENT_SIZE} bytes, got {value!r}"
        )
    return size
