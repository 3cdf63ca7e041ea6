"""Retry policy (SPEC §5): the policy, parsing from config/discovery maps, and the backoff delay.

Pure: `next_delay_ms` derives its jitter from a blake2b hash of (invocation id, attempt), never from
`random` or Python's per-process `hash()`, so replaying a log computes the same retry times.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

OnMaxAttempts = Literal["pause", "kill"]

JITTER_MAX_FRACTION = 0.30
# The most attempts a policy may ask for. Policies travel inside invoke records and are stored as
# SQLite INTEGERs (signed 64-bit); anything near that range is "unlimited" in practice, and an
# out-of-range value would make every invoke of the handler fail to encode.
MAX_ATTEMPTS_LIMIT = (1 << 31) - 1


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    initial_interval_ms: int = 500
    exponentiation_factor: float = 2.0
    max_interval_ms: int = 60_000
    max_attempts: int | None = 70  # None = unlimited; counts attempts including the first
    on_max_attempts: OnMaxAttempts = "pause"

    def to_wire(self) -> list[Any]:
        return [
            self.initial_interval_ms,
            self.exponentiation_factor,
            self.max_interval_ms,
            self.max_attempts,
            self.on_max_attempts,
        ]

    @classmethod
    def from_wire(cls, raw: list[Any]) -> RetryPolicy:
        initial, factor, max_interval, max_attempts, on_max = raw
        if on_max not in ("pause", "kill"):
            raise ValueError(f"on-max-attempts must be 'pause' or 'kill', got {on_max!r}")
        return cls(int(initial), float(factor), int(max_interval), max_attempts, on_max)


def next_delay_ms(policy: RetryPolicy, retry_count: int, invocation_id: str, attempt: int) -> int:
    """Delay before retry number `retry_count` (1-based): min(initial × factor^(k-1), max) + jitter.

    The jitter is in [0, 30 %] of the base delay, derived from a stable hash.
    """
    k = max(1, retry_count)
    try:
        base = policy.initial_interval_ms * (policy.exponentiation_factor ** (k - 1))
    except OverflowError:  # factor^k leaves the float range after ~1000 unlimited retries
        base = float(policy.max_interval_ms)
    if not math.isfinite(base):
        # Only a non-finite factor gets here; policies are validated on the way in, but a log
        # written before that check must still replay, so treat it as "grow to the cap at once".
        base = float(policy.max_interval_ms)
    base_ms = int(min(base, float(policy.max_interval_ms)))
    digest = hashlib.blake2b(f"{invocation_id}:{attempt}".encode(), digest_size=8).digest()
    fraction = int.from_bytes(digest, "big") / float(1 << 64)
    return base_ms + int(base_ms * JITTER_MAX_FRACTION * fraction)


_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
# The longest duration accepted (~285,000 years). Durations become absolute times (record time +
# duration) stored as SQLite INTEGERs (signed 64-bit): an unbounded one could be appended to a log
# and then fail every batch write of its partition, at every restart.
MAX_DURATION_MS = 1 << 53


def parse_duration_ms(text: str | int | float) -> int:
    """Parse "500ms", "60s", "5m", "24h", "1d" (or a bare number of ms) into milliseconds.

    Raises ValueError for anything else, including negative, non-finite and absurdly long
    durations (over `MAX_DURATION_MS`)."""
    ms = _parse_duration_ms(text)
    if ms > MAX_DURATION_MS:
        raise ValueError(f"duration {text!r} is too long (at most {MAX_DURATION_MS} ms)")
    return ms


def _parse_duration_ms(text: str | int | float) -> int:
    if isinstance(text, bool):
        raise ValueError(f"not a duration: {text!r}")
    if isinstance(text, int | float):
        if not math.isfinite(text) or text < 0:
            raise ValueError(f"duration must be a finite number >= 0: {text!r}")
        return int(text)
    raw = text.strip().lower()
    if raw.isdigit():
        return int(raw)
    for unit in ("ms", "s", "m", "h", "d"):
        if raw.endswith(unit):
            number = raw[: -len(unit)].strip()
            try:
                value = float(number)
            except ValueError:
                break
            if not math.isfinite(value) or value < 0:
                break
            return int(value * _UNITS_MS[unit])
    raise ValueError(f"not a duration: {text!r} (expected e.g. '500ms', '60s', '5m', '24h')")


_KEYS = {
    "initial-interval",
    "exponentiation-factor",
    "max-interval",
    "max-attempts",
    "on-max-attempts",
}


def _as_float(value: Any) -> float | None:
    """`value` as a float when it is a number (not a bool); ±inf for ints beyond the float range."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:  # an int of hundreds of digits
        return math.inf if value > 0 else -math.inf


def policy_from_mapping(
    raw: Mapping[str, Any], base: RetryPolicy | None = None, *, lenient: bool = False
) -> RetryPolicy:
    """Overlay a config/discovery map (kebab-case keys, SPEC §5) on `base`. Raises ValueError naming
    the key on an unknown key or a bad value.

    `lenient` is for maps stored by an earlier version, which accepted non-finite factors and
    unbounded attempt counts: those load (a huge count is clamped to `MAX_ATTEMPTS_LIMIT`, and
    `next_delay_ms` treats a non-finite factor as "grow to max-interval at once") instead of
    refusing a registry that was valid when it was written."""
    policy = base or RetryPolicy()
    for key in raw:
        if key not in _KEYS:
            raise ValueError(
                f"unknown retry policy key {key!r}; accepted: {', '.join(sorted(_KEYS))}"
            )
    initial = policy.initial_interval_ms
    factor = policy.exponentiation_factor
    max_interval = policy.max_interval_ms
    max_attempts = policy.max_attempts
    on_max: OnMaxAttempts = policy.on_max_attempts
    try:
        if "initial-interval" in raw:
            initial = parse_duration_ms(raw["initial-interval"])
        if "max-interval" in raw:
            max_interval = parse_duration_ms(raw["max-interval"])
    except ValueError as exc:
        raise ValueError(f"retry policy: {exc}") from None
    if "exponentiation-factor" in raw:
        value = raw["exponentiation-factor"]
        number = _as_float(value)
        if number is None or (not lenient and not math.isfinite(number)) or number < 1.0:
            raise ValueError(
                "retry policy key 'exponentiation-factor' must be a finite number >= 1, "
                f"got {value!r}"
            )
        factor = number
    if "max-attempts" in raw:
        value = raw["max-attempts"]
        if value == "unlimited":
            max_attempts = None
        elif isinstance(value, int) and not isinstance(value, bool) and lenient and value >= 1:
            max_attempts = min(value, MAX_ATTEMPTS_LIMIT)
        elif (
            isinstance(value, int)
            and not isinstance(value, bool)
            and 1 <= value <= MAX_ATTEMPTS_LIMIT
        ):
            max_attempts = value
        else:
            raise ValueError(
                f"retry policy key 'max-attempts' must be an integer from 1 to {MAX_ATTEMPTS_LIMIT}"
                f' or "unlimited", got {value!r}'
            )
    if "on-max-attempts" in raw:
        value = raw["on-max-attempts"]
        if value not in ("pause", "kill"):
            raise ValueError(
                f"retry policy key 'on-max-attempts' must be 'pause' or 'kill', got {value!r}"
            )
        on_max = value
    return RetryPolicy(initial, factor, max_interval, max_attempts, on_max)
