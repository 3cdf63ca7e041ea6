"""Backoff stays defined for unlimited retries and for odd policies already written to a log."""

from __future__ import annotations

import math

import pytest

from processor.retry import RetryPolicy, next_delay_ms


def test_delay_after_thousands_of_unlimited_retries_is_capped_at_max_interval() -> None:
    policy = RetryPolicy(initial_interval_ms=500, max_interval_ms=60_000, max_attempts=None)
    delay = next_delay_ms(policy, 5_000, "inv_x", 5_000)
    assert 60_000 <= delay <= 78_000  # the cap plus at most 30 % jitter


@pytest.mark.parametrize("factor", [math.nan, math.inf])
def test_non_finite_factor_from_an_old_log_backs_off_at_max_interval(factor: float) -> None:
    # Validation now refuses such factors, but a log written before it must still replay.
    policy = RetryPolicy(
        initial_interval_ms=500, exponentiation_factor=factor, max_interval_ms=10_000
    )
    assert 500 <= next_delay_ms(policy, 1, "inv_x", 1) <= 650  # factor^0 is 1, even for nan
    for retry in (2, 50):
        assert 10_000 <= next_delay_ms(policy, retry, "inv_x", retry) <= 13_000
