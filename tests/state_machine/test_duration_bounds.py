"""Durations are bounded and finite: they become absolute times stored as SQLite INTEGERs, so an
unbounded one (a `?delay=`, a retry policy from a deployment's discovery answer or the config)
could be appended and then fail every batch write of its partition."""

from __future__ import annotations

import pytest

from processor.retry import MAX_DURATION_MS, parse_duration_ms, policy_from_mapping


@pytest.mark.parametrize(
    "text",
    ["infs", "inf", "nanms", "1e400ms", "9300000000000000000", "99300000000000000000", 1e300],
)
def test_non_finite_or_huge_durations_are_value_errors(text: str | float) -> None:
    with pytest.raises(ValueError):
        parse_duration_ms(text)


def test_the_longest_duration_plus_any_record_time_fits_a_signed_64_bit_integer() -> None:
    assert parse_duration_ms(str(MAX_DURATION_MS)) == MAX_DURATION_MS
    year_3000_ms = 32_503_680_000_000
    assert year_3000_ms + int(MAX_DURATION_MS * 1.3) < 2**63  # + the retry jitter


def test_a_retry_policy_with_an_absurd_interval_is_rejected_as_a_value_error() -> None:
    # (a deployment's discovery answer is checked with this; an OverflowError escaped it)
    with pytest.raises(ValueError, match="too long"):
        policy_from_mapping({"max-interval": "1e30s"})
    with pytest.raises(ValueError, match="infs"):
        policy_from_mapping({"initial-interval": "infs"})
