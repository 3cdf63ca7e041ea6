"""Helpers shared by the log tests (a uniquely named module: tests/ has no packages)."""

from __future__ import annotations

class SteppingClock:
    """A clock returning the values it is told to, then repeating the last one."""

    def __init__(self, *values: int) -> None:
        self.values = list(values) or [1_000]
        self.last = self.values[0]

    def set(self, *values: int) -> None:
        self.values = list(values)

    def __call__(self) -> int:
        if self.values:
            self.last = self.values.pop(0)
        return self.last


def payload_for(lsn: int, size: int = 40) -> bytes:
    """A payload derived from its LSN, so a test can tell a record is intact and in its place."""
    seed = f"record-{lsn}-".encode()
    return (seed * (size // len(seed) + 1))[:size]
