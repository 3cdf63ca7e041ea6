"""The one status → colour map, shared by the CLI (rich styles) and the web UI (CSS colours).

Keys are the status strings of SPEC §2 (`Status` values). A completed invocation whose result is a
failure gets its own colour, because "completed" alone hides the difference a user cares about.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from processor.status import Status


@dataclass(frozen=True, slots=True)
class StatusColor:
    rich: str  # a rich style, e.g. "bold magenta"
    css: str  # a CSS colour for the web UI


STATUS_COLORS: Mapping[str, StatusColor] = MappingProxyType(
    {
        Status.SCHEDULED.value: StatusColor("dim", "#8b949e"),
        Status.RUNNING.value: StatusColor("blue", "#1f6feb"),
        Status.BACKING_OFF.value: StatusColor("yellow", "#bf8700"),
        Status.SUSPENDED.value: StatusColor("cyan", "#1b7c83"),
        Status.PAUSED.value: StatusColor("bold magenta", "#8250df"),
        Status.COMPLETED.value: StatusColor("green", "#1a7f37"),
    }
)
FAILED_COMPLETION = StatusColor("bold red", "#cf222e")
UNKNOWN_STATUS = StatusColor("", "#57606a")


def status_color(status: str, *, failed: bool = False) -> StatusColor:
    """The colour of `status`; `failed` marks a completed invocation whose result is a failure."""
    if status == Status.COMPLETED.value and failed:
        return FAILED_COMPLETION
    return STATUS_COLORS.get(status, UNKNOWN_STATUS)
