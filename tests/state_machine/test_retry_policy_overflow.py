"""Backoff stays defined for unlimited retries: the exponent must not overflow the float range."""

from __future__ import annotations

from processor.retry import RetryPolicy, next_delay_ms


def test_delay_after_thousands_of_unlimited_retries_is_capped_at_max_interval() -> None:
    policy = RetryPolicy(initial_interval_ms=500, max_interval_ms=60_000, max_attempts=None)
    delay = next_delay_ms(policy, 5_000, "inv_x", 5_000)
    assert 60_000 <= delay <= 78_000  # the cap plus at most 30 % jitter
